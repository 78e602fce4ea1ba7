import { LRUCache } from 'lru-cache';
import {
  decodePageFrame,
  initZstd,
  PAGE_INDEX_TAIL_ESTIMATE,
  pageDigest,
  pageDigestsObjectName,
} from '../ltx/index.js';
import type { ReplicaClient, SmallObject } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import { PageDigestStore } from './page-digest-store.js';
import {
  entryEnd,
  entryOffset,
  entryPgno,
  entrySize,
  type FileIndex,
  type PageLocation,
} from './page-map.js';
import { checkWholeObject } from './whole-object.js';

export interface PageFetcherOptions {
  cacheBytes: number;
  /** Merge runs wanted at the same time in one object into one range GET. */
  coalesce: boolean;
  /** Grow read-ahead while misses walk forward through an object. */
  readAhead: boolean;
  maxReadAheadBytes: number;
  /**
   * Check random reads of large objects against their page digests where the writer left them
   * (default true).
   */
  pageDigests?: boolean;
  /** Where notes about missing or unusable page digests go. */
  log?: (line: string) => void;
}

/** First read-ahead window once a second consecutive miss proves the access sequential. */
const INITIAL_READ_AHEAD = 128 * 1024;
/** The window multiplies by this per sequential miss: 128 KiB, 512 KiB, 2 MiB, 4 MiB. */
const READ_AHEAD_GROWTH = 4;
/** A miss this many frames past the previous run still counts as sequential (B-tree interior pages interleave). */
const SEQUENTIAL_SLACK = 8;
/** Sequential streams remembered per object, and objects remembered. */
const STREAMS_PER_OBJECT = 4;
const MAX_STREAM_OBJECTS = 256;
/** Bookkeeping per cached page, so the byte bound also covers keys and objects. */
const ENTRY_OVERHEAD = 96;
/** Object names whose cache-key bases are kept (see PageFetcher.keyOf). */
const KEY_BASES_MAX = 1 << 16;
/** Chunks a sequential stream may have fetched ahead of the one it is reading (and in flight). */
const PREFETCH_DEPTH = 2;
/** All streams together keep at most this many read-ahead windows in flight in the background. */
const PREFETCH_GLOBAL_WINDOWS = 4;

/** Other small objects fetched alongside the first miss in one (see readSmallSiblings). */
const SMALL_SIBLINGS_MAX = 7;

/**
 * Objects up to this size are read whole and checked against their file checksum before any of
 * their pages is served (one GET either way; the index loader reads them whole too).
 */
export const WHOLE_FILE_READ_MAX = PAGE_INDEX_TAIL_ESTIMATE;

export function isReadWhole(index: FileIndex): boolean {
  return index.file.size <= WHOLE_FILE_READ_MAX;
}

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
  /** The object the stream walks through (to plan background chunks). */
  index: FileIndex;
  pageSize: number;
  /** Entry ranges this stream fetched, oldest first (the last one ends at `next - 1`). */
  chunks: { first: number; last: number }[];
  /** Background chunks of this stream not yet answered. */
  prefetching: number;
}

interface Run {
  index: FileIndex;
  first: number;
  last: number;
  pageSize: number;
  /** Frames whose waiters this run answers (entry -> deferred registered in `inflight`). */
  owned: Map<number, Deferred>;
}

/**
 * The frames from `first` on that lie back to back in the object and fit in `window` bytes (the
 * first always counts), so one range request can fetch them all.
 */
function adjacentRun(index: FileIndex, first: number, window: number): { last: number; bytes: number } {
  let last = first;
  let bytes = entrySize(index, first);
  while (last + 1 < index.pgnos.length) {
    const next = last + 1;
    if (entryOffset(index, next) !== entryEnd(index, last)) break;
    if (bytes + entrySize(index, next) > window) break;
    bytes += entrySize(index, next);
    last = next;
  }
  return { last, bytes };
}

