import { LtxvfsError } from '../util/errors.js';
import { HEADER_SIZE, INDEX_SIZE_FIELD, PAGE_HEADER_SIZE, TRAILER_SIZE } from './constants.js';
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
    if (at < this.end && b[at] < 0x80) {
      this.pos = at + 1;
      return b[at];
    }
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      if (at >= this.end) return -1;
      const byte = b[at++];
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

export type PageIndexTail =
  | { kind: 'ok'; index: PageIndexEntry[]; trailer: LtxTrailer; indexStart: number; header?: LtxHeader }
  | { kind: 'need-more'; indexStart: number };

/**
 * Random access: parses the page index and trailer from the last `tail.length` bytes of a file of
 * `fileSize` bytes. If the index starts before the tail, returns where it starts so the caller can
 * fetch from there to the end and call again. When the tail is the whole file, the header is
 * decoded too. The file checksum cannot be checked without every page; that is full verification.
 */
export function parsePageIndexTail(tail: Uint8Array, fileSize: number): PageIndexTail {
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
  const index: PageIndexEntry[] = [];
  const end = sizeAt;
  const r = new UvarintReader(tail, end);
  r.pos = indexStart - tailStart;
  for (;;) {
    const at = tailStart + r.pos;
    const pgno = r.read(at);
    if (pgno === 0) break;
    const offset = pgno < 0 ? -1 : r.read(at);
    const size = offset < 0 ? -1 : r.read(at);
    if (size < 0) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index at offset ${at}: runs past its declared size ${indexSize}`,
      );
    }
    index.push({ pgno, offset, size });
  }
  const p = r.pos;
  if (p !== end) {
    throw new LtxvfsError(
      'LTX_BAD_INDEX',
      `page index ends at offset ${tailStart + p}, its size field says ${fileSize - 24}`,
    );
  }
  checkIndexLayout(index, indexStart);
  const trailer = decodeTrailer(tail, tail.length - TRAILER_SIZE);
  checkFileChecksumFlag(trailer);
  const result: PageIndexTail = { kind: 'ok', index, trailer, indexStart };
  if (tailStart === 0) result.header = decodeHeader(tail);
  return result;
}

export function checkFileChecksumFlag(trailer: LtxTrailer): void {
  if (trailer.fileChecksum < 0x8000000000000000n) {
    throw new LtxvfsError(
      'LTX_BAD_CHECKSUM',
      `file checksum 0x${trailer.fileChecksum.toString(16).padStart(16, '0')} lacks bit 63`,
    );
  }
}
