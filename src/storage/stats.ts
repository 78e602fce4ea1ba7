import type { RequestStats } from './types.js';

export type RequestKind = 'list' | 'get' | 'put' | 'delete' | 'head';

/**
 * Request counters. Both backends count the same logical requests, so a test that asserts "one
 * LIST per poll" means the same thing over a directory and over S3: one list per listing page
 * (S3: each ListObjectsV2 call; file: each listFiles/levels call), one get per read, one put per
 * write, one delete per batch of up to 1000 keys or per small-object delete.
 */
export class StatsCounter {
  private counts: RequestStats = emptyStats();

  count(kind: RequestKind, n = 1): void {
    this.counts[kind] += n;
  }

  read(bytes: number): void {
    this.counts.bytesRead += bytes;
  }

  written(bytes: number): void {
    this.counts.bytesWritten += bytes;
  }

  snapshot(): RequestStats {
    return { ...this.counts };
  }

  reset(): void {
    this.counts = emptyStats();
  }
}

export function emptyStats(): RequestStats {
  return { list: 0, get: 0, put: 0, delete: 0, head: 0, bytesRead: 0, bytesWritten: 0 };
}
