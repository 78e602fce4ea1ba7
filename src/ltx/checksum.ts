import { CHECKSUM_FLAG, PENDING_BYTE } from './constants.js';

/**
 * CRC-64/GO-ISO (Go's hash/crc64 with the ISO table): reflected polynomial 0xD800000000000000,
 * init and xorout all ones. Check value of "123456789" is 0xB90956C775A41001.
 *
 * BigInt arithmetic per byte is far too slow for whole-file checksums, so the 64-bit state is kept
 * as two u32 halves and processed eight bytes at a time (slicing-by-8).
 */
const TABLES = buildTables();

function buildTables(): Int32Array {
  // Layout: table k (0..7), entry i (0..255), [lo, hi] -> index ((k * 256 + i) * 2).
  // Int32Array, not Uint32Array: values stay small integers for V8 instead of boxed doubles.
  const t = new Int32Array(8 * 256 * 2);
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
    t[i * 2] = lo | 0;
    t[i * 2 + 1] = hi | 0;
  }
  for (let k = 1; k < 8; k++) {
    for (let i = 0; i < 256; i++) {
      const prev = ((k - 1) * 256 + i) * 2;
      const lo = t[prev];
      const hi = t[prev + 1];
      const idx = (lo & 0xff) * 2;
      const cur = (k * 256 + i) * 2;
      t[cur] = ((lo >>> 8) | (hi << 24)) ^ t[idx];
      t[cur + 1] = (hi >>> 8) ^ t[idx + 1];
    }
  }
  return t;
}

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
    const t = TABLES;
    let lo = this.lo;
    let hi = this.hi;
    let i = 0;
    const n = data.length;
    const end8 = n - (n & 7);
    while (i < end8) {
      lo ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
      hi ^= data[i + 4] | (data[i + 5] << 8) | (data[i + 6] << 16) | (data[i + 7] << 24);
      const a = (7 * 256 + (lo & 0xff)) << 1;
      const b = (6 * 256 + ((lo >>> 8) & 0xff)) << 1;
      const c = (5 * 256 + ((lo >>> 16) & 0xff)) << 1;
      const d = (4 * 256 + (lo >>> 24)) << 1;
      const e = (3 * 256 + (hi & 0xff)) << 1;
      const f = (2 * 256 + ((hi >>> 8) & 0xff)) << 1;
      const g = (256 + ((hi >>> 16) & 0xff)) << 1;
      const h = (hi >>> 24) << 1;
      lo = t[a] ^ t[b] ^ t[c] ^ t[d] ^ t[e] ^ t[f] ^ t[g] ^ t[h];
      hi = t[a + 1] ^ t[b + 1] ^ t[c + 1] ^ t[d + 1] ^ t[e + 1] ^ t[f + 1] ^ t[g + 1] ^ t[h + 1];
      i += 8;
    }
    while (i < n) {
      const idx = ((lo ^ data[i]) & 0xff) << 1;
      lo = ((lo >>> 8) | (hi << 24)) ^ t[idx];
      hi = (hi >>> 8) ^ t[idx + 1];
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

/** Page number of SQLite's lock page for a page size. */
export function lockPgno(pageSize: number): number {
  return Math.floor(PENDING_BYTE / pageSize) + 1;
}
