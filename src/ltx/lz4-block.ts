// biome-ignore-all lint/style/noNonNullAssertion: byte codec; every typed-array index is inside a length checked before the loop, and a per-byte check would cost in the hot path
import { createRequire } from 'node:module';
import { LtxvfsError } from '../util/errors.js';

/*
 * Raw LZ4 blocks. When `lz4-napi` (native lz4_flex, prebuilt binaries shipped as npm optional
 * packages) loads, it compresses and decompresses; otherwise the JS codec below does both.
 *
 * Measured by bench/ltx-codec.ts on 4 KiB pages of a real SQLite database (numbers in README's
 * "LTX format" section): lz4-napi decodes about 3x and compresses about 5x faster than the JS
 * codec, even with the copies its size-prepended block API forces on us; lz4-wasm-nodejs (WASM
 * lz4_flex, same API) sits in between; `lz4` (node-lz4) compiles with node-gyp at install time,
 * which needs to download Node headers, and is unmaintained since 2021; `lz4js` has a frame-only
 * API.
 *
 * Any valid LZ4 block is Litestream-compatible, so the native compressor is the default. It does
 * not produce pierrec/lz4's bytes, though; the JS compressor does (compressor 'pierrec'), which
 * the golden tests use to re-encode Litestream's files byte for byte. The JS decoder also stays
 * for the legacy frame decoder, which must decode into a sub-range of a buffer with a window
 * reaching back into earlier blocks. Every length is checked against both buffers in both paths,
 * so no input can read or write out of bounds, allocate more than a page, or loop longer than
 * its length.
 */
interface NativeLz4 {
  /** Input and output: u32 LE uncompressed size, then a raw block. */
  compressSync(data: Uint8Array): Buffer;
  uncompressSync(data: Uint8Array): Buffer;
}

function loadNative(): NativeLz4 | undefined {
  if (process.env.LTXVFS_LZ4 === 'js') return undefined;
  try {
    return createRequire(import.meta.url)('lz4-napi') as NativeLz4;
  } catch {
    return undefined;
  }
}

const native = loadNative();

/** Which LZ4 block decoder is in use: 'native' (lz4-napi) or 'js' (set LTXVFS_LZ4=js to force). */
export const lz4DecoderKind: 'native' | 'js' = native ? 'native' : 'js';

/**
 * LZ4 compressor choice: 'native' (lz4-napi when it loaded, else the JS compressor; the default)
 * or 'pierrec' (the JS compressor, whose blocks are byte-identical to Litestream's).
 */
export type Lz4Compressor = 'native' | 'pierrec';

/** What the default compressor ('native') resolves to here: 'native', or 'pierrec' without lz4-napi. */
export const lz4CompressorKind: Lz4Compressor = native ? 'native' : 'pierrec';

/**
 * Compresses a page with lz4-napi: a view of the raw block (inside the native output, after its
 * 4-byte size prefix), or undefined when the native codec is unavailable or its block is larger
 * than lz4Bound (the decoders' limit; no valid compressor gets there, but a frame must never be
 * written that our own decoder would refuse).
 */
export function lz4CompressNative(src: Uint8Array): Uint8Array | undefined {
  if (!native) return undefined;
  const out = native.compressSync(src);
  if (out.length - 4 > lz4Bound(src.length)) return undefined;
  return new Uint8Array(out.buffer, out.byteOffset + 4, out.length - 4);
}

/** Reused input for the native decoder: size prefix + block, grown to the largest block seen. */
let scratch = Buffer.alloc(0);

/**
 * Decompresses the raw block src[start, end) that must expand to exactly pageSize bytes into a
 * new page.
 */
export function lz4DecompressPage(src: Uint8Array, start: number, end: number, pageSize: number): Uint8Array {
  if (native) {
    const n = end - start + 4;
    if (scratch.length < n) scratch = Buffer.allocUnsafe(Math.max(n, 2 * scratch.length, 8192));
    scratch.writeUInt32LE(pageSize, 0);
    scratch.set(src.subarray(start, end), 4);
    let out: Buffer;
    try {
      out = native.uncompressSync(scratch.subarray(0, n));
    } catch (err) {
      throw corrupt(String(err instanceof Error ? err.message : err));
    }
    if (out.length !== pageSize) throw corrupt(`decompressed to ${out.length} bytes, expected ${pageSize}`);
    return new Uint8Array(out.buffer, out.byteOffset, out.length);
  }
  const out = new Uint8Array(pageSize);
  const n = lz4DecompressBlock(src, start, end, out, 0, pageSize);
  if (n !== pageSize) throw corrupt(`decompressed to ${n} bytes, expected ${pageSize}`);
  return out;
}

