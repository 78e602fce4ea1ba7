// biome-ignore-all lint/style/noNonNullAssertion: byte codec; every typed-array index is inside a length checked before the read, and a per-byte check would cost in the hot path
import { LtxvfsError } from '../util/errors.js';
import {
  HEADER_SIZE,
  INDEX_SIZE_FIELD,
  PAGE_HEADER_SIZE,
  PAGE_INDEX_TAIL_ESTIMATE,
  TRAILER_SIZE,
} from './constants.js';
import { decodeHeader, decodeTrailer, type LtxHeader, type LtxTrailer } from './header.js';

/** Where one page frame sits in its file: absolute offset and whole-frame size. */
export interface PageIndexEntry {
  pgno: number;
  offset: number;
  size: number;
}

/** Smallest possible file: header, terminator, index terminator, size field, trailer. */
export const MIN_FILE_SIZE = HEADER_SIZE + PAGE_HEADER_SIZE + 1 + INDEX_SIZE_FIELD + TRAILER_SIZE;

export function uvarintLength(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = v < 0x80000000 ? v >>> 7 : Math.floor(v / 128);
    n++;
  }
  return n;
}

export function writeUvarint(b: Uint8Array, at: number, v: number): number {
  while (v >= 128) {
    if (v < 0x80000000) {
      b[at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    } else {
      b[at++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
  }
  b[at++] = v;
  return at;
}

/**
 * Reads uvarints from a buffer without allocating per value (index parsing runs once per page
 * of a file): read() returns the value and moves `pos`, or returns -1 (pos unchanged) if the
 * bytes end first. Values beyond 2^53 are rejected: no offset or page number gets that large.
 */
export class UvarintReader {
  pos = 0;

  constructor(
    private readonly b: Uint8Array,
    private readonly end: number,
  ) {}

  /** `fileOffset` is where the entry being read starts, for the error message. */
  read(fileOffset: number): number {
    const b = this.b;
    let at = this.pos;
    if (at < this.end && b[at]! < 0x80) {
      this.pos = at + 1;
      return b[at]!;
    }
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (at >= this.end) return -1;
      const byte = b[at++]!;
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        this.pos = at;
        return value;
      }
      scale *= 128;
    }
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `page index at offset ${fileOffset}: varint too long or beyond 2^53`,
    );
  }
}

/** Page index bytes: uvarint triples, uvarint 0, then the u64 BE byte count of both. */
export function encodePageIndex(entries: readonly PageIndexEntry[]): Uint8Array {
  let len = 1;
  for (const e of entries) len += uvarintLength(e.pgno) + uvarintLength(e.offset) + uvarintLength(e.size);
  const b = new Uint8Array(len + INDEX_SIZE_FIELD);
  let p = 0;
  for (const e of entries) {
    p = writeUvarint(b, p, e.pgno);
    p = writeUvarint(b, p, e.offset);
    p = writeUvarint(b, p, e.size);
  }
  b[p++] = 0;
  new DataView(b.buffer).setBigUint64(p, BigInt(len));
  return b;
}

/**
 * Checks entries against each other and the file layout: ascending page numbers, frames packed
 * back to back from the end of the header to the page-block terminator.
 */
export function checkIndexLayout(entries: readonly PageIndexEntry[], indexStart: number): void {
  let expectedOffset = HEADER_SIZE;
  let prevPgno = 0;
  for (const e of entries) {
    if (e.pgno <= prevPgno) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index: page ${e.pgno} follows page ${prevPgno} (not ascending)`,
      );
    }
    if (e.offset !== expectedOffset) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index: page ${e.pgno} at offset ${e.offset}, expected ${expectedOffset}`,
      );
    }
    if (e.size <= PAGE_HEADER_SIZE) {
      throw new LtxvfsError('LTX_BAD_INDEX', `page index: page ${e.pgno} has frame size ${e.size}`);
    }
    expectedOffset += e.size;
    prevPgno = e.pgno;
  }
  if (expectedOffset + PAGE_HEADER_SIZE !== indexStart) {
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `page index: frames end at ${expectedOffset}, but the page block ends at ${indexStart - PAGE_HEADER_SIZE}`,
    );
  }
}

/**
 * A parsed page index as three parallel columns (entry i is pgnos[i], offsets[i], sizes[i]): a
 * 1 GiB snapshot has ~266k entries, and one object per entry costs more to build and to keep than
 * the bytes they describe.
 */
