import type { RequestStats } from '../storage/types.js';

/** Compact byte count for log lines: `812 B`, `12.3 KiB`, `4.0 MiB`, `1.2 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/**
 * One log line of what the store cost so far, e.g.
 * `requests: 120 PUT, 34 GET, 12 LIST, 3 DELETE, 0 HEAD; 1.2 MiB written, 300.0 KiB read`.
 * Counting happens in the ReplicaClient, so uploads, compaction and retention all show up as
 * long as they share one client.
 */
export function formatRequestStats(stats: RequestStats): string {
  return (
    `requests: ${stats.put} PUT, ${stats.get} GET, ${stats.list} LIST, ${stats.delete} DELETE, ${stats.head} HEAD; ` +
    `${formatBytes(stats.bytesWritten)} written, ${formatBytes(stats.bytesRead)} read`
  );
}