function samePages(a: Uint32Array, b: Uint32Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Turns page locations into page bytes: a byte-bounded LRU shared by every view of a replica,
 * in-flight de-duplication, coalescing of adjacent frames into one range GET, and a read-ahead
 * window that grows while misses move forward through one object. Returned arrays are shared
 * with the cache: callers must copy before modifying.
 */
export class PageFetcher {
  private readonly cache: LRUCache<number, Uint8Array>;
  private readonly inflight = new Map<number, Deferred>();
  /**
   * Cache keys are numbers (base + frame entry), not `key#pgno` strings: the lookup runs on every
   * page SQLite reads. Every FileIndex of one object (same name, same pages) shares a base, as the
   * old strings did; a base is never handed out twice, so a number never names two frames.
   */
  private readonly keyBaseOf = new WeakMap<FileIndex, number>();
  /** By object name: its base and an index that holds it (to tell a rewritten object apart). */
  private readonly keyBases = new Map<string, { base: number; index: WeakRef<FileIndex> }>();
  private nextKeyBase = 0;
  /** Per object, most recently used last. */
  private readonly streams = new Map<string, Stream[]>();
  private queue: Run[] = [];
  private flushScheduled = false;
  private prefetchBytesInFlight = 0;
  private prefetchRequests = 0;
  private readonly digests: PageDigestStore | undefined;

  constructor(
    private readonly client: ReplicaClient,
    private readonly options: PageFetcherOptions,
  ) {
    this.digests =
      options.pageDigests === false ? undefined : new PageDigestStore(client, options.log ?? (() => {}));
    this.cache = new LRUCache<number, Uint8Array>({
      maxSize: Math.max(options.cacheBytes, 1),
      sizeCalculation: (page) => page.byteLength + ENTRY_OVERHEAD,
    });
  }

  private keyOf(index: FileIndex, entry: number): number {
    return (this.keyBaseOf.get(index) ?? this.assignKeyBase(index)) + entry;
  }

  private assignKeyBase(index: FileIndex): number {
    const known = this.keyBases.get(index.key);
    const other = known?.index.deref();
    let base: number;
    if (known !== undefined && other !== undefined && samePages(other.pgnos, index.pgnos)) {
      base = known.base;
    } else {
      // Past the bound the names start over: pages cached under the old bases are read again
      // once, never confused.
      if (this.keyBases.size >= KEY_BASES_MAX) this.keyBases.clear();
      base = this.nextKeyBase;
      this.nextKeyBase += Math.max(1, index.pgnos.length);
      this.keyBases.set(index.key, { base, index: new WeakRef(index) });
    }
    this.keyBaseOf.set(index, base);
    return base;
  }

  cached(loc: PageLocation): Uint8Array | undefined {
    const hit = this.cache.get(this.keyOf(loc.index, loc.entry));
    if (hit !== undefined) this.consumed(loc);
    return hit;
  }

  /** A page read from elsewhere (the hydrated file) that is the content of `loc`'s frame. */
  remember(loc: PageLocation, page: Uint8Array): void {
    this.cache.set(this.keyOf(loc.index, loc.entry), page);
  }

  read(loc: PageLocation, pageSize: number): Promise<Uint8Array> {
    const key = this.keyOf(loc.index, loc.entry);
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      this.consumed(loc);
      return Promise.resolve(hit);
    }
    const pending = this.inflight.get(key);
    if (pending !== undefined) {
      this.consumed(loc);
      return pending.promise;
    }
    const run = this.planRun(loc, pageSize);
    for (let e = run.first; e <= run.last; e++) {
      const k = this.keyOf(run.index, e);
      // Frames another run is already fetching are fetched again (no extra request), not awaited twice.
      if (this.inflight.has(k)) continue;
      const d = deferred();
      this.inflight.set(k, d);
      run.owned.set(e, d);
    }
    const mine = present(
      run.owned.get(loc.entry),
      `deferred read of entry ${loc.entry} in its own run`,
    ).promise;
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

  /**
   * A page of the small object `missed` was not cached: fetch the other small objects of the same
   * view in the same round (each one whole GET), not later one stall each. A scan of a view opened
   * from the manifest (small files' indexes carried, so none of their pages read at open) meets
   * the L0 files' pages one by one otherwise; a LIST-path open has them cached already. Off with
   * read-ahead (the per-page baseline), and capped so a view of many L0 files costs a bounded round.
   */
  readSmallSiblings(missed: FileIndex, files: readonly FileIndex[], pageSize: number): void {
    if (!this.options.readAhead || !isReadWhole(missed)) return;
    let started = 0;
    for (const index of files) {
      if (started >= SMALL_SIBLINGS_MAX) return;
      if (index === missed || !isReadWhole(index) || index.pgnos.length === 0) continue;
      const key = this.keyOf(index, 0);
      if (this.cache.has(key) || this.inflight.has(key)) continue;
      started++;
      void this.read({ index, entry: 0 }, pageSize).catch(() => {});
    }
  }

  /**
   * The page of frame `entry`, decoded from `bytes` (object bytes from offset `start` on), bypassing
   * the cache (hydration streams objects itself).
   */
  decodeFrame(
    index: FileIndex,
    entry: number,
    bytes: Uint8Array,
    start: number,
    pageSize: number,
  ): Promise<Uint8Array> {
    return this.decodeAsync(index, entry, bytes, start, pageSize);
  }

  /**
   * The page digests of a large object (null for objects read whole, or without usable digests);
   * `object` is its digests object when the caller already read it (undefined: fetch it).
   */
  pageDigests(index: FileIndex, object?: SmallObject | null): Promise<Uint32Array | null> {
    if (isReadWhole(index) || this.digests === undefined) return Promise.resolve(null);
    return this.digests.adopt(index, object);
  }

  /** Whether `page`, decoded from frame `entry`, is what the object's digests say (true without digests). */
  matchesDigest(entry: number, page: Uint8Array, digests: Uint32Array | null): boolean {
    const expected = digests?.[entry];
    return expected === undefined || pageDigest(page) === expected;
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

  /** Background read-ahead requests issued so far (tests, benchmarks). */
  prefetchCount(): number {
    return this.prefetchRequests;
  }

  /**
   * A sequential stream reached the second half of one of its chunks: fetch the following chunk
   * now, so the next miss finds it in flight or cached instead of paying a round trip. Streams
   * that stop being read issue nothing more; random access never forms a stream with a window.
   */
  private consumed(loc: PageLocation): void {
    if (!this.options.readAhead) return;
    const streams = this.streams.get(loc.index.key);
    if (streams === undefined) return;
    const { entry } = loc;
    for (const s of streams) {
      if (s.window === 0 || s.index !== loc.index) continue;
      const at = s.chunks.findIndex((c) => entry >= c.first && entry <= c.last);
      const chunk = s.chunks[at];
      if (chunk === undefined) continue;
      if (entry < chunk.first + (chunk.last - chunk.first) / 2) return;
      if (s.chunks.length - 1 - at >= PREFETCH_DEPTH || s.prefetching >= PREFETCH_DEPTH) return;
      this.prefetch(s);
      return;
    }
  }

  private prefetch(s: Stream): void {
    const { index } = s;
    const first = s.next;
    if (first >= index.pgnos.length) return;
    if (
      this.prefetchBytesInFlight + this.options.maxReadAheadBytes >
      PREFETCH_GLOBAL_WINDOWS * this.options.maxReadAheadBytes
    )
      return;
    const window = Math.min(s.window * READ_AHEAD_GROWTH, this.options.maxReadAheadBytes);
    const { last, bytes } = adjacentRun(index, first, window);
    s.window = window;
    s.next = last + 1;
    s.chunks.push({ first, last });
    if (s.chunks.length > PREFETCH_DEPTH + 2) s.chunks.shift();
    const run: Run = { index, first, last, pageSize: s.pageSize, owned: new Map() };
    for (let e = first; e <= last; e++) {
      const k = this.keyOf(index, e);
      if (this.inflight.has(k) || this.cache.has(k)) continue;
      const d = deferred();
      this.inflight.set(k, d);
      run.owned.set(e, d);
    }
    if (run.owned.size === 0) return;
    s.prefetching++;
    this.prefetchBytesInFlight += bytes;
    this.prefetchRequests++;
    // The request is done once its bytes arrived; decoding them overlaps the reader and the next request.
    let done = false;
    const arrived = (): void => {
      if (done) return;
      done = true;
      s.prefetching--;
      this.prefetchBytesInFlight -= bytes;
    };
    void this.fetchRun(run, arrived).finally(arrived);
  }

  private planRun(loc: PageLocation, pageSize: number): Run {
    const { index, entry } = loc;
    // A small object is fetched whole: every page of it comes from one checked read.
    if (isReadWhole(index))
      return { index, first: 0, last: index.pgnos.length - 1, pageSize, owned: new Map() };
    let last = entry;
    if (this.options.readAhead) {
      // Several streams per object: a miss elsewhere (a B-tree interior page, another
      // connection's lookup) starts its own stream instead of resetting a scan's window.
      let streams = this.streams.get(index.key);
      if (streams === undefined) {
        streams = [];
        this.streams.set(index.key, streams);
        if (this.streams.size > MAX_STREAM_OBJECTS)
          this.streams.delete(this.streams.keys().next().value as string);
      }
      // Every stream this miss continues merges into one, keeping the widest window.
      let previous = -1;
      for (let i = streams.length - 1; i >= 0; i--) {
        const s = streams[i];
        if (s !== undefined && entry >= s.next && entry <= s.next + SEQUENTIAL_SLACK) {
          previous = Math.max(previous, s.window);
          streams.splice(i, 1);
        }
      }
      const window =
        previous < 0
          ? 0
          : Math.min(
              previous === 0 ? INITIAL_READ_AHEAD : previous * READ_AHEAD_GROWTH,
              this.options.maxReadAheadBytes,
            );
      last = adjacentRun(index, entry, window).last;
      // Streams this run overtook are done.
      for (let i = streams.length - 1; i >= 0; i--) {
        const next = streams[i]?.next ?? -1;
        if (next > entry && next <= last + 1) streams.splice(i, 1);
      }
      streams.push({
        next: last + 1,
        window,
        index,
        pageSize,
        chunks: [{ first: entry, last }],
        prefetching: 0,
      });
      if (streams.length > STREAMS_PER_OBJECT) streams.shift();
    }
    return { index, first: entry, last, pageSize, owned: new Map() };
  }

  private flush(): void {
    this.flushScheduled = false;
    const runs = this.queue;
    this.queue = [];
    runs.sort((a, b) => (a.index.key < b.index.key ? -1 : a.index.key > b.index.key ? 1 : a.first - b.first));
    let cur: Run | undefined;
    for (const run of runs) {
      if (cur !== undefined && cur.index === run.index && run.first <= cur.last + 1) {
        cur.last = Math.max(cur.last, run.last);
        for (const [e, d] of run.owned) cur.owned.set(e, d);
        continue;
      }
      if (cur !== undefined) void this.fetchRun(cur);
      cur = { ...run, owned: new Map(run.owned) };
    }
    if (cur !== undefined) void this.fetchRun(cur);
  }

  private async fetchRun(run: Run, arrived?: () => void): Promise<void> {
    const { index, first, last, pageSize, owned } = run;
    const settle = (e: number): Deferred | undefined => {
      const d = owned.get(e);
      if (d !== undefined && this.inflight.get(this.keyOf(index, e)) === d)
        this.inflight.delete(this.keyOf(index, e));
      return d;
    };
    try {
      // A random read of a large object fetches the object's page digests beside its bytes (the
      // same round; once per object): a read whole is checked by its CRC-64 instead.
      const [bytes, digests] = await Promise.all([
        this.readBytes(index, first, last),
        isReadWhole(index) ? null : (this.digests?.get(index) ?? null),
      ]);
      arrived?.();
      const start = entryOffset(index, first);
      for (let e = first; e <= last; e++) {
        let page: Uint8Array;
        try {
          page = await this.decodeAsync(index, e, bytes, start, pageSize, digests);
        } catch (err) {
          settle(e)?.reject(err);
          continue;
        }
        this.cache.set(this.keyOf(index, e), page);
        settle(e)?.resolve(page);
      }
    } catch (err) {
      for (let e = first; e <= last; e++) settle(e)?.reject(err);
    }
  }

  private async readBytes(index: FileIndex, first: number, last: number): Promise<Uint8Array> {
    const start = entryOffset(index, first);
    const length = entryEnd(index, last) - start;
    if (isReadWhole(index)) return (await this.readWholeFile(index)).subarray(start, start + length);
    const bytes = await this.client.readRange(index.file, start, length);
    if (bytes.byteLength < length) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `object ${index.key} of ${this.client.url} is truncated: its page index places page ${entryPgno(index, last)} ` +
          `at bytes ${start}..${start + length}, but the object ends after ${start + bytes.byteLength} bytes`,
      );
    }
    return bytes;
  }

  /** The whole object, checked against its file checksum (REPLICA_CORRUPT naming it otherwise). */
  private async readWholeFile(index: FileIndex): Promise<Uint8Array> {
    const { size } = index.file;
    const bytes = await this.client.readRange(index.file, 0, size);
    try {
      if (bytes.byteLength !== size) {
        throw new Error(
          `the listing says ${size} bytes, a read of the whole object gave ${bytes.byteLength}`,
        );
      }
      await checkWholeObject(bytes);
    } catch (err) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `object ${index.key} of ${this.client.url} is corrupt: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
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
    digests: Uint32Array | null = null,
  ): Promise<Uint8Array> {
    try {
      return this.decode(index, entry, bytes, start, pageSize, digests);
    } catch (err) {
      if (!isLtxvfsError((err as { cause?: unknown }).cause, 'LTX_ZSTD_UNINITIALIZED')) throw err;
      await initZstd();
      return this.decode(index, entry, bytes, start, pageSize, digests);
    }
  }

  private decode(
    index: FileIndex,
    entry: number,
    bytes: Uint8Array,
    start: number,
    pageSize: number,
    digests: Uint32Array | null,
  ): Uint8Array {
    const from = entryOffset(index, entry) - start;
    const frame = bytes.subarray(from, from + entrySize(index, entry));
    const pgno = entryPgno(index, entry);
    let page: Uint8Array;
    try {
      // Own the bytes: a cached page must not keep a multi-MiB read-ahead buffer alive.
      page = decodePageFrame(frame, pageSize, pgno);
      if (page.buffer === bytes.buffer) page = page.slice();
    } catch (err) {
      const why = isLtxvfsError(err) || err instanceof Error ? err.message : String(err);
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `page ${pgno} in object ${index.key} of ${this.client.url} (frame at offset ${entryOffset(index, entry)}) is corrupt: ${why}`,
        { cause: err },
      );
    }
    if (!this.matchesDigest(entry, page, digests)) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `page ${pgno} in object ${index.key} of ${this.client.url} (frame at offset ${entryOffset(index, entry)}) is corrupt: its bytes do not match its digest in ${pageDigestsObjectName(index.file)}`,
      );
    }
    return page;
  }
}
