import type { ReplicaClient } from '../src/storage/types.js';

/** Start and end (performance.now()) of one storage request. */
export interface RequestSpan {
  start: number;
  end: number;
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
        return result.finally(() => spans.push({ start, end: performance.now() }));
      };
    },
  });
  return { client: timed, spans };
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
