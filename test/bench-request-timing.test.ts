import { describe, expect, it } from 'vitest';
import {
  type RequestSpan,
  sequentialNetworkRoundTrips,
  sequentialRequests,
  sequentialRoundTrips,
} from '../bench/request-timing.js';

/**
 * The bench's round-trip counts from request start/end times (ms) and the proxy's connection
 * accept times, on hand-made timelines whose answers are counted by eye.
 */
const RTT = 20;
/** Manifest + hot pages in parallel on new connections, then an index read, then the leaf; slow CPU. */
const manifestOpen: RequestSpan[] = [
  { start: 0, end: 70 },
  { start: 0.2, end: 68 },
  { start: 71, end: 125 },
  { start: 130, end: 190 },
];
const accepted = [1.5, 1.8];

describe('sequential round trips of a cold query', () => {
  it('network count: one per request in the longest chain, plus the handshake of a new connection', () => {
    expect(sequentialRequests(manifestOpen)).toBe(3);
    expect(sequentialNetworkRoundTrips(manifestOpen, accepted, RTT)).toBe(4);
    // The same timeline counted by duration grows with the CPU time in it.
    expect(sequentialRoundTrips(manifestOpen, RTT)).toBe(4 + 3 + 3);
  });

  it('a connection counts for a request only if it was opened while that request could still use it', () => {
    // Opened during the index read but too late to carry it (less than a round trip before it ended).
    expect(sequentialNetworkRoundTrips(manifestOpen, [...accepted, 120], RTT)).toBe(4);
    // Opened early in the leaf read: that read paid a handshake.
    expect(sequentialNetworkRoundTrips(manifestOpen, [...accepted, 131], RTT)).toBe(5);
    // No new connections at all (all reused): one per request.
    expect(sequentialNetworkRoundTrips(manifestOpen, [], RTT)).toBe(3);
  });

  it('requests in flight together cost one round between them', () => {
    const parallel: RequestSpan[] = [
      { start: 0, end: 45 },
      { start: 46, end: 70 },
      { start: 46, end: 72 },
      { start: 46.5, end: 71 },
    ];
    expect(sequentialRequests(parallel)).toBe(2);
    expect(sequentialNetworkRoundTrips(parallel, [0.5, 0.7, 0.9], RTT)).toBe(3);
  });
});
