import { describe, expect, it } from 'vitest';
import {
  decodePageDigests,
  encodePageDigests,
  layoutDigest,
  PAGE_DIGESTS_MIN_OBJECT_SIZE,
  type PageDigests,
} from '../src/ltx/page-digests.js';
import { xxh32 } from '../src/ltx/xxh32.js';
import { isLtxvfsError } from '../src/util/errors.js';

// The page-digests sidecar's layout as src/ltx/page-digests.ts documents it (big-endian): magic
// LTXVFSPD, version u32, level u32, minTxid u64, maxTxid u64, object size u64, file checksum
// u64, page count u32, layout digest u32, one u32 per page, then xxh32 of all before it. Bytes
// are built here with a DataView (xxh32 itself is held to the C reference in ltx-xxh32-known).

interface Fields {
  magic?: string;
  version?: number;
  level?: number;
  minTxid?: bigint;
  maxTxid?: bigint;
  objectSize?: bigint;
  fileChecksum?: bigint;
  count?: number;
  layout?: number;
  digests?: number[];
  extra?: number;
}

function sidecar(f: Fields): Uint8Array {
  const digests = f.digests ?? [7, 8];
  const b = new Uint8Array(56 + 4 * digests.length + (f.extra ?? 0) + 4);
  const v = new DataView(b.buffer);
  b.set(new TextEncoder().encode(f.magic ?? 'LTXVFSPD'), 0);
  v.setUint32(8, f.version ?? 1);
  v.setUint32(12, f.level ?? 9);
  v.setBigUint64(16, f.minTxid ?? 1n);
  v.setBigUint64(24, f.maxTxid ?? 5n);
  v.setBigUint64(32, f.objectSize ?? 100000n);
  v.setBigUint64(40, f.fileChecksum ?? 0x8000000000000abcn);
  v.setUint32(48, f.count ?? digests.length);
  v.setUint32(52, f.layout ?? 0xabcdef01);
  digests.forEach((d, i) => {
    v.setUint32(56 + 4 * i, d);
  });
  v.setUint32(b.length - 4, xxh32(b.subarray(0, b.length - 4)));
  return b;
}

const SAMPLE: PageDigests = {
  level: 9,
  minTxid: 1,
  maxTxid: 5,
  objectSize: 100000,
  fileChecksum: 0x8000000000000abcn,
  layout: 0xabcdef01,
  digests: Uint32Array.of(7, 8),
};

function why(bytes: Uint8Array): string {
  try {
    decodePageDigests(bytes, 'L9/x');
  } catch (err) {
    expect(isLtxvfsError(err, 'PAGE_DIGESTS_INVALID')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected PAGE_DIGESTS_INVALID');
}

describe('page digests bytes', () => {
  it('encode writes the documented layout; decode reads it', () => {
    expect(Buffer.from(encodePageDigests(SAMPLE)).toString('hex')).toBe(
      Buffer.from(sidecar({})).toString('hex'),
    );
    expect(decodePageDigests(sidecar({}))).toEqual(SAMPLE);
    const padded = new Uint8Array(sidecar({}).length + 5);
    padded.set(sidecar({}), 5);
    expect(decodePageDigests(padded.subarray(5))).toEqual(SAMPLE);
    // A layout digest given as a signed 32-bit value is stored as its unsigned bits.
    expect(decodePageDigests(encodePageDigests({ ...SAMPLE, layout: -1 })).layout).toBe(0xffffffff);
    expect(decodePageDigests(sidecar({ digests: [] })).digests.length).toBe(0);
  });

  it('the layout digest is xxh32 over (pgno u32, offset u64, size u32) per entry', () => {
    const b = new Uint8Array(32);
    const v = new DataView(b.buffer);
    v.setUint32(0, 1);
    v.setBigUint64(4, 100n);
    v.setUint32(12, 34);
    v.setUint32(16, 0x80000003);
    v.setBigUint64(20, 2n ** 40n);
    v.setUint32(28, 0xffffffff);
    expect(layoutDigest([1, 0x80000003], [100, 2 ** 40], [34, 0xffffffff])).toBe(xxh32(b));
    expect(layoutDigest([], [], [])).toBe(0x02cc5d05);
  });

  it('refusals name the source and the reason', () => {
    expect(why(sidecar({}).subarray(0, 59))).toBe('L9/x: 59 bytes is too short');
    expect(why(new Uint8Array(0))).toBe('L9/x: 0 bytes is too short');
    expect(() => decodePageDigests(new Uint8Array(0))).toThrow(/^page digests: 0 bytes is too short$/);
    expect(why(sidecar({ magic: 'LTXVFSPE' }))).toBe('L9/x: bad magic');
    expect(why(sidecar({ version: 2 }))).toBe('L9/x: unsupported version 2');
    expect(why(sidecar({ count: 3 }))).toBe('L9/x: 68 bytes where 3 pages need 72');
    expect(why(sidecar({ count: 1 }))).toBe('L9/x: 68 bytes where 1 pages need 64');
    expect(why(sidecar({ extra: 4 }))).toBe('L9/x: 72 bytes where 2 pages need 68');
    const flipped = sidecar({});
    flipped[60] = (flipped[60] ?? 0) ^ 1;
    expect(why(flipped)).toBe('L9/x: checksum mismatch');
    const big = 2n ** 53n;
    expect(why(sidecar({ minTxid: big, maxTxid: big }))).toBe(`L9/x: minTxid ${big} is out of range`);
    expect(why(sidecar({ maxTxid: big }))).toBe(`L9/x: maxTxid ${big} is out of range`);
    expect(why(sidecar({ objectSize: big }))).toBe(`L9/x: objectSize ${big} is out of range`);
    expect(why(sidecar({ minTxid: 6n, maxTxid: 5n }))).toBe(
      'L9/x: minTxid 0000000000000006 > maxTxid 0000000000000005',
    );
    expect(decodePageDigests(sidecar({ minTxid: 5n, maxTxid: 5n })).minTxid).toBe(5);
    const safe = BigInt(Number.MAX_SAFE_INTEGER);
    expect(decodePageDigests(sidecar({ objectSize: safe })).objectSize).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('encode refuses fields it cannot store exactly', () => {
    for (const [name, change] of [
      ['level', { level: -1 }],
      ['minTxid', { minTxid: 1.5 }],
      ['maxTxid', { maxTxid: 2 ** 53 }],
      ['objectSize', { objectSize: -3 }],
    ] as const) {
      const value = Object.values(change)[0];
      let err: unknown;
      try {
        encodePageDigests({ ...SAMPLE, ...change });
      } catch (e) {
        err = e;
      }
      expect(isLtxvfsError(err, 'LTX_ENCODE'), name).toBe(true);
      expect((err as Error).message).toBe(`page digests: ${name} ${value} is not a non-negative integer`);
    }
    expect(() =>
      encodePageDigests({ ...SAMPLE, level: 0, minTxid: 0, maxTxid: 0, objectSize: 0 }),
    ).not.toThrow();
  });

  it('objects of at least 64 KiB get digests (the tail estimate: smaller ones are read whole)', () => {
    expect(PAGE_DIGESTS_MIN_OBJECT_SIZE).toBe(65536);
  });
});
