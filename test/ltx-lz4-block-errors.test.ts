import { describe, expect, it } from 'vitest';
import { lz4Bound, lz4CompressBlock, lz4DecompressBlock } from '../src/ltx/lz4-block.js';
import { isLtxvfsError } from '../src/util/errors.js';

// The JS LZ4 block decoder against blocks built by hand from the LZ4 block format (lz4's
// doc/lz4_Block_format.md): a token (literal length high nibble, match length - 4 low nibble,
// 15 = more bytes follow, each 255 = more again), the literals, a 2-byte LE offset, and the last
// sequence holds literals only.

function decode(
  block: number[],
  size: number,
  dstStart = 0,
  windowStart = dstStart,
  dst = new Uint8Array(size),
) {
  const src = Uint8Array.from([0xee, ...block, 0xee]);
  const end = lz4DecompressBlock(src, 1, 1 + block.length, dst, dstStart, size, windowStart);
  return { end, dst };
}

function refusal(block: number[], size: number): { code: string | undefined; message: string } {
  try {
    decode(block, size);
  } catch (err) {
    return { code: isLtxvfsError(err) ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error('expected a refusal');
}

const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => (from + i) & 0xff);

describe('LZ4 block decoder (JS), hand-built blocks', () => {
  it('literals only, short and long (length extension bytes, 255 = continue)', () => {
    expect(Array.from(decode([0x30, 1, 2, 3], 3).dst)).toEqual([1, 2, 3]);
    const forty = range(40);
    expect(Array.from(decode([0xf0, 25, ...forty], 40).dst)).toEqual(forty);
    const long = range(15 + 255 + 3);
    expect(Array.from(decode([0xf0, 255, 3, ...long], long.length).dst)).toEqual(long);
  });

  it('an overlapping match (offset 1) repeats the byte; a far match copies a run', () => {
    // 'A', then offset 1 with match length 15 + 11 + 4 = 30, then 5 literals.
    const { dst, end } = decode([0x1f, 0x41, 0x01, 0x00, 11, 0x50, 1, 2, 3, 4, 5], 36);
    expect(end).toBe(36);
    expect(Array.from(dst)).toEqual([...new Array(31).fill(0x41), 1, 2, 3, 4, 5]);
    // 40 literals, a match at offset 40 of 15 + 17 + 4 = 36 bytes, then 5 literals.
    const forty = range(40);
    const far = decode([0xff, 25, ...forty, 40, 0, 17, 0x50, 9, 9, 9, 9, 9], 81);
    expect(Array.from(far.dst)).toEqual([...forty, ...forty.slice(0, 36), 9, 9, 9, 9, 9]);
    // A match of 4..31 bytes at a distance >= its length.
    const short = decode([0x82, ...range(8), 8, 0, 0x10, 7], 15);
    expect(Array.from(short.dst)).toEqual([...range(8), ...range(6), 7]);
  });

  it('matches may reach back to windowStart (an earlier block of the frame), not before it', () => {
    const dst = new Uint8Array(20);
    dst.set(range(10, 50));
    const r = decode([0x00, 5, 0, 0x10, 1], 20, 10, 0, dst);
    expect(r.end).toBe(15);
    expect(Array.from(dst.subarray(10, 15))).toEqual([55, 56, 57, 58, 1]);
    expect(() => decode([0x00, 5, 0, 0x10, 1], 20, 10, 10, new Uint8Array(20))).toThrow(
      'invalid LZ4 block: match offset 5 reaches before the output',
    );
  });

  it('refuses each malformed block with LTX_BAD_COMPRESSION saying what', () => {
    const cases: [number[], number, string][] = [
      [[], 16, 'empty block'],
      [[0x10, 0x41, 0x01, 0x00], 16, 'block ends with a match instead of literals'],
      [[0xf0], 16, 'literal length runs past the end of the block'],
      [[0xf0, 255], 300, 'literal length runs past the end of the block'],
      [[0x50, 1, 2], 16, 'literal run of 5 bytes runs past the end of the block'],
      [[0x50, 1, 2, 3, 4, 5], 4, 'output larger than the page'],
      [[0x10, 0x41, 0x01], 16, 'match offset runs past the end of the block'],
      [[0x10, 0x41, 0x00, 0x00, 0x10, 1], 16, 'match offset 0 reaches before the output'],
      [[0x10, 0x41, 0x02, 0x00, 0x10, 1], 16, 'match offset 2 reaches before the output'],
      [[0x1f, 0x41, 0x01, 0x00], 64, 'match length runs past the end of the block'],
      [[0x1f, 0x41, 0x01, 0x00, 0x10, 0x10, 1], 32, 'output larger than the page'],
      [[0x1f, 0x41, 0x01, 0x00, 0x0b, 0x10, 1], 31, 'output larger than the page'],
    ];
    for (const [block, size, what] of cases) {
      expect(refusal(block, size), what).toEqual({
        code: 'LTX_BAD_COMPRESSION',
        message: `invalid LZ4 block: ${what}`,
      });
    }
    // Exactly filling the page is fine: 'A' + a 31-byte match + 1 literal = 33.
    expect(decode([0x1f, 0x41, 0x01, 0x00, 0x0c, 0x10, 1], 33).end).toBe(33);
  });
});

describe('LZ4 block compressor limits', () => {
  it('one page of at most 64 KiB; the output fits lz4Bound and decodes back', () => {
    const big = new Uint8Array(65537);
    expect(() => lz4CompressBlock(big, new Uint8Array(lz4Bound(big.length)))).toThrow(
      expect.objectContaining({
        code: 'LTX_ENCODE',
        message: 'cannot compress 65537 bytes as one page (max 65536)',
      }),
    );
    let x = 7;
    for (const n of [1, 13, 100, 65536]) {
      const src = new Uint8Array(n).map((_, i) => {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        return i % 5 === 0 ? x >>> 24 : i & 7;
      });
      const dst = new Uint8Array(3 + lz4Bound(n));
      const len = lz4CompressBlock(src, dst, 3);
      expect(len).toBeLessThanOrEqual(lz4Bound(n));
      const out = new Uint8Array(n);
      expect(lz4DecompressBlock(dst, 3, 3 + len, out, 0, n)).toBe(n);
      expect(out).toEqual(src);
    }
  });
});
