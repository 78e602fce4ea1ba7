// biome-ignore-all lint/style/noNonNullAssertion: byte codec; every typed-array index is inside a length checked before the read, and a per-byte check would cost in the hot path
import { LtxvfsError } from '../util/errors.js';
import { PAGE_FLAG_SIZE, PAGE_FLAG_ZSTD, PAGE_HEADER_SIZE, type PageEncoding } from './constants.js';
import {
  type Lz4Compressor,
  lz4Bound,
  lz4CompressBlock,
  lz4CompressNative,
  lz4DecompressPage,
} from './lz4-block.js';
import { decodeLz4Frame, encodeLz4Frame, lz4FrameExtent } from './lz4-frame.js';
import { zstdCompressPage, zstdDecompressPage } from './zstd.js';

/** Page-header flags of each encoding. */
export const PAGE_FLAGS: Record<PageEncoding, number> = {
  'lz4-frame': 0,
  'lz4-block': PAGE_FLAG_SIZE,
  zstd: PAGE_FLAG_ZSTD | PAGE_FLAG_SIZE,
};

export function encodingOfFlags(flags: number): PageEncoding | undefined {
  if (flags === PAGE_FLAG_SIZE) return 'lz4-block';
  if (flags === 0) return 'lz4-frame';
  if (flags === (PAGE_FLAG_ZSTD | PAGE_FLAG_SIZE)) return 'zstd';
  return undefined;
}

/** Largest payload a size-prefixed frame may declare for a page (bounds allocation on bad input). */
export function maxSizedPayload(encoding: PageEncoding, pageSize: number): number {
  return encoding === 'zstd' ? pageSize + (pageSize >> 7) + 128 : lz4Bound(pageSize);
}

