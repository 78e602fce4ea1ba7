import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkIndexLayout,
  encodePageIndex,
  MIN_FILE_SIZE,
  pageIndexTailLength,
  parsePageIndexColumns,
  parsePageIndexTail,
  UvarintReader,
  uvarintLength,
  writeUvarint,
} from '../src/ltx/page-index.js';
import { thrown } from './support/thrown.js';

// The page index as ltx-and-litestream.md §1.2 describes it (uvarint triples pgno/offset/size,
// a uvarint 0, a u64 BE byte count of both, then the 16-byte trailer), with Go's uvarint
// (LEB128) known answers, and the golden go_v3_incremental.ltx (SOURCES.md: pages 1 and 3, 206
// bytes): frames at 100 and 134 of 34 bytes each, the page-block terminator at 168, its index
// 01 64 22 03 86 01 22 00 at 174, the size field 8 at 182, the trailer at 190.

const dir = join(import.meta.dirname, 'fixtures/litestream/nullstyle-ltx-zig/tests/fixtures');
const incremental = new Uint8Array(readFileSync(join(dir, 'go_v3_incremental.ltx')));
const emptySnapshot = new Uint8Array(readFileSync(join(dir, 'go_v3_empty_snapshot.ltx')));
const INDEX_AT = 174;

/** The golden file with its index replaced by `index` and the size field set to `declared`. */
function withIndex(index: number[], declared = index.length, fileChecksum?: bigint): Uint8Array {
  const b = new Uint8Array(INDEX_AT + index.length + 8 + 16);
  b.set(incremental.subarray(0, INDEX_AT));
  b.set(index, INDEX_AT);
  const v = new DataView(b.buffer);
  v.setBigUint64(INDEX_AT + index.length, BigInt(declared));
  b.set(incremental.subarray(190), INDEX_AT + index.length + 8);
  if (fileChecksum !== undefined) v.setBigUint64(b.length - 8, fileChecksum);
  return b;
}

const GOLDEN_INDEX = [0x01, 0x64, 0x22, 0x03, 0x86, 0x01, 0x22, 0x00];

describe('uvarints (Go binary.PutUvarint)', () => {
  const known: [number, string][] = [
    [0, '00'],
    [1, '01'],
    [127, '7f'],
    [128, '8001'],
    [300, 'ac02'],
    [16383, 'ff7f'],
    [16384, '808001'],
    [0x7fffffff, 'ffffffff07'],
    [0x80000000, '8080808008'],
    [0xffffffff, 'ffffffff0f'],
    [2 ** 35, '8080808080 01'.replace(' ', '')],
    [Number.MAX_SAFE_INTEGER, 'ffffffffffffff0f'],
  ];

  it('writes and sizes the known encodings', () => {
    for (const [v, hex] of known) {
      const b = new Uint8Array(12).fill(0xee);
      const end = writeUvarint(b, 2, v);
      expect(Buffer.from(b.subarray(2, end)).toString('hex'), String(v)).toBe(hex);
      expect(uvarintLength(v), String(v)).toBe(hex.length / 2);
    }
  });

  it('reads them back, and -1 (position kept) when the bytes end first', () => {
    for (const [v, hex] of known) {
      const bytes = Buffer.from(`aa${hex}`, 'hex');
      const r = new UvarintReader(bytes, bytes.length);
      r.pos = 1;
      expect(r.read(0), hex).toBe(v);
      expect(r.pos).toBe(bytes.length);
      const short = new UvarintReader(bytes, bytes.length - 1);
      short.pos = 1;
      expect(short.read(0), hex).toBe(-1);
      expect(short.pos).toBe(1);
    }
  });

  it('more than 8 bytes or beyond 2^53-1 is LTX_BAD_INDEX at the entry offset', () => {
    for (const hex of ['8080808080808080 01'.replace(' ', ''), '8080808080808010', 'ffffffffffffff1f']) {
      const bytes = Buffer.from(hex, 'hex');
      expect(
        thrown(() => new UvarintReader(bytes, bytes.length).read(4242)),
        hex,
      ).toEqual({
        code: 'LTX_BAD_INDEX',
        message: 'page index at offset 4242: varint too long or beyond 2^53',
      });
    }
  });
});

