import { LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import { Crc64, pageChecksum } from './checksum.js';
import {
  CHECKSUM_FLAG,
  HEADER_FLAG_NO_CHECKSUM,
  HEADER_SIZE,
  INDEX_SIZE_FIELD,
  PAGE_HEADER_SIZE,
  type PageEncoding,
  TRAILER_SIZE,
} from './constants.js';
import { decodeHeader, decodeTrailer, isSnapshot, type LtxHeader, type LtxTrailer } from './header.js';
import { lockPgno } from './names.js';
import { decodeFramePayload, pageFrameExtent, readPageHeader } from './page-frame.js';
import { checkFileChecksumFlag, type PageIndexEntry, UvarintReader } from './page-index.js';
import { looksLikeLtxV1, unsupportedV1 } from './v1.js';
import { initZstd, isZstdReady } from './zstd.js';

export interface DecodedPage {
  pgno: number;
  data: Uint8Array;
  encoding: PageEncoding;
  /** Absolute offset of the page's frame in the file, and the frame's length. */
  offset: number;
  size: number;
}

export interface LtxDecodeOptions {
  /**
   * Verify the file checksum (and the post-apply checksum of snapshots with checksums on).
   * Default true. Structure (order, sizes, index vs frames, decompression) is always checked.
   */
  verify?: boolean;
}

export type LtxEvent =
  | { kind: 'header'; header: LtxHeader }
  | { kind: 'page'; page: DecodedPage }
  | { kind: 'end'; trailer: LtxTrailer; index: PageIndexEntry[] };

/** What next() returns when it cannot produce an event yet. */
export type LtxWait = 'need-data' | 'need-zstd';

type State = 'header' | 'page' | 'index' | 'size' | 'trailer' | 'done';

const EMPTY = new Uint8Array(0);

/**
 * Incremental, pull-based LTX parser: push() bytes as they arrive, next() returns one event at a
 * time (or says what it waits for), end() when the input is over. It keeps only the bytes not yet
 * parsed, so memory stays at about one frame plus the caller's chunk.
 */
export class LtxParser {
  private buf: Uint8Array = EMPTY;
  private pos = 0;
  /** File offset of buf[pos]. */
  private offset = 0;
  private state: State = 'header';
  private readonly verify: boolean;
  private readonly crc = new Crc64();
  private header: LtxHeader | undefined;
  private lock = 0;
  private lastPgno = 0;
  private dbChecksum = CHECKSUM_FLAG;
  private trackDbChecksum = false;
  private readonly frames: PageIndexEntry[] = [];
  private indexCount = 0;
  private indexBytes = 0;
  /** Copy of the header bytes, kept to probe for an LTX v1 file after a failure. */
  headerBytes: Uint8Array | undefined;

  constructor(options: LtxDecodeOptions = {}) {
    this.verify = options.verify ?? true;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const rest = this.buf.length - this.pos;
    if (rest === 0) {
      this.buf = chunk;
    } else {
      const merged = new Uint8Array(rest + chunk.length);
      merged.set(this.buf.subarray(this.pos));
      merged.set(chunk, rest);
      this.buf = merged;
    }
    this.pos = 0;
  }

  /** Bytes pushed but not parsed yet. */
  pending(): Uint8Array {
    return this.buf.subarray(this.pos);
  }

  /** Position of the next unparsed byte in the file. */
  fileOffset(): number {
    return this.offset;
  }

  isDone(): boolean {
    return this.state === 'done';
  }

  /** Call when the input has ended: throws if the file is incomplete or has bytes after it. */
  end(): void {
    if (this.state !== 'done') {
      const what = {
        header: 'header',
        page: 'page block',
        index: 'page index',
        size: 'index size',
        trailer: 'trailer',
      }[this.state];
      throw new LtxvfsError(
        'LTX_TRUNCATED',
        `LTX file truncated in the ${what} at offset ${this.offset + this.buf.length - this.pos}`,
      );
    }
    this.checkNoTrailingBytes();
  }

  next(): LtxEvent | LtxWait {
    for (;;) {
      const avail = this.buf.length - this.pos;
      switch (this.state) {
        case 'header': {
          if (avail < HEADER_SIZE) return 'need-data';
          const bytes = this.buf.subarray(this.pos, this.pos + HEADER_SIZE);
          this.headerBytes = bytes.slice();
          const header = decodeHeader(bytes);
          this.header = header;
          this.lock = lockPgno(header.pageSize);
          this.trackDbChecksum =
            this.verify && (header.flags & HEADER_FLAG_NO_CHECKSUM) === 0 && isSnapshot(header);
          this.hash(bytes);
          this.advance(HEADER_SIZE);
          this.state = 'page';
          return { kind: 'header', header };
        }
        case 'page': {
          if (avail < PAGE_HEADER_SIZE) return 'need-data';
          const b = this.buf;
          const p = this.pos;
          // biome-ignore lint/style/noNonNullAssertion: in bounds, avail >= PAGE_HEADER_SIZE is checked above
          if ((b[p]! | b[p + 1]! | b[p + 2]! | b[p + 3]! | b[p + 4]! | b[p + 5]!) === 0) {
            this.endOfPages();
            continue;
          }
          const page = this.page();
          if (typeof page === 'string') return page;
          return { kind: 'page', page };
        }
        case 'index': {
          if (!this.indexEntry()) return 'need-data';
          continue;
        }
        case 'size': {
          if (avail < INDEX_SIZE_FIELD) return 'need-data';
          const bytes = this.buf.subarray(this.pos, this.pos + INDEX_SIZE_FIELD);
          const declared = new DataView(bytes.buffer, bytes.byteOffset, INDEX_SIZE_FIELD).getBigUint64(0);
          if (declared !== BigInt(this.indexBytes)) {
            throw new LtxvfsError(
              'LTX_BAD_INDEX',
              `page index size field at offset ${this.offset} says ${declared} bytes, the index has ${this.indexBytes}`,
            );
          }
          this.hash(bytes);
          this.advance(INDEX_SIZE_FIELD);
          this.state = 'trailer';
          continue;
        }
        case 'trailer': {
          if (avail < TRAILER_SIZE) return 'need-data';
          const trailer = decodeTrailer(this.buf, this.pos);
          this.hash(this.buf.subarray(this.pos, this.pos + 8));
          this.checkTrailer(trailer);
          this.advance(TRAILER_SIZE);
          this.state = 'done';
          this.checkNoTrailingBytes();
          return { kind: 'end', trailer, index: this.frames };
        }
        case 'done':
          this.checkNoTrailingBytes();
          return 'need-data';
      }
    }
  }

  private hash(bytes: Uint8Array): void {
    if (this.verify) this.crc.update(bytes);
  }

  private advance(n: number): void {
    this.pos += n;
    this.offset += n;
  }

  private checkNoTrailingBytes(): void {
    const extra = this.buf.length - this.pos;
    if (extra > 0) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `${extra} unexpected bytes after the trailer at offset ${this.offset}`,
      );
    }
  }

  private endOfPages(): void {
    const h = present(this.header, 'LTX header of a parser past its header');
    if (isSnapshot(h)) {
      const expectedLast = h.commit === this.lock ? h.commit - 1 : h.commit;
      if (this.lastPgno !== expectedLast) {
        throw new LtxvfsError(
          'LTX_BAD_PAGE',
          `snapshot ends at page ${this.lastPgno} (offset ${this.offset}) but commit is ${h.commit}: pages are missing`,
        );
      }
    }
    this.hash(this.buf.subarray(this.pos, this.pos + PAGE_HEADER_SIZE));
    this.advance(PAGE_HEADER_SIZE);
    this.state = 'index';
  }

  private page(): DecodedPage | LtxWait {
    const h = present(this.header, 'LTX header of a parser past its header');
    const at = this.offset;
    const head = readPageHeader(this.buf, this.pos, at);
    const pgno = head.pgno;
    if (pgno === 0) throw new LtxvfsError('LTX_BAD_PAGE', `page number 0 at offset ${at}`);
    if (pgno <= this.lastPgno) {
      throw new LtxvfsError(
        'LTX_PAGE_ORDER',
        `page ${pgno} at offset ${at} follows page ${this.lastPgno}: pages must ascend`,
      );
    }
    if (pgno > h.commit)
      throw new LtxvfsError('LTX_BAD_PAGE', `page ${pgno} at offset ${at} is beyond commit ${h.commit}`);
    if (pgno === this.lock)
      throw new LtxvfsError('LTX_BAD_PAGE', `page ${pgno} at offset ${at} is the lock page`);
    if (isSnapshot(h)) {
      const expected = this.lastPgno + 1 === this.lock ? this.lastPgno + 2 : this.lastPgno + 1;
      if (pgno !== expected) {
        throw new LtxvfsError(
          'LTX_BAD_PAGE',
          `snapshot is missing page ${expected} (page ${pgno} at offset ${at})`,
        );
      }
    }
    const extent = pageFrameExtent(this.buf, this.pos, this.buf.length, h.pageSize, head, at);
    if (extent < 0) return 'need-data';
    if (head.encoding === 'zstd' && !isZstdReady()) return 'need-zstd';
    const end = this.pos + extent;
    const data = decodeFramePayload(this.buf, this.pos, end, h.pageSize, head, at);
    if (this.verify) {
      this.crc.update(
        this.buf.subarray(
          this.pos,
          this.pos + (head.encoding === 'lz4-frame' ? PAGE_HEADER_SIZE : PAGE_HEADER_SIZE + 4),
        ),
      );
      this.crc.update(data);
      if (this.trackDbChecksum)
        this.dbChecksum = CHECKSUM_FLAG | (this.dbChecksum ^ pageChecksum(pgno, data));
    }
    this.frames.push({ pgno, offset: at, size: extent });
    this.advance(extent);
    this.lastPgno = pgno;
    return { pgno, data, encoding: head.encoding, offset: at, size: extent };
  }

  /** Parses one index entry (or the terminator); false if more bytes are needed. */
  private indexEntry(): boolean {
    const r = new UvarintReader(this.buf, this.buf.length);
    r.pos = this.pos;
    const at = this.offset;
    const pgno = r.read(at);
    if (pgno < 0) return false;
    if (pgno === 0) {
      if (this.indexCount !== this.frames.length) {
        throw new LtxvfsError(
          'LTX_BAD_INDEX',
          `page index ends at offset ${at} after ${this.indexCount} entries, the file has ${this.frames.length} pages`,
        );
      }
      this.consumeIndex(r.pos - this.pos);
      this.state = 'size';
      return true;
    }
    const offset = r.read(at);
    if (offset < 0) return false;
    const size = r.read(at);
    if (size < 0) return false;
    const frame = this.frames[this.indexCount];
    if (!frame) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index at offset ${at} has more entries than the ${this.frames.length} pages`,
      );
    }
    if (frame.pgno !== pgno || frame.offset !== offset || frame.size !== size) {
      throw new LtxvfsError(
        'LTX_BAD_INDEX',
        `page index entry at offset ${at} says page ${pgno} at ${offset} (${size} bytes); the file has page ${frame.pgno} at ${frame.offset} (${frame.size} bytes)`,
      );
    }
    this.indexCount++;
    this.consumeIndex(r.pos - this.pos);
    return true;
  }

  private consumeIndex(n: number): void {
    this.hash(this.buf.subarray(this.pos, this.pos + n));
    this.indexBytes += n;
    this.advance(n);
  }

  private checkTrailer(t: LtxTrailer): void {
    const h = present(this.header, 'LTX header of a parser past its header');
    const at = this.offset;
    checkFileChecksumFlag(t);
    const noChecksum = (h.flags & HEADER_FLAG_NO_CHECKSUM) !== 0;
    if (noChecksum && t.postApplyChecksum !== 0n) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `post-apply checksum 0x${hex16(t.postApplyChecksum)} at offset ${at} must be 0 with the NoChecksum flag`,
      );
    }
    if (!noChecksum && (t.postApplyChecksum & CHECKSUM_FLAG) === 0n) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `post-apply checksum 0x${hex16(t.postApplyChecksum)} at offset ${at} lacks bit 63`,
      );
    }
    if (!this.verify) return;
    const computed = CHECKSUM_FLAG | this.crc.digest();
    if (computed !== t.fileChecksum) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `file checksum mismatch: trailer says 0x${hex16(t.fileChecksum)}, contents give 0x${hex16(computed)}`,
      );
    }
    if (this.trackDbChecksum && this.dbChecksum !== t.postApplyChecksum) {
      throw new LtxvfsError(
        'LTX_BAD_CHECKSUM',
        `post-apply checksum mismatch: trailer says 0x${hex16(t.postApplyChecksum)}, the snapshot's pages give 0x${hex16(this.dbChecksum)}`,
      );
    }
  }
}