function readU32BE(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function writeU32BE(b: Uint8Array, i: number, v: number): void {
  b[i] = v >>> 24;
  b[i + 1] = v >>> 16;
  b[i + 2] = v >>> 8;
  b[i + 3] = v;
}

/**
 * One page frame: 6-byte page header, then the encoding's payload. `compressor` picks the LZ4
 * compressor of both LZ4 encodings (native by default, see lz4-block.ts).
 */
export function encodePageFrame(
  pgno: number,
  data: Uint8Array,
  encoding: PageEncoding,
  compressor: Lz4Compressor = 'native',
): Uint8Array {
  if (encoding === 'lz4-block') {
    const block = compressor === 'native' ? lz4CompressNative(data) : undefined;
    let out: Uint8Array;
    let n: number;
    if (block) {
      n = block.length;
      out = new Uint8Array(PAGE_HEADER_SIZE + 4 + n);
      out.set(block, PAGE_HEADER_SIZE + 4);
    } else {
      out = new Uint8Array(PAGE_HEADER_SIZE + 4 + lz4Bound(data.length));
      n = lz4CompressBlock(data, out, PAGE_HEADER_SIZE + 4);
    }
    writeU32BE(out, 0, pgno);
    out[5] = PAGE_FLAG_SIZE;
    writeU32BE(out, PAGE_HEADER_SIZE, n);
    return out.subarray(0, PAGE_HEADER_SIZE + 4 + n);
  }
  const payload = encoding === 'zstd' ? zstdCompressPage(data) : encodeLz4Frame(data, compressor);
  const sized = encoding === 'zstd';
  const head = PAGE_HEADER_SIZE + (sized ? 4 : 0);
  const out = new Uint8Array(head + payload.length);
  writeU32BE(out, 0, pgno);
  const flags = PAGE_FLAGS[encoding];
  out[4] = flags >>> 8;
  out[5] = flags & 0xff;
  if (sized) writeU32BE(out, PAGE_HEADER_SIZE, payload.length);
  out.set(payload, head);
  return out;
}

export interface FrameHead {
  pgno: number;
  flags: number;
  encoding: PageEncoding;
}

/** Where a frame is, for error messages: its file offset when known (>= 0), else its length. */
export function describeFrame(fileOffset: number, length: number): string {
  return fileOffset >= 0 ? `at offset ${fileOffset}` : `(frame of ${length} bytes)`;
}

/** Reads and checks the 6-byte page header at buf[at]; fileOffset (or -1) is for errors. */
export function readPageHeader(buf: Uint8Array, at: number, fileOffset: number): FrameHead {
  const pgno = readU32BE(buf, at);
  const flags = (buf[at + 4]! << 8) | buf[at + 5]!;
  const encoding = encodingOfFlags(flags);
  if (encoding === undefined) {
    const where = describeFrame(fileOffset, buf.length - at);
    throw new LtxvfsError(
      'LTX_BAD_FLAGS',
      `page ${pgno} ${where}: unknown page flags 0x${flags.toString(16).padStart(4, '0')}`,
    );
  }
  return { pgno, flags, encoding };
}

/**
 * Length of the whole frame (page header included) starting at buf[start] when buf[start, end)
 * holds enough to tell; otherwise the negated number of bytes needed from `start`.
 */
export function pageFrameExtent(
  buf: Uint8Array,
  start: number,
  end: number,
  pageSize: number,
  head: FrameHead,
  fileOffset: number,
): number {
  const avail = end - start;
  if (head.encoding === 'lz4-frame') {
    const n = namingThePage(head, fileOffset, avail, () =>
      lz4FrameExtent(buf, start + PAGE_HEADER_SIZE, end, pageSize),
    );
    return n < 0 ? n - PAGE_HEADER_SIZE : n + PAGE_HEADER_SIZE;
  }
  if (avail < PAGE_HEADER_SIZE + 4) return -(PAGE_HEADER_SIZE + 4);
  const size = readU32BE(buf, start + PAGE_HEADER_SIZE);
  const max = maxSizedPayload(head.encoding, pageSize);
  if (size === 0 || size > max) {
    const where = describeFrame(fileOffset, avail);
    throw new LtxvfsError(
      'LTX_BAD_PAGE',
      `page ${head.pgno} ${where}: compressed size ${size} is outside 1..${max} for a ${pageSize}-byte page`,
    );
  }
  const total = PAGE_HEADER_SIZE + 4 + size;
  return avail < total ? -total : total;
}

/** Decodes the payload of a frame that exactly fills buf[start, end). */
export function decodeFramePayload(
  buf: Uint8Array,
  start: number,
  end: number,
  pageSize: number,
  head: FrameHead,
  fileOffset: number,
): Uint8Array {
  const p = start + PAGE_HEADER_SIZE;
  return namingThePage(head, fileOffset, end - start, () => {
    if (head.encoding === 'lz4-frame') return decodeLz4Frame(buf, p, end, pageSize);
    if (head.encoding === 'zstd') return zstdDecompressPage(buf.subarray(p + 4, end), pageSize);
    return lz4DecompressPage(buf, p + 4, end, pageSize);
  });
}

/** Runs a codec step, prefixing its LTX_BAD_COMPRESSION message with the page and where it is. */
function namingThePage<T>(head: FrameHead, fileOffset: number, length: number, step: () => T): T {
  try {
    return step();
  } catch (err) {
    if (err instanceof LtxvfsError && err.code === 'LTX_BAD_COMPRESSION') {
      const where = describeFrame(fileOffset, length);
      throw new LtxvfsError(err.code, `page ${head.pgno} ${where}: ${err.message}`);
    }
    throw err;
  }
}

/**
 * Random access: decodes one frame (exactly the bytes the page index gives for it) into page
 * bytes. Checks the page header, the declared sizes and the decompressed length; the legacy frame
 * encoding also carries a content checksum, which is verified.
 */
export function decodePageFrame(frame: Uint8Array, pageSize: number, expectedPgno?: number): Uint8Array {
  if (frame.length < PAGE_HEADER_SIZE + 1) {
    throw new LtxvfsError(
      'LTX_TRUNCATED',
      `page frame ${describeFrame(-1, frame.length)} is shorter than a page header and payload`,
    );
  }
  const head = readPageHeader(frame, 0, -1);
  if (expectedPgno !== undefined && head.pgno !== expectedPgno) {
    throw new LtxvfsError(
      'LTX_BAD_PAGE',
      `page frame holds page ${head.pgno}, expected page ${expectedPgno}`,
    );
  }
  const extent = pageFrameExtent(frame, 0, frame.length, pageSize, head, -1);
  if (extent < 0) {
    throw new LtxvfsError(
      'LTX_TRUNCATED',
      `page ${head.pgno} ${describeFrame(-1, frame.length)}: frame truncated, needs ${-extent} bytes`,
    );
  }
  if (extent !== frame.length) {
    throw new LtxvfsError(
      'LTX_BAD_PAGE',
      `page ${head.pgno} ${describeFrame(-1, frame.length)}: frame is ${extent} bytes, index says ${frame.length}`,
    );
  }
  return decodeFramePayload(frame, 0, frame.length, pageSize, head, -1);
}
