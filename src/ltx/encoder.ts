import { LtxvfsError } from '../util/errors.js';
import { Crc64, pageChecksum } from './checksum.js';
import { CHECKSUM_FLAG, HEADER_FLAG_NO_CHECKSUM, PAGE_HEADER_SIZE, type PageEncoding } from './constants.js';
import { encodeHeader, encodeTrailer, isSnapshot, type LtxHeader } from './header.js';
import type { Lz4Compressor } from './lz4-block.js';
import { lockPgno } from './names.js';
import { encodePageFrame } from './page-frame.js';
import { encodePageIndex, type PageIndexEntry } from './page-index.js';

export interface LtxEncoderOptions {
  /** Page payload encoding; 'lz4-block' (Litestream >= v0.5.16) unless told otherwise. */
  encoding?: PageEncoding;
  /**
   * LZ4 compressor of both LZ4 encodings: 'native' (default; lz4-napi when it loaded, else the JS
   * compressor) or 'pierrec' (JS, Litestream's exact bytes: re-encoding a Litestream file's pages
   * gives the identical file). Every valid LZ4 block decodes the same, so either is compatible.
   */
  compressor?: Lz4Compressor;
}

type State = 'new' | 'pages' | 'done';

/**
 * Streaming LTX writer: begin() gives the header bytes, writePage() one frame per page in
 * ascending order, finish() the terminator, page index and trailer. Concatenated in that order
 * they are the file. Holds one page at a time plus the index entries.
 *
 * Checks what superfly/ltx's encoder checks: page size, ascending page numbers within Commit, the
 * lock page never stored, snapshots complete, checksum flags coherent.
 */
export class LtxEncoder {
  readonly header: LtxHeader;
  readonly encoding: PageEncoding;
  readonly compressor: Lz4Compressor;
  private readonly headerBytes: Uint8Array;
  private readonly crc = new Crc64();
  private readonly index: PageIndexEntry[] = [];
  private readonly lock: number;
  private readonly trackDbChecksum: boolean;
  private dbChecksum = CHECKSUM_FLAG;
  private offset = 0;
  private lastPgno = 0;
  private state: State = 'new';

  constructor(header: LtxHeader, options: LtxEncoderOptions = {}) {
    this.headerBytes = encodeHeader(header);
    this.header = { ...header };
    this.encoding = options.encoding ?? 'lz4-block';
    this.compressor = options.compressor ?? 'native';
    this.lock = lockPgno(header.pageSize);
    this.trackDbChecksum = (header.flags & HEADER_FLAG_NO_CHECKSUM) === 0 && isSnapshot(header);
  }

  begin(): Uint8Array {
    if (this.state !== 'new') throw new LtxvfsError('LTX_ENCODE', 'begin() called twice');
    this.state = 'pages';
    this.crc.update(this.headerBytes);
    this.offset = this.headerBytes.length;
    return this.headerBytes;
  }

  writePage(pgno: number, data: Uint8Array): Uint8Array {
    if (this.state !== 'pages') {
      throw new LtxvfsError(
        'LTX_ENCODE',
        this.state === 'new' ? 'writePage() before begin()' : 'writePage() after finish()',
      );
    }
    const h = this.header;
    if (!Number.isInteger(pgno) || pgno < 1)
      throw new LtxvfsError('LTX_ENCODE', `invalid page number ${pgno}`);
    if (data.length !== h.pageSize) {
      throw new LtxvfsError(
        'LTX_ENCODE',
        `page ${pgno} has ${data.length} bytes, page size is ${h.pageSize}`,
      );
    }
    if (pgno <= this.lastPgno) {
      throw new LtxvfsError(
        'LTX_PAGE_ORDER',
        `page ${pgno} written after page ${this.lastPgno}: pages must ascend`,
      );
    }
    if (pgno > h.commit)
      throw new LtxvfsError('LTX_ENCODE', `page ${pgno} is beyond the commit size ${h.commit}`);
    if (pgno === this.lock)
      throw new LtxvfsError('LTX_ENCODE', `page ${pgno} is the lock page and is never stored`);
    if (isSnapshot(h)) {
      const expected = this.lastPgno + 1 === this.lock ? this.lastPgno + 2 : this.lastPgno + 1;
      if (pgno !== expected) {
        throw new LtxvfsError('LTX_ENCODE', `snapshot is missing page ${expected} (got page ${pgno} next)`);
      }
    }
    const frame = encodePageFrame(pgno, data, this.encoding, this.compressor);
    // The file checksum covers the page header, the size prefix if any, and the page bytes.
    this.crc.update(
      frame.subarray(0, this.encoding === 'lz4-frame' ? PAGE_HEADER_SIZE : PAGE_HEADER_SIZE + 4),
    );
    this.crc.update(data);
    if (this.trackDbChecksum) this.dbChecksum = CHECKSUM_FLAG | (this.dbChecksum ^ pageChecksum(pgno, data));
    this.index.push({ pgno, offset: this.offset, size: frame.length });
    this.offset += frame.length;
    this.lastPgno = pgno;
    return frame;
  }