describe('page index bytes', () => {
  it('encodePageIndex writes the golden file index and its size field', () => {
    const b = encodePageIndex([
      { pgno: 1, offset: 100, size: 34 },
      { pgno: 3, offset: 134, size: 34 },
    ]);
    expect(Buffer.from(b).toString('hex')).toBe(
      Buffer.from(incremental.subarray(INDEX_AT, 190)).toString('hex'),
    );
    expect(Buffer.from(encodePageIndex([])).toString('hex')).toBe('000000000000000001');
  });

  it('MIN_FILE_SIZE is the 131 bytes of the empty golden snapshot', () => {
    expect(MIN_FILE_SIZE).toBe(131);
    expect(emptySnapshot.length).toBe(131);
    const t = parsePageIndexColumns(emptySnapshot, 131);
    expect(t.kind === 'ok' && [t.columns.pgnos.length, t.indexStart, t.indexSize]).toEqual([0, 106, 9]);
  });

  it('parses the golden index from the whole file (with its header) or from a tail (without)', () => {
    const whole = parsePageIndexTail(incremental, 206);
    if (whole.kind !== 'ok') throw new Error('need-more');
    expect(whole.index).toEqual([
      { pgno: 1, offset: 100, size: 34 },
      { pgno: 3, offset: 134, size: 34 },
    ]);
    expect(whole.indexStart).toBe(INDEX_AT);
    expect(whole.header?.minTxid).toBe(2);
    expect(whole.trailer).toEqual({
      postApplyChecksum: 0x8000000000005678n,
      fileChecksum: 0xd1f8ea546c262bd3n,
    });
    const tail = parsePageIndexColumns(incremental.subarray(INDEX_AT), 206);
    if (tail.kind !== 'ok') throw new Error('need-more');
    expect(Array.from(tail.columns.pgnos)).toEqual([1, 3]);
    expect(Array.from(tail.columns.offsets)).toEqual([100, 134]);
    expect(Array.from(tail.columns.sizes)).toEqual([34, 34]);
    expect(tail.indexSize).toBe(16);
    expect(tail.header).toBeUndefined();
  });

  it('a tail too short for the index says where the index starts', () => {
    expect(parsePageIndexColumns(incremental.subarray(INDEX_AT + 1), 206)).toEqual({
      kind: 'need-more',
      indexStart: INDEX_AT,
    });
    expect(parsePageIndexColumns(incremental.subarray(206 - 23), 206)).toEqual({
      kind: 'need-more',
      indexStart: 182,
    });
    expect(parsePageIndexColumns(incremental.subarray(206 - 24), 206)).toEqual({
      kind: 'need-more',
      indexStart: 174,
    });
  });
});