/** Worst-case compressed size of `n` input bytes (LZ4_COMPRESSBOUND). */
export function lz4Bound(n: number): number {
  return n + Math.floor(n / 255) + 16;
}

function corrupt(what: string): LtxvfsError {
  return new LtxvfsError('LTX_BAD_COMPRESSION', `invalid LZ4 block: ${what}`);
}

/**
 * Decompresses the block src[srcStart, srcEnd) into dst starting at dstStart, writing no further
 * than dstEnd. Matches may reach back to windowStart (earlier blocks of a dependent frame).
 * Returns the end position in dst.
 */
export function lz4DecompressBlock(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
  dstEnd: number,
  windowStart = dstStart,
): number {
  let s = srcStart;
  let d = dstStart;
  if (s >= srcEnd) throw corrupt('empty block');
  for (;;) {
    // A block ends with a literal run; one that ends after a match is invalid (and the next
    // byte belongs to whatever follows the block).
    if (s >= srcEnd) throw corrupt('block ends with a match instead of literals');
    const token = src[s++] ?? 0;
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (s >= srcEnd) throw corrupt('literal length runs past the end of the block');
        b = src[s++]!;
        lit += b;
      } while (b === 255);
    }
    if (lit > 0) {
      if (lit > srcEnd - s) throw corrupt(`literal run of ${lit} bytes runs past the end of the block`);
      if (lit > dstEnd - d) throw corrupt('output larger than the page');
      if (lit < 32) {
        for (let k = 0; k < lit; k++) dst[d + k] = src[s + k]!;
      } else {
        dst.set(src.subarray(s, s + lit), d);
      }
      s += lit;
      d += lit;
    }
    if (s === srcEnd) return d;
    if (srcEnd - s < 2) throw corrupt('match offset runs past the end of the block');
    const offset = src[s]! | (src[s + 1]! << 8);
    s += 2;
    if (offset === 0 || offset > d - windowStart)
      throw corrupt(`match offset ${offset} reaches before the output`);
    let ml = token & 15;
    if (ml === 15) {
      let b: number;
      do {
        if (s >= srcEnd) throw corrupt('match length runs past the end of the block');
        b = src[s++]!;
        ml += b;
      } while (b === 255);
    }
    ml += 4;
    if (ml > dstEnd - d) throw corrupt('output larger than the page');
    let m = d - offset;
    if (offset >= ml && ml >= 32) {
      dst.copyWithin(d, m, m + ml);
      d += ml;
    } else {
      const end = d + ml;
      while (d < end) dst[d++] = dst[m++]!;
    }
  }
}

/*
 * The compressor reproduces the block output of pierrec/lz4 v4 (the Go library under superfly/ltx
 * and so Litestream): the same hash of five bytes, the same probe of three positions per step,
 * backward extension, 8-byte forward extension that stops 14 bytes before the end, and the same
 * skip schedule. Same bytes out means a page set re-encoded here gives a file byte-identical to
 * Litestream's, file checksum included (the checksum covers the page index, whose frame sizes
 * depend on the compressor).
 */
const WINDOW = 65536;
const MF_LIMIT = 14;
const SKIP_LOG = 7;
// 227718039650203, the hash multiplier, as 32-bit halves.
const PRIME_HI = 0xcf1b;
const PRIME_LO = 0xbcdcbf9b;
const PRIME_LO_HI16 = PRIME_LO >>> 16;
const PRIME_LO_LO16 = PRIME_LO & 0xffff;

// Positions are stored as base + pos so the table needs no clearing between calls: an entry below
// the current base belongs to an earlier input and reads as position 0, like an unused slot.
const table = new Int32Array(1 << 16);
let base = 1;

/** Top 16 bits of ((lo32 + hi8 * 2^32) * PRIME) mod 2^64: the hash of five bytes. */
function hash5(lo: number, hi8: number): number {
  const a1 = lo >>> 16;
  const a0 = lo & 0xffff;
  const mid = a1 * PRIME_LO_LO16 + a0 * PRIME_LO_HI16 + ((a0 * PRIME_LO_LO16) >>> 16);
  const mulhi = a1 * PRIME_LO_HI16 + Math.floor(mid / 65536);
  return ((mulhi + Math.imul(lo, PRIME_HI) + Math.imul(hi8, PRIME_LO)) >>> 16) & 0xffff;
}

function readU32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}

function candidate(h: number, si: number, b: number): number {
  const e = table[h]!;
  let i = e >= b ? e - b : 0;
  if (i >= si) i -= WINDOW;
  return i;
}