export interface PageIndexColumns {
  readonly pgnos: Uint32Array;
  readonly offsets: Float64Array;
  readonly sizes: Uint32Array;
}

/** The entries of a column index as objects (tests and small tools; readers use the columns). */
export function indexEntries(columns: PageIndexColumns): PageIndexEntry[] {
  const out: PageIndexEntry[] = [];
  const { pgnos, offsets, sizes } = columns;
  for (let i = 0; i < pgnos.length; i++) {
    out.push({ pgno: pgnos[i] ?? 0, offset: offsets[i] ?? 0, size: sizes[i] ?? 0 });
  }
  return out;
}

export type PageIndexTail =
  | { kind: 'ok'; index: PageIndexEntry[]; trailer: LtxTrailer; indexStart: number; header?: LtxHeader }
  | { kind: 'need-more'; indexStart: number };

export type PageIndexColumnsTail =
  | {
      kind: 'ok';
      columns: PageIndexColumns;
      trailer: LtxTrailer;
      indexStart: number;
      /** Bytes of the index, terminator and size field included (sizes the next file's tail read). */
      indexSize: number;
      header?: LtxHeader;
    }
  | { kind: 'need-more'; indexStart: number };

/**
 * Random access: parses the page index and trailer from the last `tail.length` bytes of a file of
 * `fileSize` bytes. If the index starts before the tail, returns where it starts so the caller can
 * fetch from there to the end and call again. When the tail is the whole file, the header is
 * decoded too. The file checksum cannot be checked without every page; that is full verification.
 */
export function parsePageIndexTail(tail: Uint8Array, fileSize: number): PageIndexTail {
  const parsed = parsePageIndexColumns(tail, fileSize);
  if (parsed.kind === 'need-more') return parsed;
  const result: PageIndexTail = {
    kind: 'ok',
    index: indexEntries(parsed.columns),
    trailer: parsed.trailer,
    indexStart: parsed.indexStart,
  };
  if (parsed.header !== undefined) result.header = parsed.header;
  return result;
}

/** parsePageIndexTail into columns: what readers use. */
export function parsePageIndexColumns(tail: Uint8Array, fileSize: number): PageIndexColumnsTail {
  if (!Number.isSafeInteger(fileSize) || fileSize < MIN_FILE_SIZE) {
    throw new LtxvfsError(
      'LTX_TRUNCATED',
      `LTX file of ${fileSize} bytes is shorter than the minimum ${MIN_FILE_SIZE}`,
    );
  }
  if (tail.length > fileSize) {
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `tail of ${tail.length} bytes is longer than the file (${fileSize} bytes)`,
    );
  }
  if (tail.length < INDEX_SIZE_FIELD + TRAILER_SIZE) {
    return { kind: 'need-more', indexStart: fileSize - INDEX_SIZE_FIELD - TRAILER_SIZE };
  }
  const tailStart = fileSize - tail.length;
  const sizeAt = tail.length - TRAILER_SIZE - INDEX_SIZE_FIELD;
  const declared = new DataView(tail.buffer, tail.byteOffset + sizeAt, INDEX_SIZE_FIELD).getBigUint64(0);
  const maxIndex = fileSize - MIN_FILE_SIZE + 1;
  if (declared < 1n || declared > BigInt(maxIndex)) {
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `page index size field ${declared} (at offset ${fileSize - TRAILER_SIZE - INDEX_SIZE_FIELD}) does not fit a ${fileSize}-byte file`,
    );
  }
  const indexSize = Number(declared);
  const indexStart = fileSize - TRAILER_SIZE - INDEX_SIZE_FIELD - indexSize;
  if (indexStart < tailStart) return { kind: 'need-more', indexStart };
  // A counting pass (every uvarint ends in a byte below 0x80) sizes the columns exactly; it is
  // cheaper than allocating for the 3-bytes-per-entry worst case and copying down.
  let ends = 0;
  for (let i = indexStart - tailStart, stop = sizeAt - 1; i < stop; i++) if ((tail[i] ?? 0) < 0x80) ends++;
  const capacity = Math.floor(ends / 3);
  const pgnos = new Uint32Array(capacity);
  const offsets = new Float64Array(capacity);
  const sizes = new Uint32Array(capacity);
  let n = 0;
  const end = sizeAt;
  const r = new UvarintReader(tail, end);
  r.pos = indexStart - tailStart;
  for (;;) {
    const at = tailStart + r.pos;
    const pgno = r.read(at);
    if (pgno === 0) break;
    const offset = pgno < 0 ? -1 : r.read(at);
    const size = offset < 0 ? -1 : r.read(at);
    if (size < 0 || n >= capacity) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index at offset ${at}: runs past its declared size ${indexSize}`,
      );
    }
    if (pgno > 0xffffffff || size > 0xffffffff) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index at offset ${at}: page ${pgno} size ${size} out of range`,
      );
    }
    pgnos[n] = pgno;
    offsets[n] = offset;
    sizes[n] = size;
    n++;
  }
  const p = r.pos;
  if (p !== end) {
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `page index ends at offset ${tailStart + p}, its size field says ${fileSize - 24}`,
    );
  }
  const columns: PageIndexColumns = {
    pgnos: n === capacity ? pgnos : pgnos.subarray(0, n),
    offsets: n === capacity ? offsets : offsets.subarray(0, n),
    sizes: n === capacity ? sizes : sizes.subarray(0, n),
  };
  checkColumnLayout(columns, indexStart);
  const trailer = decodeTrailer(tail, tail.length - TRAILER_SIZE);
  checkFileChecksumFlag(trailer);
  const result: PageIndexColumnsTail = {
    kind: 'ok',
    columns,
    trailer,
    indexStart,
    indexSize: indexSize + INDEX_SIZE_FIELD,
  };
  if (tailStart === 0) result.header = decodeHeader(tail);
  return result;
}

