// biome-ignore-all lint/style/noNonNullAssertion: byte codec; every typed-array index is inside a length checked before the loop, and a per-byte check would cost in the hot path
import { CHECKSUM_FLAG } from './constants.js';
import { lockPgno } from './names.js';

/**
 * CRC-64/GO-ISO (Go's hash/crc64 with the ISO table): reflected polynomial 0xD800000000000000,
 * init and xorout all ones. Check value of "123456789" is 0xB90956C775A41001.
 *
 * BigInt arithmetic per byte is far too slow for whole-file checksums, so the 64-bit state is kept
 * as two u32 halves and processed eight bytes at a time (slicing-by-8). The low and high halves of
 * the tables are separate Int32Arrays (small integers for V8, no index arithmetic for the pair),
 * and 4-aligned runs are read as 32-bit words through an Int32Array view on little-endian hosts:
 * together about 2x faster than byte loads from one interleaved table (bench/ltx-codec.ts).
 */
const TABLE_LO = new Int32Array(8 * 256);
const TABLE_HI = new Int32Array(8 * 256);
buildTables();

function buildTables(): void {
  // Table k (0..7), entry i (0..255) at index k * 256 + i.
  const polyHi = 0xd8000000;
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let bit = 0; bit < 8; bit++) {
      const carry = lo & 1;
      lo = ((lo >>> 1) | (hi << 31)) >>> 0;
      hi = hi >>> 1;
      if (carry) hi = (hi ^ polyHi) >>> 0;
    }
    TABLE_LO[i] = lo | 0;
    TABLE_HI[i] = hi | 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let i = 0; i < 256; i++) {
      const lo = TABLE_LO[(k - 1) * 256 + i]!;
      const hi = TABLE_HI[(k - 1) * 256 + i]!;
      const idx = lo & 0xff;
      TABLE_LO[k * 256 + i] = ((lo >>> 8) | (hi << 24)) ^ TABLE_LO[idx]!;
      TABLE_HI[k * 256 + i] = (hi >>> 8) ^ TABLE_HI[idx]!;
    }
  }
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0]! === 1;
/** Below this many bytes a word view costs more than it saves. */
const WORD_VIEW_MIN = 64;

/** Incremental CRC-64/GO-ISO. `digest()` may be called at any point and does not end the hash. */
export class Crc64 {
  private lo: number;
  private hi: number;

  /** `seed` is a previous CRC result to continue from (Go's crc64.Update semantics); 0 to start. */
  constructor(seed = 0n) {
    const inverted = ~seed & 0xffffffffffffffffn;
    this.lo = Number(inverted & 0xffffffffn) | 0;
    this.hi = Number(inverted >> 32n) | 0;
  }

  update(data: Uint8Array): this {
    const tlo = TABLE_LO;
    const thi = TABLE_HI;
    let lo = this.lo;
    let hi = this.hi;
    let i = 0;
    const n = data.length;
    if (LITTLE_ENDIAN && n >= WORD_VIEW_MIN) {
      // Bytes up to a 4-byte boundary, then pairs of words, then the rest below.
      while (((data.byteOffset + i) & 3) !== 0) {
        const idx = (lo ^ data[i]!) & 0xff;
        lo = ((lo >>> 8) | (hi << 24)) ^ tlo[idx]!;
        hi = (hi >>> 8) ^ thi[idx]!;
        i++;
      }
      const words = new Int32Array(data.buffer, data.byteOffset + i, ((n - i) >> 3) << 1);
      for (let w = 0; w < words.length; w += 2) {
        lo ^= words[w]!;
        hi ^= words[w + 1]!;
        const a = 1792 + (lo & 0xff);
        const b = 1536 + ((lo >>> 8) & 0xff);
        const c = 1280 + ((lo >>> 16) & 0xff);
        const d = 1024 + (lo >>> 24);
        const e = 768 + (hi & 0xff);
        const f = 512 + ((hi >>> 8) & 0xff);
        const g = 256 + ((hi >>> 16) & 0xff);
        const h = hi >>> 24;
        lo = tlo[a]! ^ tlo[b]! ^ tlo[c]! ^ tlo[d]! ^ tlo[e]! ^ tlo[f]! ^ tlo[g]! ^ tlo[h]!;
        hi = thi[a]! ^ thi[b]! ^ thi[c]! ^ thi[d]! ^ thi[e]! ^ thi[f]! ^ thi[g]! ^ thi[h]!;
      }
      i += words.length << 2;
    } else {
      const end8 = n - (n & 7);
      while (i < end8) {
        lo ^= data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
        hi ^= data[i + 4]! | (data[i + 5]! << 8) | (data[i + 6]! << 16) | (data[i + 7]! << 24);
        const a = 1792 + (lo & 0xff);
        const b = 1536 + ((lo >>> 8) & 0xff);
        const c = 1280 + ((lo >>> 16) & 0xff);
        const d = 1024 + (lo >>> 24);
        const e = 768 + (hi & 0xff);
        const f = 512 + ((hi >>> 8) & 0xff);
        const g = 256 + ((hi >>> 16) & 0xff);
        const h = hi >>> 24;
        lo = tlo[a]! ^ tlo[b]! ^ tlo[c]! ^ tlo[d]! ^ tlo[e]! ^ tlo[f]! ^ tlo[g]! ^ tlo[h]!;
        hi = thi[a]! ^ thi[b]! ^ thi[c]! ^ thi[d]! ^ thi[e]! ^ thi[f]! ^ thi[g]! ^ thi[h]!;
        i += 8;
      }
    }
    while (i < n) {
      const idx = (lo ^ data[i]!) & 0xff;
      lo = ((lo >>> 8) | (hi << 24)) ^ tlo[idx]!;
      hi = (hi >>> 8) ^ thi[idx]!;
      i++;
    }
    this.lo = lo;
    this.hi = hi;
    return this;
  }

  digest(): bigint {
    return ((BigInt(~this.hi >>> 0) << 32n) | BigInt(~this.lo >>> 0)) & 0xffffffffffffffffn;
  }
}

/** CRC-64/GO-ISO of `data`, continuing from `seed` (a previous result) when given. */
export function crc64(data: Uint8Array, seed = 0n): bigint {
  return new Crc64(seed).update(data).digest();
}

const pgnoScratch = new Uint8Array(4);

/** ChecksumFlag | CRC64(pgno as u32 BE ‖ page bytes). */
export function pageChecksum(pgno: number, data: Uint8Array): bigint {
  pgnoScratch[0] = pgno >>> 24;
  pgnoScratch[1] = pgno >>> 16;
  pgnoScratch[2] = pgno >>> 8;
  pgnoScratch[3] = pgno;
  return CHECKSUM_FLAG | new Crc64().update(pgnoScratch).update(data).digest();
}

/**
 * Rolling database checksum: bit 63 set, other bits the XOR of every page checksum. The lock page
 * is skipped (it is never stored); an empty database gives 0x8000000000000000.
 */
export function databaseChecksum(pages: Iterable<{ pgno: number; data: Uint8Array }>): bigint {
  let acc = CHECKSUM_FLAG;
  for (const page of pages) {
    if (page.pgno === lockPgno(page.data.length)) continue;
    acc = CHECKSUM_FLAG | (acc ^ pageChecksum(page.pgno, page.data));
  }
  return acc;
}