  /**
   * Ends the file. postApplyChecksum defaults to 0 with NoChecksum and to the computed database
   * checksum for snapshots with checksums; incremental files with checksums must pass it.
   */
  finish(trailer: { postApplyChecksum?: bigint } = {}): Uint8Array {
    if (this.state !== 'pages') {
      throw new LtxvfsError(
        'LTX_ENCODE',
        this.state === 'new' ? 'finish() before begin()' : 'finish() called twice',
      );
    }
    const h = this.header;
    if (isSnapshot(h)) {
      const expectedLast = h.commit === this.lock ? h.commit - 1 : h.commit;
      if (this.lastPgno !== expectedLast) {
        throw new LtxvfsError(
          'LTX_ENCODE',
          `snapshot ends at page ${this.lastPgno} but commit is ${h.commit}: snapshots must hold every page`,
        );
      }
    }
    const noChecksum = (h.flags & HEADER_FLAG_NO_CHECKSUM) !== 0;
    let post = trailer.postApplyChecksum;
    if (post === undefined) {
      if (noChecksum) post = 0n;
      else if (this.trackDbChecksum) post = this.dbChecksum;
      else
        throw new LtxvfsError(
          'LTX_ENCODE',
          'postApplyChecksum is required for incremental files with checksums on',
        );
    }
    if (noChecksum && post !== 0n) {
      throw new LtxvfsError('LTX_ENCODE', 'postApplyChecksum must be 0 when the NoChecksum flag is set');
    }
    if (!noChecksum) {
      if ((post & CHECKSUM_FLAG) === 0n || post > 0xffffffffffffffffn) {
        throw new LtxvfsError('LTX_ENCODE', `postApplyChecksum 0x${post.toString(16)} lacks bit 63`);
      }
      if (h.commit === 0 && post !== CHECKSUM_FLAG) {
        throw new LtxvfsError(
          'LTX_ENCODE',
          'an empty database (commit 0) has postApplyChecksum 0x8000000000000000',
        );
      }
    }
    this.state = 'done';
    const terminator = new Uint8Array(PAGE_HEADER_SIZE);
    const index = encodePageIndex(this.index);
    const postBytes = encodeTrailer({ postApplyChecksum: post, fileChecksum: 0n }).subarray(0, 8);
    this.crc.update(terminator).update(index).update(postBytes);
    const trailerBytes = encodeTrailer({
      postApplyChecksum: post,
      fileChecksum: CHECKSUM_FLAG | this.crc.digest(),
    });
    const out = new Uint8Array(PAGE_HEADER_SIZE + index.length + trailerBytes.length);
    out.set(index, PAGE_HEADER_SIZE);
    out.set(trailerBytes, PAGE_HEADER_SIZE + index.length);
    return out;
  }

  /** Index entries of the pages written so far (offsets from the start of the file). */
  pageIndex(): readonly PageIndexEntry[] {
    return this.index;
  }
}

/** Encodes a whole file in memory. */
export function encodeLtxFile(
  header: LtxHeader,
  pages: Iterable<{ pgno: number; data: Uint8Array }>,
  options: LtxEncoderOptions & { postApplyChecksum?: bigint } = {},
): Uint8Array {
  const enc = new LtxEncoder(header, options);
  const parts: Uint8Array[] = [enc.begin()];
  for (const p of pages) parts.push(enc.writePage(p.pgno, p.data));
  parts.push(enc.finish({ postApplyChecksum: options.postApplyChecksum }));
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
