import type { ReplicaClient } from '../../src/storage/types.js';

/** One storage request as the wrapper saw it: what, and the order of its start and end. */
export interface RecordedRequest {
  op: string;
  /** The LTX file a read was for, as `L<level>/<minTxid>-<maxTxid>` (absent for lists and objects). */
  file?: string;
  /** Sequence numbers of the start and end events (one counter for both). */
  start: number;
  end: number;
}

const RECORDED = new Set([
  'levels',
  'listAll',
  'listFiles',
  'readRange',
  'readFile',
  'readObject',
  'readObjectIfChanged',
]);

/**
 * The client with every read and list recorded by event order, not by clock: a request belongs
 * to a later round than another exactly when it started after that one ended. Deterministic on
 * any machine (requests issued together start before any of them can end).
 */
export function recordRequests(client: ReplicaClient): {
  client: ReplicaClient;
  requests: RecordedRequest[];
  events: string[];
  reset(): void;
} {
  const requests: RecordedRequest[] = [];
  const events: string[] = [];
  let seq = 0;
  const wrapped = new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop === 'preconnect') {
        // Recorded even for backends without connections (the file backend has no preconnect).
        return (sockets: number) => {
          events.push(`preconnect ${sockets}`);
          if (typeof value === 'function') (value as (n: number) => void).call(target, sockets);
        };
      }
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      if (!RECORDED.has(prop)) return value;
      return (...args: unknown[]) => {
        const start = seq++;
        events.push(`${prop} start`);
        const result = (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        const file = fileOf(args[0]);
        return result.finally(() => {
          requests.push({ op: prop, start, end: seq++, ...(file === undefined ? {} : { file }) });
          events.push(`${prop} end`);
        });
      };
    },
  });
  return {
    client: wrapped,
    requests,
    events,
    reset() {
      requests.length = 0;
      events.length = 0;
    },
  };
}

function fileOf(arg: unknown): string | undefined {
  if (typeof arg !== 'object' || arg === null || !('level' in arg)) return undefined;
  const f = arg as { level: number; minTxid: number; maxTxid: number };
  return `L${f.level}/${f.minTxid}-${f.maxTxid}`;
}

/** The round (1 = first) of each request, by the rule of rounds(). */
export function roundNumbers(requests: readonly RecordedRequest[]): Map<RecordedRequest, number> {
  const sorted = [...requests].sort((a, b) => a.start - b.start);
  const out = new Map<RecordedRequest, number>();
  for (const [i, r] of sorted.entries()) {
    let before = 0;
    for (let j = 0; j < i; j++) {
      const p = sorted[j];
      if (p !== undefined && p.end < r.start) before = Math.max(before, out.get(p) ?? 0);
    }
    out.set(r, before + 1);
  }
  return out;
}

/**
 * The requests grouped into rounds: a request's round is 1 + the highest round of any request
 * that ended before it started (the longest chain of sequential requests ending in it), so the
 * number of rounds is the number of sequential round trips. Each round's operations, sorted.
 */
export function rounds(requests: readonly RecordedRequest[]): string[][] {
  const sorted = [...requests].sort((a, b) => a.start - b.start);
  const roundOf: number[] = [];
  const out: string[][] = [];
  for (const [i, r] of sorted.entries()) {
    let before = 0;
    for (let j = 0; j < i; j++) {
      const p = sorted[j];
      if (p !== undefined && p.end < r.start) before = Math.max(before, roundOf[j] ?? 0);
    }
    roundOf[i] = before + 1;
    const round = out[before] ?? [];
    round.push(r.op);
    out[before] = round;
  }
  return out.map((ops) => ops.sort());
}