function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

/**
 * Compresses src (at most 64 KiB: one page) into dst at dstStart as one raw LZ4 block; dst needs
 * lz4Bound(src.length) bytes free. Returns the compressed length.
 */
export function lz4CompressBlock(src: Uint8Array, dst: Uint8Array, dstStart = 0): number {
  const n = src.length;
  if (n > WINDOW)
    throw new LtxvfsError('LTX_ENCODE', `cannot compress ${n} bytes as one page (max ${WINDOW})`);
  if (base > 0x3fffffff - n) {
    table.fill(0);
    base = 1;
  }
  const b = base;
  base += n + 1;
  const sn = n - MF_LIMIT;
  let si = 0;
  let di = dstStart;
  let anchor = 0;
  while (si < sn) {
    const m0 = readU32(src, si);
    const b4 = src[si + 4]!;
    const b5 = src[si + 5]!;
    const m1 = (m0 >>> 8) | (b4 << 24);
    const h = hash5(m0, b4);
    const h2 = hash5(m1, b5);
    const ref = candidate(h, si, b);
    const ref2 = candidate(h2, si + 1, b);
    table[h] = b + si;
    table[h2] = b + si + 1;
    let offset = si - ref;
    if (offset <= 0 || offset >= WINDOW || m0 !== readU32(src, ref)) {
      const m2 = (m0 >>> 16) | (b4 << 16) | (b5 << 24);
      const h3 = hash5(m2, src[si + 6]!);
      const ref3 = candidate(h3, si + 2, b);
      si += 1;
      offset = si - ref2;
      if (offset <= 0 || offset >= WINDOW || m1 !== readU32(src, ref2)) {
        si += 1;
        offset = si - ref3;
        table[h3] = b + si;
        if (offset <= 0 || offset >= WINDOW || m2 !== readU32(src, ref3)) {
          si += 2 + ((si - anchor) >> SKIP_LOG);
          continue;
        }
      }
    }
    // Extend backwards over pending literals, then forwards 8 bytes at a time.
    let lLen = si - anchor;
    let t = si - offset - 1;
    while (lLen > 0 && t >= 0 && src[si - 1]! === src[t]!) {
      si--;
      t--;
      lLen--;
    }
    const matchStart = si;
    si += 4;
    while (si + 8 <= sn) {
      const lo = readU32(src, si) ^ readU32(src, si - offset);
      if (lo !== 0) {
        si += ctz32(lo) >> 3;
        break;
      }
      const hi = readU32(src, si + 4) ^ readU32(src, si + 4 - offset);
      if (hi !== 0) {
        si += 4 + (ctz32(hi) >> 3);
        break;
      }
      si += 8;
    }
    di = writeSequence(src, anchor, lLen, offset, si - matchStart, dst, di);
    anchor = si;
    if (si >= sn) break;
    table[hash5(readU32(src, si - 2), src[si + 2]!)] = b + si - 2;
  }
  return writeLastLiterals(src, anchor, n - anchor, dst, di) - dstStart;
}

const MIN_MATCH = 4;

function writeLength(dst: Uint8Array, op: number, rest: number): number {
  while (rest >= 255) {
    dst[op++] = 255;
    rest -= 255;
  }
  dst[op++] = rest;
  return op;
}

function writeSequence(
  src: Uint8Array,
  litStart: number,
  litLen: number,
  offset: number,
  matchLen: number,
  dst: Uint8Array,
  op: number,
): number {
  const ml = matchLen - MIN_MATCH;
  const tokenPos = op++;
  let token = Math.min(litLen, 15) << 4;
  if (litLen >= 15) op = writeLength(dst, op, litLen - 15);
  if (litLen < 32) {
    for (let k = 0; k < litLen; k++) dst[op + k] = src[litStart + k]!;
  } else {
    dst.set(src.subarray(litStart, litStart + litLen), op);
  }
  op += litLen;
  dst[op++] = offset & 0xff;
  dst[op++] = offset >>> 8;
  token |= Math.min(ml, 15);
  if (ml >= 15) op = writeLength(dst, op, ml - 15);
  dst[tokenPos] = token;
  return op;
}

function writeLastLiterals(
  src: Uint8Array,
  litStart: number,
  litLen: number,
  dst: Uint8Array,
  op: number,
): number {
  dst[op++] = Math.min(litLen, 15) << 4;
  if (litLen >= 15) op = writeLength(dst, op, litLen - 15);
  dst.set(src.subarray(litStart, litStart + litLen), op);
  return op + litLen;
}