/** checkIndexLayout over columns. */
export function checkColumnLayout(columns: PageIndexColumns, indexStart: number): void {
  const { pgnos, offsets, sizes } = columns;
  let expectedOffset = HEADER_SIZE;
  let prevPgno = 0;
  for (let i = 0; i < pgnos.length; i++) {
    const pgno = pgnos[i] ?? 0;
    const offset = offsets[i] ?? 0;
    const size = sizes[i] ?? 0;
    if (pgno <= prevPgno) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index: page ${pgno} follows page ${prevPgno} (not ascending)`,
      );
    }
    if (offset !== expectedOffset) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index: page ${pgno} at offset ${offset}, expected ${expectedOffset}`,
      );
    }
    if (size <= PAGE_HEADER_SIZE) {
      throw new LtxvfsError('LTX_BAD_INDEX', `page index: page ${pgno} has frame size ${size}`);
    }
    expectedOffset += size;
    prevPgno = pgno;
  }
  if (expectedOffset + PAGE_HEADER_SIZE !== indexStart) {
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `page index: frames end at ${expectedOffset}, but the page block ends at ${indexStart - PAGE_HEADER_SIZE}`,
    );
  }
}

/**
 * How many bytes to read from the end of an object to get its whole page index in one request.
 * An entry takes 6-11 bytes and a frame of a 4 KiB page of ordinary data compresses to well over
 * 1 KiB, so 1/128 of the object covers the index with room to spare (a 1 GiB snapshot: 8 MiB read
 * for a ~2.5 MiB index, instead of a second round trip); pages that compress to almost nothing
 * can still need a second read. A known index size of the previous file of the same level raises
 * the guess. Never less than the fixed 64 KiB estimate (time to first byte dominates a GET that
 * small), never more than the object.
 */
export function pageIndexTailLength(fileSize: number, previousIndexSize = 0): number {
  const bySize = Math.ceil(fileSize / 128) + INDEX_SIZE_FIELD + TRAILER_SIZE;
  const byPrevious = previousIndexSize > 0 ? Math.ceil(previousIndexSize * 1.25) + TRAILER_SIZE : 0;
  return Math.min(fileSize, Math.max(PAGE_INDEX_TAIL_ESTIMATE, bySize, byPrevious));
}

export function checkFileChecksumFlag(trailer: LtxTrailer): void {
  if (trailer.fileChecksum < 0x8000000000000000n) {
    throw new LtxvfsError(
      'LTX_BAD_CHECKSUM',
      `file checksum 0x${trailer.fileChecksum.toString(16).padStart(16, '0')} lacks bit 63`,
    );
  }
}
