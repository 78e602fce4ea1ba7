import { LRUCache } from 'lru-cache';
import { decodePageFrame, initZstd } from '../ltx/index.js';
import type { ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import type { FileIndex, PageLocation } from './page-map.js';

export interface PageFetcherOptions {
  cacheBytes: number;
  /** Merge runs wanted at the same time in one object into one range GET. */
  coalesce: boolean;
  /** Grow read-ahead while misses walk forward through an object. */
  readAhead: boolean;
  maxReadAheadBytes: number;
}

/** First read-ahead window once a second consecutive miss proves the access sequential. */
const INITIAL_READ_AHEAD = 128 * 1024;
/** A miss this many frames past the previous run still counts as sequential (B-tree interior pages interleave). */
const SEQUENTIAL_SLACK = 8;
/** Bookkeeping per cached page, so the byte bound also covers keys and objects. */
const ENTRY_OVERHEAD = 96;

interface Deferred {
  promise: Promise<Uint8Array>;
  resolve(page: Uint8Array): void;
  reject(err: unknown): void;
}

function deferred(): Deferred {
  let resolve!: (page: Uint8Array) => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<Uint8Array>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A run may fail for pages nobody awaits (read-ahead); that must not surface as unhandled.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

interface Stream {
  next: number;
  window: number;
}

interface Run {
  index: FileIndex;
  first: number;
  last: number;
  pageSize: number;
}

export function cacheKey(index: FileIndex, entry: number): string {
  return `${index.key}#${index.pgnos[entry]}`;
}

/**
 * Turns page locations into page bytes: a byte-bounded LRU shared by every view of a replica,
 * in-flight de-duplication, coalescing of adjacent frames into one range GET, and a read-ahead
 * window that doubles while misses move forward through one object. Returned arrays are shared
 * with the cache: callers must copy before modifying.
 */
export class PageFetcher {
  private readonly cache: LRUCache<string, Uint8Array>;
  private readonly inflight = new Map<string, Deferred>();
  private readonly streams = new Map<string, Stream>();
  private queue: Run[] = [];
  private flushScheduled = false;

  constructor(
    private readonly client: ReplicaClient,
    private readonly options: PageFetcherOptions,
  ) {
    this.cache = new LRUCache<string, Uint8Array>({
      maxSize: Math.max(options.cacheBytes, 1),
      sizeCalculation: (page) => page.byteLength + ENTRY_OVERHEAD,
    });
  }

  cached(loc: PageLocation): Uint8Array | undefined {
    return this.cache.get(cacheKey(loc.index, loc.entry));
  }

  read(loc: PageLocation, pageSize: number): Promise<Uint8Array> {
    const key = cacheKey(loc.index, loc.entry);
    const hit = this.cache.get(key);
    if (hit !== undefined) return Promise.resolve(hit);
    const pending = this.inflight.get(key);
    if (pending !== undefined) return pending.promise;
    const run = this.planRun(loc, pageSize);
    for (let e = run.first; e <= run.last; e++) this.inflight.set(cacheKey(run.index, e), deferred());
    const mine = this.inflight.get(key)!.promise;
    if (this.options.coalesce) {
      this.queue.push(run);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    } else {
      void this.fetchRun(run);
    }
    return mine;
  }

  /** Frames first..last of one object, decoded, bypassing the cache (hydration). */
  async readFrames(index: FileIndex, first: number, last: number, pageSize: number): Promise<Uint8Array[]> {
    const bytes = await this.readBytes(index, first, last);
    const start = index.offsets[first];
    const pages: Uint8Array[] = [];
    for (let e = first; e <= last; e++) pages.push(await this.decodeAsync(index, e, bytes, start, pageSize));
    return pages;
  }

  /** Largest range one request may cover (read-ahead cap); hydration sizes its requests by it. */
  maxRunBytes(): number {
    return this.options.maxReadAheadBytes;
  }

  clearCache(): void {
    this.cache.clear();
  }

  cacheStats(): { pages: number; bytes: number } {
    return { pages: this.cache.size, bytes: this.cache.calculatedSize };
  }

  private planRun(loc: PageLocation, pageSize: number): Run {
    const { index, entry } = loc;
    let last = entry;
    if (this.options.readAhead) {
      const stream = this.streams.get(index.key);
      const sequential =
        stream !== undefined && entry >= stream.next && entry <= stream.next + SEQUENTIAL_SLACK;
      const window = sequential
        ? Math.min(
            stream.window === 0 ? INITIAL_READ_AHEAD : stream.window * 2,
            this.options.maxReadAheadBytes,
          )
        : 0;
      let bytes = index.sizes[entry];
      while (last + 1 < index.pgnos.length) {
        const next = last + 1;
        if (index.offsets[next] !== index.offsets[last] + index.sizes[last]) break;
        if (bytes + index.sizes[next] > window) break;
        if (this.inflight.has(cacheKey(index, next))) break;
        bytes += index.sizes[next];
        last = next;
      }
      this.streams.set(index.key, { next: last + 1, window });
      if (this.streams.size > 256) this.streams.delete(this.streams.keys().next().value as string);
    }
    return { index, first: entry, last, pageSize };
  }

  private flush(): void {
    this.flushScheduled = false;
    const runs = this.queue;
    this.queue = [];
    runs.sort((a, b) => (a.index.key < b.index.key ? -1 : a.index.key > b.index.key ? 1 : a.first - b.first));
    let cur: Run | undefined;
    for (const run of runs) {
      if (
        cur !== undefined &&
        cur.index === run.index &&
        run.first <= cur.last + 1 &&
        run.index.offsets[run.first] <= cur.index.offsets[cur.last] + cur.index.sizes[cur.last]
      ) {
        cur.last = Math.max(cur.last, run.last);
        continue;
      }
      if (cur !== undefined) void this.fetchRun(cur);
      cur = { ...run };
    }
    if (cur !== undefined) void this.fetchRun(cur);
  }

  private async fetchRun(run: Run): Promise<void> {
    const { index, first, last, pageSize } = run;
    try {
      const bytes = await this.readBytes(index, first, last);
      const start = index.offsets[first];
      for (let e = first; e <= last; e++) {
        const key = cacheKey(index, e);
        const waiting = this.inflight.get(key);
        try {
          const page = await this.decodeAsync(index, e, bytes, start, pageSize);
          this.cache.set(key, page);
          waiting?.resolve(page);
        } catch (err) {
          waiting?.reject(err);
        }
        this.inflight.delete(key);
      }
    } catch (err) {
      for (let e = first; e <= last; e++) {
        const key = cacheKey(index, e);
        this.inflight.get(key)?.reject(err);
        this.inflight.delete(key);
      }
    }
  }

  private async readBytes(index: FileIndex, first: number, last: number): Promise<Uint8Array> {
    const start = index.offsets[first];
    const length = index.offsets[last] + index.sizes[last] - start;
    const bytes = await this.client.readRange(index.file, start, length);
    if (bytes.byteLength < length) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `object ${index.key} of ${this.client.url} is truncated: its page index places page ${index.pgnos[last]} ` +
          `at bytes ${start}..${start + length}, but the object ends after ${start + bytes.byteLength} bytes`,
      );
    }
    return bytes;
  }

  /** zstd pages (our own encoding) need a WASM codec whose one-time start is async: load it on first use. */
  private async decodeAsync(
    index: FileIndex,
    entry: number,
    bytes: Uint8Array,
    start: number,
    pageSize: number,
  ): Promise<Uint8Array> {
    try {
      return this.decode(index, entry, bytes, start, pageSize);
    } catch (err) {
      if (!isLtxvfsError((err as { cause?: unknown }).cause, 'LTX_ZSTD_UNINITIALIZED')) throw err;
      await initZstd();
      return this.decode(index, entry, bytes, start, pageSize);
    }
  }

  private decode(
    index: FileIndex,
    entry: number,
    bytes: Uint8Array,
    start: number,
    pageSize: number,
  ): Uint8Array {
    const from = index.offsets[entry] - start;
    const frame = bytes.subarray(from, from + index.sizes[entry]);
    const pgno = index.pgnos[entry];
    try {
      // Own the bytes: a cached page must not keep a multi-MiB read-ahead buffer alive.
      const page = decodePageFrame(frame, pageSize, pgno);
      return page.buffer === bytes.buffer ? page.slice() : page;
    } catch (err) {
      const why = isLtxvfsError(err) || err instanceof Error ? err.message : String(err);
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `page ${pgno} in object ${index.key} of ${this.client.url} (frame at offset ${index.offsets[entry]}) is corrupt: ${why}`,
        { cause: err },
      );
    }
  }
}
