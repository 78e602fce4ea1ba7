import type { ReplicaClient } from '../src/storage/types.js';

/** Start and end (performance.now()) of one storage request. */
export interface RequestSpan {
  start: number;
  end: number;
  /** What was asked, e.g. `readRange L9 0000000000000003 @123+4096` (for LTXVFS_BENCH_TRACE). */
  what?: string;
}

const TIMED = new Set([
  'levels',
  'listAll',
  'listFiles',
  'readRange',
  'readFile',
  'readObject',
  'readObjectIfChanged',
]);

/** The same client, recording when each read or list request started and ended. */
export function timeRequests(client: ReplicaClient): { client: ReplicaClient; spans: RequestSpan[] } {
  const spans: RequestSpan[] = [];
  const timed = new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || !TIMED.has(prop) || typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const start = performance.now();
        const result = (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        return result.finally(() =>
          spans.push({ start, end: performance.now(), what: describe(prop, args) }),
        );
      };
    },
  });
  return { client: timed, spans };
}

function describe(op: string, args: unknown[]): string {
  const [first, offset, length] = args;
  if (typeof first === 'string') return `${op} ${first}`;
  if (typeof first === 'object' && first !== null && 'level' in first && 'maxTxid' in first) {
    const ref = first as { level: number; minTxid: number; maxTxid: number };
    const range = typeof offset === 'number' ? ` @${offset}+${String(length)}` : '';
    return `${op} L${ref.level} ${ref.minTxid}-${ref.maxTxid}${range}`;
  }
  return typeof first === 'number' ? `${op} L${first}` : op;
}

/** One line per request, times in ms from `origin`, for reading a cold run by eye. */
export function formatSpans(spans: readonly RequestSpan[], origin: number): string {
  return [...spans]
    .sort((a, b) => a.start - b.start)
    .map(
      (s) =>
        `  ${(s.start - origin).toFixed(1).padStart(8)} .. ${(s.end - origin).toFixed(1).padStart(8)}  ${s.what ?? ''}`,
    )
    .join('\n');
}

/**
 * Sequential round trips of a set of requests: the longest chain of requests each starting after
 * the previous one ended, each counted as its duration in round trips (at least 1), so a request
 * that also opened a connection (one more round trip through the proxy) counts 2. Requests in
 * flight at the same time cost one round between them.
 */
export function sequentialRoundTrips(spans: readonly RequestSpan[], rttMs: number): number {
  return longestChain(spans, (s) => Math.max(1, Math.round((s.end - s.start) / Math.max(rttMs, 1))));
}

/**
 * Sequential network round trips: the longest chain of requests each starting after the previous
 * one ended, each counting 1, plus 1 when a connection was opened while it was in flight early
 * enough to carry it (accepted by the proxy at least one round trip before it ended): the TCP
 * handshake a new connection costs. Unlike sequentialRoundTrips it does not grow with CPU time
 * on a busy machine; a connection another request in flight opened may be counted too (never less).
 */
export function sequentialNetworkRoundTrips(
  spans: readonly RequestSpan[],
  connectionTimes: readonly number[],
  rttMs: number,
): number {
  const opened = (s: RequestSpan) =>
    connectionTimes.some((t) => t >= s.start - 0.5 && t <= s.end - rttMs) ? 1 : 0;
  return longestChain(spans, (s) => 1 + opened(s));
}

/** The longest chain of requests each starting after the previous one ended, counting 1 each. */
export function sequentialRequests(spans: readonly RequestSpan[]): number {
  return longestChain(spans, () => 1);
}

function longestChain(spans: readonly RequestSpan[], weight: (s: RequestSpan) => number): number {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const best: number[] = [];
  let longest = 0;
  for (let i = 0; i < sorted.length; i++) {
    const s = sorted[i];
    if (s === undefined) continue;
    const own = weight(s);
    let before = 0;
    for (let j = 0; j < i; j++) {
      const p = sorted[j];
      if (p !== undefined && p.end <= s.start + 0.5) before = Math.max(before, best[j] ?? 0);
    }
    best[i] = before + own;
    longest = Math.max(longest, best[i] ?? 0);
  }
  return longest;
}
