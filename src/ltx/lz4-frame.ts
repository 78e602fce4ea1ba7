// biome-ignore-all lint/style/noNonNullAssertion: byte codec; every typed-array index is inside a length checked before the loop, and a per-byte check would cost in the hot path
import { LtxvfsError } from '../util/errors.js';
import {
  type Lz4Compressor,
  lz4Bound,
  lz4CompressBlock,
  lz4CompressNative,
  lz4DecompressBlock,
  lz4DecompressPage,
} from './lz4-block.js';
import { xxh32 } from './xxh32.js';

/**
 * The legacy page payload of ltx v0.5.0/v0.5.1 (Litestream v0.5.0-v0.5.15): one standard LZ4 frame
 * per page. We write exactly what pierrec/lz4 v4 wrote there (FLG 0x64, BD 0x40, one block, stored
 * when it does not compress, end mark, content checksum) and read any valid frame.
 */
const FRAME_MAGIC = 0x184d2204;
const FLG_VERSION_MASK = 0xc0;
const FLG_VERSION_01 = 0x40;
const FLG_BLOCK_INDEPENDENT = 0x20;
const FLG_BLOCK_CHECKSUM = 0x10;
const FLG_CONTENT_SIZE = 0x08;
const FLG_CONTENT_CHECKSUM = 0x04;
const FLG_RESERVED = 0x02;
const FLG_DICT_ID = 0x01;
const BLOCK_STORED = 0x80000000;

export const LEGACY_FLG = FLG_VERSION_01 | FLG_BLOCK_INDEPENDENT | FLG_CONTENT_CHECKSUM; // 0x64
export const LEGACY_BD = 0x40; // 64 KiB max block size

/** Header checksum byte of a frame descriptor: second byte of xxh32(descriptor). */
export function frameDescriptorChecksum(descriptor: Uint8Array): number {
  return (xxh32(descriptor) >>> 8) & 0xff;
}

const LEGACY_HC = frameDescriptorChecksum(Uint8Array.of(LEGACY_FLG, LEGACY_BD));

function bad(what: string): LtxvfsError {
  return new LtxvfsError('LTX_BAD_COMPRESSION', `invalid LZ4 frame: ${what}`);
}