function hex16(v: bigint): string {
  return v.toString(16).padStart(16, '0');
}

export interface DecodedLtxFile {
  header: LtxHeader;
  pages: DecodedPage[];
  index: PageIndexEntry[];
  trailer: LtxTrailer;
}

/**
 * Decodes a whole file held in memory, with full verification by default. Files with zstd pages
 * need `await initZstd()` first. An LTX v1 file is reported as LTX_UNSUPPORTED_VERSION.
 */
export function decodeLtxFile(bytes: Uint8Array, options: LtxDecodeOptions = {}): DecodedLtxFile {
  const parser = new LtxParser(options);
  parser.push(bytes);
  let header: LtxHeader | undefined;
  const pages: DecodedPage[] = [];
  try {
    for (;;) {
      const ev = parser.next();
      if (ev === 'need-zstd') {
        throw new LtxvfsError(
          'LTX_ZSTD_UNINITIALIZED',
          'file has zstd pages: call `await initZstd()` before decodeLtxFile',
        );
      }
      if (ev === 'need-data') {
        parser.end();
        throw new LtxvfsError('LTX_TRUNCATED', 'LTX file truncated');
      }
      if (ev.kind === 'header') header = ev.header;
      else if (ev.kind === 'page') pages.push(ev.page);
      else
        return {
          header: present(header, 'LTX header before the trailer'),
          pages,
          index: ev.index,
          trailer: ev.trailer,
        };
    }
  } catch (err) {
    if (err instanceof LtxvfsError && err.code !== 'LTX_ZSTD_UNINITIALIZED' && looksLikeLtxV1(bytes)) {
      throw unsupportedV1();
    }
    throw err;
  }
}

