import { LRUCache } from 'lru-cache';
import {
  type DecodedLtxFile,
  decodeHeader,
  HEADER_SIZE,
  type LtxHeader,
  type PageIndexColumns,
  pageIndexTailLength,
  parsePageIndexColumns,
  TRAILER_SIZE,
} from '../ltx/index.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { type FileIndex, fileKey, makeFileIndex } from './page-map.js';
import { checkWholeObject } from './whole-object.js';

export interface LoadedFile {
  index: FileIndex;
  /** Present when the tail covered the whole file, or when the header was asked for. */
  header?: LtxHeader;
}

/** Object identities (with sizes) stay cached this long; a version holds its own references. */
const MAX_CACHED_INDEXES = 2048;

/**
 * Fetches and caches page indexes: one range GET of the tail per object (a second only when the
 * index is larger than the estimate). Small objects are covered whole, so their header comes
 * free; a header of a large object costs one 100-byte read, and only when asked for.
 */
/** Tail reads in flight per loadAll: enough to hide a 20-50 ms RTT, far below any fd limit. */
const LOAD_CONCURRENCY = 32;

export class IndexLoader {
  private readonly cache = new LRUCache<string, Promise<LoadedFile>>({ max: MAX_CACHED_INDEXES });
  /** Index size of the last file loaded per level: the next file's tail read is sized from it. */
  private readonly lastIndexSize = new Map<number, number>();

  /**
   * Told of every index fetched, with the object decoded when the tail read covered the whole
   * object (checked whole: its pages are in hand, verified).
   */
  onFetched: ((index: FileIndex, whole: DecodedLtxFile | undefined) => void) | undefined;

  constructor(private readonly client: ReplicaClient) {}