function readU32LE(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

function writeU32LE(b: Uint8Array, i: number, v: number): void {
  b[i] = v;
  b[i + 1] = v >>> 8;
  b[i + 2] = v >>> 16;
  b[i + 3] = v >>> 24;
}

/** Largest frame we accept for one page: stored blocks plus every optional field, generously. */
export function maxLz4FrameSize(pageSize: number): number {
  return lz4Bound(pageSize) + 64;
}

/**
 * Encodes one page as a legacy LZ4 frame; compressor 'pierrec' gives Litestream's exact bytes,
 * 'native' (lz4-napi when loaded) is faster.
 */
export function encodeLz4Frame(page: Uint8Array, compressor: Lz4Compressor = 'native'): Uint8Array {
  const n = page.length;
  const out = new Uint8Array(11 + lz4Bound(n) + 8);
  writeU32LE(out, 0, FRAME_MAGIC);
  out[4] = LEGACY_FLG;
  out[5] = LEGACY_BD;
  out[6] = LEGACY_HC;
  let p = 11;
  const block = compressor === 'native' ? lz4CompressNative(page) : undefined;
  if (block && block.length < n) out.set(block, p);
  const compressed = block ? block.length : lz4CompressBlock(page, out, p);
  if (compressed >= n) {
    writeU32LE(out, 7, (n | BLOCK_STORED) >>> 0);
    out.set(page, p);
    p += n;
  } else {
    writeU32LE(out, 7, compressed);
    p += compressed;
  }
  writeU32LE(out, p, 0);
  writeU32LE(out, p + 4, xxh32(page));
  return out.subarray(0, p + 8);
}

/**
 * Length of the frame starting at buf[start] if buf[start, end) holds all of it; otherwise the
 * negated number of bytes from `start` needed before the length can be known (always more than
 * end - start). Validates sizes so a corrupt length never asks for more than maxLz4FrameSize.
 */
export function lz4FrameExtent(buf: Uint8Array, start: number, end: number, pageSize: number): number {
  const avail = end - start;
  const limit = maxLz4FrameSize(pageSize);
  if (avail < 7) return -7;
  if (readU32LE(buf, start) !== FRAME_MAGIC) {
    throw bad(`bad magic 0x${readU32LE(buf, start).toString(16).padStart(8, '0')}`);
  }
  const flg = buf[start + 4]!;
  if ((flg & FLG_VERSION_MASK) !== FLG_VERSION_01)
    throw bad(`unsupported frame version in FLG 0x${hex2(flg)}`);
  if (flg & FLG_RESERVED) throw bad(`reserved bit set in FLG 0x${hex2(flg)}`);
  if (flg & FLG_DICT_ID) throw bad('dictionary frames are not supported');
  let p = 6 + (flg & FLG_CONTENT_SIZE ? 8 : 0) + 1;
  const blockChecksum = (flg & FLG_BLOCK_CHECKSUM) !== 0;
  for (;;) {
    if (p + 4 > limit) throw bad(`frame longer than ${limit} bytes for a ${pageSize}-byte page`);
    if (avail < p + 4) return -(p + 4);
    const word = readU32LE(buf, start + p);
    p += 4;
    if (word === 0) break;
    const size = word & ~BLOCK_STORED;
    p += size + (blockChecksum ? 4 : 0);
    if (p > limit) throw bad(`frame longer than ${limit} bytes for a ${pageSize}-byte page`);
  }
  if (flg & FLG_CONTENT_CHECKSUM) p += 4;
  if (avail < p) return -p;
  return p;
}

function hex2(v: number): string {
  return v.toString(16).padStart(2, '0');
}

/**
 * Decodes the frame that exactly fills src[start, end) into a new page of pageSize bytes,
 * verifying the descriptor checksum, block checksums and content checksum when present.
 */
export function decodeLz4Frame(src: Uint8Array, start: number, end: number, pageSize: number): Uint8Array {
  const length = lz4FrameExtent(src, start, end, pageSize);
  if (length < 0) throw bad(`frame truncated: needs at least ${-length} bytes, has ${end - start}`);
  if (length !== end - start)
    throw bad(`${end - start - length} unexpected bytes after the end of the frame`);
  const flg = src[start + 4]!;
  const bd = src[start + 5]!;
  if (bd & 0x8f) throw bad(`reserved bits set in BD 0x${hex2(bd)}`);
  const blockCode = (bd >>> 4) & 7;
  if (blockCode < 4) throw bad(`invalid block maximum size code ${blockCode}`);
  const blockMax = 1 << (8 + 2 * blockCode);
  let p = start + 6;
  if (flg & FLG_CONTENT_SIZE) {
    const lo = readU32LE(src, p);
    const hi = readU32LE(src, p + 4);
    if (hi !== 0 || lo !== pageSize)
      throw bad(`content size ${hi * 2 ** 32 + lo} is not the page size ${pageSize}`);
    p += 8;
  }
  const hc = frameDescriptorChecksum(src.subarray(start + 4, p));
  if (src[p]! !== hc) throw bad(`descriptor checksum 0x${hex2(src[p]!)} should be 0x${hex2(hc)}`);
  p++;
  let out: Uint8Array = new Uint8Array(0);
  const independent = (flg & FLG_BLOCK_INDEPENDENT) !== 0;
  let d = 0;
  for (;;) {
    const word = readU32LE(src, p);
    p += 4;
    if (word === 0) break;
    const size = word & ~BLOCK_STORED;
    if (size > blockMax) throw bad(`block of ${size} bytes exceeds the frame's maximum ${blockMax}`);
    const blockStart = p;
    p += size;
    if (flg & FLG_BLOCK_CHECKSUM) {
      const expected = readU32LE(src, p);
      const actual = xxh32(src, 0, blockStart, p);
      if (expected !== actual) throw bad('block checksum mismatch');
      p += 4;
    }
    if (d === 0 && !(word & BLOCK_STORED) && size > 0 && readU32LE(src, p) === 0) {
      // One compressed block holding the whole page (what pierrec/lz4 wrote): the page decoder,
      // native when available, instead of the JS block decoder.
      out = lz4DecompressPage(src, blockStart, blockStart + size, pageSize);
      d = pageSize;
      continue;
    }
    if (d === 0) out = new Uint8Array(pageSize);
    if (word & BLOCK_STORED) {
      if (size > pageSize - d) throw bad('decompressed data larger than the page');
      out.set(src.subarray(blockStart, blockStart + size), d);
      d += size;
    } else {
      if (size === 0) throw bad('empty compressed block');
      d = lz4DecompressBlock(src, blockStart, blockStart + size, out, d, pageSize, independent ? d : 0);
    }
  }
  if (d !== pageSize) throw bad(`decompressed to ${d} bytes, expected the page size ${pageSize}`);
  if (flg & FLG_CONTENT_CHECKSUM) {
    const expected = readU32LE(src, p);
    const actual = xxh32(out);
    if (expected !== actual) {
      throw bad(`content checksum 0x${actual.toString(16)} does not match 0x${expected.toString(16)}`);
    }
  }
  return out;
}