/**
 * Streaming decode from async chunks with full verification by default, holding about one frame
 * and one chunk: `await d.header()`, `for await (const p of d.pages())`, `await d.trailer()`.
 * Verification failures of the whole file (checksums, index) surface from the last step, so a
 * consumer must not commit what it derived from the pages before trailer() resolves.
 */
export class LtxStreamDecoder {
  private readonly parser: LtxParser;
  private readonly chunks: AsyncIterator<Uint8Array>;
  private inputEnded = false;
  private headerValue: LtxHeader | undefined;
  private endValue: { trailer: LtxTrailer; index: PageIndexEntry[] } | undefined;
  private pagesStarted = false;

  constructor(chunks: AsyncIterable<Uint8Array>, options: LtxDecodeOptions = {}) {
    this.parser = new LtxParser(options);
    this.chunks = chunks[Symbol.asyncIterator]();
  }

  async header(): Promise<LtxHeader> {
    if (!this.headerValue) {
      const ev = await this.nextEvent();
      if (ev?.kind !== 'header') throw new LtxvfsError('LTX_TRUNCATED', 'LTX stream ended before its header');
      this.headerValue = ev.header;
    }
    return this.headerValue;
  }

  async *pages(): AsyncGenerator<DecodedPage> {
    if (this.pagesStarted)
      throw new LtxvfsError('BAD_ARGUMENT', 'LtxStreamDecoder.pages() can be iterated only once');
    this.pagesStarted = true;
    await this.header();
    for (;;) {
      const ev = await this.nextEvent();
      if (!ev) throw new LtxvfsError('LTX_TRUNCATED', 'LTX stream ended before its trailer');
      if (ev.kind === 'page') yield ev.page;
      else if (ev.kind === 'end') {
        this.endValue = { trailer: ev.trailer, index: ev.index };
        return;
      }
    }
  }

