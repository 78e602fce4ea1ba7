import { describe, expect, it } from 'vitest';
import { decodeLtxFile } from '../src/ltx/decoder.js';
import { encodeHotPages, hotPageNumbers } from '../src/ltx/hot-pages.js';

// The hot-page walk over hand-built b-tree pages (SQLite's file format, section 1.6: the page
// type byte at offset 0, or 100 on page 1; cell count u16 at +3; right-most child u32 at +8 of an
// interior page; cell pointers u16 from +12; an interior table cell starts with its child's u32
// page number). Malformed pointers (cycles, out of range, past the page) must not derail it.

const PAGE = 512;

function interior(at: number, right: number, children: number[], cellAt = 300): Uint8Array {
  const p = new Uint8Array(PAGE);
  const v = new DataView(p.buffer);
  p[at] = 0x05;
  v.setUint16(at + 3, children.length);
  v.setUint32(at + 8, right);
  children.forEach((child, i) => {
    const cell = cellAt + 8 * i;
    v.setUint16(at + 12 + 2 * i, cell);
    if (cell + 4 <= PAGE) v.setUint32(cell, child);
  });
  return p;
}

function leaf(type = 0x0d): Uint8Array {
  const p = new Uint8Array(PAGE);
  p[0] = type;
  return p;
}

describe('hot page walk on hand-built pages', () => {
  it('follows the schema b-tree from page 1, adds interior pages, skips leaves', () => {
    // Page 1: interior table (schema) with children 2 and 3, right-most 4; page 5 an interior
    // index page of some index; page 6 a leaf; page 7 an interior table page of a table.
    const pages = new Map<number, Uint8Array>([
      [1, interior(100, 4, [2, 3])],
      [2, leaf()],
      [3, leaf()],
      [4, leaf()],
      [5, leaf(0x02)],
      [6, leaf(0x0a)],
      [7, leaf(0x05)],
    ]);
    const read = (pgno: number) => pages.get(pgno) ?? new Uint8Array(PAGE);
    expect(hotPageNumbers(7, PAGE, read)).toEqual([1, 2, 3, 4, 5, 7]);
  });

  it('cycles, page numbers 0 or past commit, and cell pointers past the page are ignored', () => {
    const pages = new Map<number, Uint8Array>([
      // Children: itself (cycle), 0, 9 (past commit 4), 3; a cell pointer at 510 (past the page).
      [1, interior(100, 2, [1, 0, 9, 3])],
      [2, interior(0, 1, [2])],
      [3, leaf()],
      [4, leaf()],
    ]);
    const p1 = pages.get(1) as Uint8Array;
    new DataView(p1.buffer).setUint16(100 + 12 + 2 * 4, 510);
    new DataView(p1.buffer).setUint16(100 + 3, 5);
    const reads: number[] = [];
    const read = (pgno: number) => {
      reads.push(pgno);
      const p = pages.get(pgno);
      if (p === undefined) throw new Error(`read of page ${pgno}`);
      return p;
    };
    expect(hotPageNumbers(4, PAGE, read)).toEqual([1, 2, 3]);
    expect(reads.filter((p) => p === 1).length).toBe(1);
  });

  it('an empty database has no hot pages; a page 1 that is not a b-tree page is kept alone', () => {
    expect(hotPageNumbers(0, PAGE, () => new Uint8Array(PAGE))).toEqual([]);
    expect(hotPageNumbers(1, PAGE, () => new Uint8Array(PAGE))).toEqual([1]);
  });

  it('the lock page is never read or carried (64 KiB pages: page 16385)', () => {
    const read = (pgno: number) => {
      if (pgno === 16385) throw new Error('read the lock page');
      const p = new Uint8Array(65536);
      p[0] = pgno === 16386 ? 0x02 : 0x0d;
      return p;
    };
    expect(hotPageNumbers(16386, 65536, read)).toEqual([1, 16386]);
  });

  it('encodeHotPages: TXID 2 is the first allowed, chosen pages are carried as given', () => {
    expect(() =>
      encodeHotPages({ txid: 1, commit: 2, pageSize: PAGE, timestamp: 0, read: () => leaf() }),
    ).toThrow(
      expect.objectContaining({
        code: 'LTX_ENCODE',
        message: 'hot pages need a TXID above 1 (TXID 1 files are snapshots)',
      }),
    );
    const f = encodeHotPages({
      txid: 2,
      commit: 3,
      pageSize: PAGE,
      timestamp: 7,
      read: () => leaf(),
      pgnos: [3],
    });
    expect(f.pgnos).toEqual([3]);
    const d = decodeLtxFile(f.bytes);
    expect(d.header).toMatchObject({ minTxid: 2, maxTxid: 2, commit: 3, timestamp: 7 });
    expect(d.pages.map((p) => p.pgno)).toEqual([3]);
  });
});