describe('page index refusals, each LTX_BAD_INDEX (or its own code) with what is wrong', () => {
  it('a file below the minimum size, or a tail longer than the file', () => {
    for (const size of [130, 0, 131.5, Number.NaN]) {
      expect(thrown(() => parsePageIndexColumns(new Uint8Array(24), size))).toEqual({
        code: 'LTX_TRUNCATED',
        message: `LTX file of ${size} bytes is shorter than the minimum 131`,
      });
    }
    expect(thrown(() => parsePageIndexColumns(new Uint8Array(207), 206))).toEqual({
      code: 'LTX_BAD_INDEX',
      message: 'tail of 207 bytes is longer than the file (206 bytes)',
    });
  });

  it('a size field of 0 or larger than the file allows', () => {
    // The largest index a 206-byte file can hold: 206 - 131 + 1 = 76 bytes.
    for (const declared of [0, 77, 2 ** 40]) {
      const b = withIndex(GOLDEN_INDEX, declared);
      expect(thrown(() => parsePageIndexColumns(b, b.length))).toEqual({
        code: 'LTX_BAD_INDEX',
        message: `page index size field ${declared} (at offset 182) does not fit a 206-byte file`,
      });
    }
    const b = withIndex(GOLDEN_INDEX, 76);
    expect(thrown(() => parsePageIndexColumns(b, b.length)).code).toBe('LTX_BAD_INDEX');
    expect(parsePageIndexColumns(b.subarray(150), b.length)).toEqual({ kind: 'need-more', indexStart: 106 });
  });

  it('entries out of order, misplaced, too small, or not ending at the page block', () => {
    const cases: [number[], string][] = [
      [[0x03, 0x64, 0x22, 0x01, 0x86, 0x01, 0x22, 0x00], 'page index: page 1 follows page 3 (not ascending)'],
      [[0x01, 0x64, 0x22, 0x01, 0x86, 0x01, 0x22, 0x00], 'page index: page 1 follows page 1 (not ascending)'],
      [[0x01, 0x65, 0x22, 0x03, 0x86, 0x01, 0x22, 0x00], 'page index: page 1 at offset 101, expected 100'],
      [[0x01, 0x64, 0x22, 0x03, 0x87, 0x01, 0x22, 0x00], 'page index: page 3 at offset 135, expected 134'],
      [[0x01, 0x64, 0x06, 0x03, 0x6a, 0x3e, 0x00], 'page index: page 1 has frame size 6'],
      [
        [0x01, 0x64, 0x22, 0x03, 0x86, 0x01, 0x21, 0x00],
        'page index: frames end at 167, but the page block ends at 168',
      ],
      [[0x01, 0x64, 0x22, 0x00], 'page index: frames end at 134, but the page block ends at 168'],
      [[0x00], 'page index: frames end at 100, but the page block ends at 168'],
    ];
    for (const [index, message] of cases) {
      const b = withIndex(index);
      expect(
        thrown(() => parsePageIndexColumns(b, b.length)),
        message,
      ).toEqual({ code: 'LTX_BAD_INDEX', message });
      expect(
        thrown(() => parsePageIndexColumns(b.subarray(INDEX_AT), b.length)),
        message,
      ).toEqual({
        code: 'LTX_BAD_INDEX',
        message,
      });
    }
  });

  it('entries without their terminator, an entry cut short, or a page number past u32', () => {
    // Without the terminator the counting pass sizes the columns for one entry, so the second
    // entry (at 177) is the one found running past the declared size.
    expect(
      thrown(() => parsePageIndexColumns(withIndex([0x01, 0x64, 0x22, 0x03, 0x86, 0x01, 0x22]), 205)),
    ).toEqual({
      code: 'LTX_BAD_INDEX',
      message: 'page index at offset 177: runs past its declared size 7',
    });
    expect(thrown(() => parsePageIndexColumns(withIndex([0x01, 0x64, 0x22, 0x03, 0x86]), 203))).toEqual({
      code: 'LTX_BAD_INDEX',
      message: 'page index at offset 177: runs past its declared size 5',
    });
    const bigPgno = [0x80, 0x80, 0x80, 0x80, 0x10, 0x64, 0x22, 0x00];
    expect(thrown(() => parsePageIndexColumns(withIndex(bigPgno), 206))).toEqual({
      code: 'LTX_BAD_INDEX',
      message: 'page index at offset 174: page 4294967296 size 34 out of range',
    });
    const bigSize = [0x01, 0x64, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
    expect(thrown(() => parsePageIndexColumns(withIndex(bigSize), 206))).toEqual({
      code: 'LTX_BAD_INDEX',
      message: 'page index at offset 174: page 1 size 4294967296 out of range',
    });
  });

  it('page number 2^32-1 is a u32 and parses; file checksum messages keep 16 digits', () => {
    const maxPgno = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x64, 0x44, 0x00];
    const t = parsePageIndexColumns(withIndex(maxPgno), 206);
    expect(t.kind === 'ok' && [Array.from(t.columns.pgnos), Array.from(t.columns.sizes)]).toEqual([
      [0xffffffff],
      [68],
    ]);
    expect(thrown(() => parsePageIndexColumns(withIndex(GOLDEN_INDEX, 8, 1n), 206))).toEqual({
      code: 'LTX_BAD_CHECKSUM',
      message: 'file checksum 0x0000000000000001 lacks bit 63',
    });
  });

  it('tail length: 1/128 of the object plus size field and trailer, or 1.25 x the previous index', () => {
    expect(pageIndexTailLength(100)).toBe(100);
    expect(pageIndexTailLength(1_000_000)).toBe(65536);
    expect(pageIndexTailLength(12_800_000)).toBe(100_024);
    expect(pageIndexTailLength(12_800_001)).toBe(100_025);
    expect(pageIndexTailLength(12_800_000, 100_000)).toBe(125_016);
    expect(pageIndexTailLength(12_800_000, 1)).toBe(100_024);
    expect(pageIndexTailLength(200_000, 100_000)).toBe(125_016);
    expect(pageIndexTailLength(110_000, 100_000)).toBe(110_000);
  });

  it('bytes after the terminator', () => {
    const b = withIndex([0x01, 0x64, 0x22, 0x03, 0x86, 0x01, 0x22, 0x00, 0x00]);
    expect(thrown(() => parsePageIndexColumns(b, b.length))).toEqual({
      code: 'LTX_BAD_INDEX',
      message: `page index ends at offset 182, its size field says ${b.length - 24}`,
    });
  });

  it('a file checksum without bit 63 is LTX_BAD_CHECKSUM; with it, the index parses', () => {
    const b = withIndex(GOLDEN_INDEX, 8, 0x7fffffffffffffffn);
    expect(thrown(() => parsePageIndexColumns(b, b.length))).toEqual({
      code: 'LTX_BAD_CHECKSUM',
      message: 'file checksum 0x7fffffffffffffff lacks bit 63',
    });
    expect(parsePageIndexColumns(withIndex(GOLDEN_INDEX, 8, 0x8000000000000000n), 206).kind).toBe('ok');
  });

  it('checkIndexLayout (entry objects) applies the same rules', () => {
    const ok = [
      { pgno: 1, offset: 100, size: 34 },
      { pgno: 3, offset: 134, size: 34 },
    ];
    expect(() => checkIndexLayout(ok, 174)).not.toThrow();
    expect(() => checkIndexLayout([], 106)).not.toThrow();
    const cases: [typeof ok, number, string][] = [
      [[ok[1], ok[0]] as typeof ok, 174, 'page index: page 3 at offset 134, expected 100'],
      [
        [
          { pgno: 3, offset: 100, size: 34 },
          { pgno: 3, offset: 134, size: 34 },
        ],
        174,
        'page index: page 3 follows page 3 (not ascending)',
      ],
      [[{ pgno: 1, offset: 100, size: 6 }], 112, 'page index: page 1 has frame size 6'],
      [ok, 175, 'page index: frames end at 168, but the page block ends at 169'],
      [[], 107, 'page index: frames end at 100, but the page block ends at 101'],
    ];
    for (const [entries, indexStart, message] of cases) {
      expect(thrown(() => checkIndexLayout(entries, indexStart))).toEqual({ code: 'LTX_BAD_INDEX', message });
    }
    expect(() => checkIndexLayout([{ pgno: 1, offset: 100, size: 7 }], 113)).not.toThrow();
  });
});