  /** Reads (and verifies) the rest of the file; resolves with the trailer and the page index. */
  async trailer(): Promise<{ trailer: LtxTrailer; index: PageIndexEntry[] }> {
    if (!this.endValue) {
      if (!this.pagesStarted) for await (const _ of this.pages());
      else {
        for (;;) {
          const ev = await this.nextEvent();
          if (!ev) throw new LtxvfsError('LTX_TRUNCATED', 'LTX stream ended before its trailer');
          if (ev.kind === 'end') {
            this.endValue = { trailer: ev.trailer, index: ev.index };
            break;
          }
        }
      }
    }
    // Drain the input so bytes after the trailer are reported.
    while (!this.inputEnded) await this.pull();
    return present(this.endValue, 'LTX trailer after the last page');
  }

  private async pull(): Promise<void> {
    const r = await this.chunks.next();
    if (r.done) {
      this.inputEnded = true;
      this.parser.end();
    } else {
      this.parser.push(r.value);
    }
  }

  private async nextEvent(): Promise<LtxEvent | undefined> {
    try {
      for (;;) {
        const ev = this.parser.next();
        if (ev === 'need-zstd') await initZstd();
        else if (ev === 'need-data') {
          if (this.inputEnded) return undefined;
          await this.pull();
        } else return ev;
      }
    } catch (err) {
      throw await this.explain(err);
    }
  }

  /** A failure at the first page may mean an LTX v1 file: read on to tell, then report. */
  private async explain(err: unknown): Promise<unknown> {
    const p = this.parser;
    if (!(err instanceof LtxvfsError) || !p.headerBytes || p.fileOffset() !== HEADER_SIZE || this.inputEnded)
      return err;
    const pending = p.pending().slice();
    const parts = [p.headerBytes, pending];
    let total = p.headerBytes.length + pending.length;
    // The probe needs the whole file; cap it so a huge bad stream is not buffered.
    const cap = 256 * 1024 * 1024;
    for (;;) {
      const r = await this.chunks.next();
      if (r.done) break;
      total += r.value.length;
      if (total > cap) return err;
      parts.push(r.value.slice());
    }
    this.inputEnded = true;
    const all = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      all.set(part, at);
      at += part.length;
    }
    return looksLikeLtxV1(all) ? unsupportedV1() : err;
  }
}
