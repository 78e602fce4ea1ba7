import { describe, expect, it } from 'vitest';
import { databaseChecksum, pageChecksum } from '../src/ltx/checksum.js';
import { lockPgno } from '../src/ltx/names.js';
import { xxh32 } from '../src/ltx/xxh32.js';

// xxh32 known answers from the C reference: the content checksum (last 4 bytes, little-endian)
// of the frame `lz4 -c` v1.9.4 writes for these inputs (FLG 0x64, content checksum on). The
// inputs are bytes (i * 37 + 11) & 0xff; the lengths cover the short path (< 16), exactly one
// stripe, stripes plus 0..3 tail bytes and plus whole 4-byte words.
const KNOWN: [number, number][] = [
  [0, 0x02cc5d05],
  [1, 0x3fe5a29d],
  [3, 0x4021af28],
  [4, 0x1eb8f11a],
  [5, 0x07b9db7d],
  [8, 0x9d02a89c],
  [15, 0x162986eb],
  [16, 0x96ac9fa6],
  [17, 0x3cdfb1a2],
  [20, 0x428f0501],
  [31, 0xdf853fbf],
  [32, 0xda8072dc],
  [33, 0x3c8fd07d],
  [36, 0x92eff593],
  [64, 0x043913c6],
  [100, 0xede8e390],
];

const pattern = (n: number) => new Uint8Array(n).map((_, i) => (i * 37 + 11) & 0xff);

describe('xxh32 against the lz4 CLI (C reference)', () => {
  it('"abc" is 0x32d153ff', () => {
    expect(xxh32(Uint8Array.of(0x61, 0x62, 0x63))).toBe(0x32d153ff);
  });

  it('every length, at every alignment of the bytes in memory', () => {
    for (const [n, want] of KNOWN) {
      for (let shift = 0; shift < 4; shift++) {
        const buf = new Uint8Array(n + 8).fill(0xaa);
        buf.set(pattern(n), shift);
        expect(xxh32(buf.subarray(shift, shift + n)) >>> 0, `length ${n} at byte ${shift}`).toBe(want);
        // The same bytes given as a range of the whole buffer (how block checksums are taken).
        expect(xxh32(buf, 0, shift, shift + n) >>> 0, `range ${shift}..${shift + n}`).toBe(want);
        const view = buf.subarray(1);
        if (shift >= 1) expect(xxh32(view, 0, shift - 1, shift - 1 + n) >>> 0).toBe(want);
      }
    }
  });
});

describe('database checksum', () => {
  it('skips the lock page: a database of only that page sums like an empty one', () => {
    for (const pageSize of [512, 4096, 65536]) {
      const lock = { pgno: lockPgno(pageSize), data: new Uint8Array(pageSize).fill(7) };
      const other = { pgno: 3, data: new Uint8Array(pageSize).fill(7) };
      // 0x8000000000000000: the empty database's sum (spec 1.8; the empty golden snapshot).
      expect(databaseChecksum([lock])).toBe(0x8000000000000000n);
      expect(databaseChecksum([other, lock])).toBe(databaseChecksum([other]));
      expect(databaseChecksum([other])).toBe(0x8000000000000000n | pageChecksum(3, other.data));
    }
  });
});