  /**
   * Loads every file, at most LOAD_CONCURRENCY at a time (a replica of 50,000 L0 files must not
   * open 50,000 handles or sockets at once); `withHeader` files also get their header.
   */
  async loadAll(files: readonly LtxFileInfo[], withHeader: ReadonlySet<LtxFileInfo>): Promise<LoadedFile[]> {
    const out = new Array<LoadedFile>(files.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < files.length; i = next++) {
        const f = files[i];
        if (f !== undefined) out[i] = await this.load(f, withHeader.has(f));
      }
    };
    await Promise.all(Array.from({ length: Math.min(LOAD_CONCURRENCY, files.length) }, worker));
    return out;
  }

  /**
   * A file whose index location (and maybe bytes) the manifest gave: the index bytes as given, or
   * one GET of exactly [indexOffset, size). Cached like load(); `commit` comes from the manifest.
   */
  loadKnown(
    file: LtxFileInfo,
    known: { indexOffset: number; commit: number; index?: Uint8Array },
  ): Promise<LoadedFile> {
    const key = `${fileKey(file)}@${file.size}`;
    let pending = this.cache.get(key);
    if (pending === undefined) {
      pending = (async () => {
        const indexPart =
          known.index ??
          (await this.client.readRange(file, known.indexOffset, file.size - known.indexOffset));
        // The trailer is not needed to read pages; a zero trailer with the flag bit keeps the
        // parser's shape (it checks the bit, not the checksum).
        let bytes = indexPart;
        if (known.index !== undefined) {
          bytes = new Uint8Array(indexPart.length + TRAILER_SIZE);
          bytes.set(indexPart);
          bytes[indexPart.length + 8] = 0x80;
        }
        let parsed: ReturnType<typeof parsePageIndexColumns>;
        try {
          parsed = parsePageIndexColumns(bytes, file.size);
        } catch (err) {
          throw this.wrap(file, err);
        }
        if (parsed.kind === 'need-more' || parsed.indexStart !== known.indexOffset) {
          throw this.corrupt(file, `its page index is not where the manifest says (${known.indexOffset})`);
        }
        return { index: makeFileIndex(file, parsed.columns, known.commit) };
      })();
      this.cache.set(key, pending);
      pending.catch(() => this.cache.delete(key));
    }
    return pending;
  }

  async load(file: LtxFileInfo, withHeader: boolean): Promise<LoadedFile> {
    const key = `${fileKey(file)}@${file.size}`;
    let pending = this.cache.get(key);
    if (pending === undefined) {
      pending = this.fetch(file, withHeader);
      this.cache.set(key, pending);
      pending.catch(() => this.cache.delete(key));
    }
    const loaded = await pending;
    if (!withHeader || loaded.header !== undefined) return loaded;
    const header = await this.readHeader(file);
    const withIt = { index: { ...loaded.index, commit: header.commit }, header };
    this.cache.set(key, Promise.resolve(withIt));
    return withIt;
  }

  private async fetch(file: LtxFileInfo, withHeader: boolean): Promise<LoadedFile> {
    const tailLength = pageIndexTailLength(file.size, this.lastIndexSize.get(file.level));
    const tailStart = file.size - tailLength;
    const headerPromise = withHeader && tailStart > 0 ? this.readHeader(file) : undefined;
    headerPromise?.catch(() => {});
    const tail = await this.client.readRange(file, tailStart, tailLength);
    if (tail.byteLength < tailLength) {
      throw this.corrupt(
        file,
        `the listing says ${file.size} bytes but a read of its tail ended at ${tailStart + tail.byteLength}`,
      );
    }
    let columns: PageIndexColumns;
    let whole: DecodedLtxFile | undefined;
    try {
      // A tail that covers the whole object is checked whole: its index and header are then as written.
      if (tailStart === 0) whole = await checkWholeObject(tail);
      let parsed = parsePageIndexColumns(tail, file.size);
      if (parsed.kind === 'need-more') {
        const more = await this.client.readRange(file, parsed.indexStart, file.size - parsed.indexStart);
        parsed = parsePageIndexColumns(more, file.size);
        if (parsed.kind === 'need-more')
          throw this.corrupt(file, 'its page index does not fit in the object');
      }
      columns = parsed.columns;
      this.lastIndexSize.set(file.level, parsed.indexSize);
    } catch (err) {
      throw this.wrap(file, err);
    }
    let header: LtxHeader | undefined;
    if (tailStart === 0) header = this.decode(file, tail.subarray(0, HEADER_SIZE));
    else if (headerPromise !== undefined) header = await headerPromise;
    const { pgnos, offsets, sizes } = columns;
    for (let i = 0; i < pgnos.length; i++) {
      const offset = offsets[i] ?? 0;
      const end = offset + (sizes[i] ?? 0);
      if (offset < HEADER_SIZE || end > file.size) {
        throw this.corrupt(file, `its page index places page ${pgnos[i]} at bytes ${offset}..${end}`);
      }
    }
    const index = makeFileIndex(file, columns, header?.commit ?? Number.POSITIVE_INFINITY);
    this.onFetched?.(index, whole);
    return { index, header };
  }

  private async readHeader(file: LtxFileInfo): Promise<LtxHeader> {
    const bytes = await this.client.readRange(file, 0, HEADER_SIZE);
    return this.decode(file, bytes);
  }

  private decode(file: LtxFileInfo, bytes: Uint8Array): LtxHeader {
    let header: LtxHeader;
    try {
      header = decodeHeader(bytes);
    } catch (err) {
      throw this.wrap(file, err);
    }
    if (header.minTxid !== file.minTxid || header.maxTxid !== file.maxTxid) {
      throw this.corrupt(
        file,
        `its header says TXIDs ${header.minTxid}..${header.maxTxid}, its name says otherwise`,
      );
    }
    return header;
  }

  private wrap(file: LtxFileInfo, err: unknown): LtxvfsError {
    if (isLtxvfsError(err) && (err.code === 'REPLICA_CORRUPT' || err.code.startsWith('STORAGE_'))) return err;
    return this.corrupt(file, err instanceof Error ? err.message : String(err), err);
  }

  private corrupt(file: LtxFileInfo, why: string, cause?: unknown): LtxvfsError {
    return new LtxvfsError(
      'REPLICA_CORRUPT',
      `object ${fileKey(file)} of ${this.client.url} is corrupt: ${why}`,
      { cause },
    );
  }
}
