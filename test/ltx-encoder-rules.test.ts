import { describe, expect, it } from 'vitest';
import { decodeLtxFile } from '../src/ltx/decoder.js';
import { encodeLtxFile, LtxEncoder } from '../src/ltx/encoder.js';
import { type LtxHeader, litestreamHeader } from '../src/ltx/header.js';
import { thrown } from './support/thrown.js';

// The encoder's rules (superfly/ltx's encoder checks, ltx-and-litestream.md §1.3 "Trailer rules")
// with their exact messages, and the post-apply checksums it computes for snapshots against the
// known answers of the golden files (test/fixtures/SOURCES.md).

const page = (size: number, byte: number) => new Uint8Array(size).fill(byte);

function checked(fields: Partial<LtxHeader>): LtxHeader {
  return {
    flags: 0,
    pageSize: 512,
    commit: 3,
    minTxid: 1,
    maxTxid: 1,
    timestamp: 0,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
    ...fields,
  };
}

describe('snapshot post-apply checksums (golden known answers)', () => {
  it('go_v3_snapshot_zero_page: one zero page of 512 bytes gives 0xefb1f44fecd99000', () => {
    const f = decodeLtxFile(encodeLtxFile(checked({ commit: 1 }), [{ pgno: 1, data: page(512, 0) }]));
    expect(f.trailer.postApplyChecksum).toBe(0xefb1f44fecd99000n);
  });

  it('celld_v052_two_page_snapshot: 0x81 x 1024 and "abcd" x 256 give 0xa09639bc718d9c58', () => {
    const abcd = new Uint8Array(1024).map((_, i) => 'abcd'.charCodeAt(i % 4));
    const bytes = encodeLtxFile(checked({ pageSize: 1024, commit: 2, timestamp: 1000 }), [
      { pgno: 1, data: page(1024, 0x81) },
      { pgno: 2, data: abcd },
    ]);
    expect(decodeLtxFile(bytes).trailer.postApplyChecksum).toBe(0xa09639bc718d9c58n);
  });

  it('an empty snapshot with checksums on: 0x8000000000000000 (go_v3_empty_snapshot)', () => {
    const f = decodeLtxFile(encodeLtxFile(checked({ commit: 0 }), []));
    expect(f.trailer.postApplyChecksum).toBe(0x8000000000000000n);
    expect(f.trailer.fileChecksum).toBe(0xef752d544ac8c48fn);
  });

  it('NoChecksum files get post-apply 0; an incremental file with checksums needs one given', () => {
    const lite = litestreamHeader({ pageSize: 512, commit: 1, minTxid: 1, maxTxid: 1, timestamp: 0 });
    expect(
      decodeLtxFile(encodeLtxFile(lite, [{ pgno: 1, data: page(512, 1) }])).trailer.postApplyChecksum,
    ).toBe(0n);
    const inc = checked({ minTxid: 2, maxTxid: 2, preApplyChecksum: 0x8000000000000001n });
    expect(thrown(() => encodeLtxFile(inc, [{ pgno: 2, data: page(512, 1) }]))).toEqual({
      code: 'LTX_ENCODE',
      message: 'postApplyChecksum is required for incremental files with checksums on',
    });
    const given = encodeLtxFile(inc, [{ pgno: 2, data: page(512, 1) }], {
      postApplyChecksum: 0x8000000000000777n,
    });
    expect(decodeLtxFile(given).trailer.postApplyChecksum).toBe(0x8000000000000777n);
  });
});

describe('encoder refusals (LTX_ENCODE / LTX_PAGE_ORDER) with their messages', () => {
  const lite = litestreamHeader({ pageSize: 512, commit: 5, minTxid: 2, maxTxid: 2, timestamp: 0 });

  it('the call order: begin once, pages between begin and finish, finish once', () => {
    const e = new LtxEncoder(lite);
    expect(thrown(() => e.writePage(1, page(512, 1)))).toEqual({
      code: 'LTX_ENCODE',
      message: 'writePage() before begin()',
    });
    expect(thrown(() => e.finish())).toEqual({ code: 'LTX_ENCODE', message: 'finish() before begin()' });
    expect(e.begin().length).toBe(100);
    expect(thrown(() => e.begin())).toEqual({ code: 'LTX_ENCODE', message: 'begin() called twice' });
    e.writePage(1, page(512, 1));
    e.finish();
    expect(thrown(() => e.writePage(2, page(512, 1)))).toEqual({
      code: 'LTX_ENCODE',
      message: 'writePage() after finish()',
    });
    expect(thrown(() => e.finish())).toEqual({ code: 'LTX_ENCODE', message: 'finish() called twice' });
    expect(e.pageIndex().map((x) => [x.pgno, x.offset])).toEqual([[1, 100]]);
  });

  it('bad page numbers, sizes and order', () => {
    const cases: [number, Uint8Array, string, string][] = [
      [0, page(512, 1), 'LTX_ENCODE', 'invalid page number 0'],
      [1.5, page(512, 1), 'LTX_ENCODE', 'invalid page number 1.5'],
      [2, page(511, 1), 'LTX_ENCODE', 'page 2 has 511 bytes, page size is 512'],
      [2, page(1024, 1), 'LTX_ENCODE', 'page 2 has 1024 bytes, page size is 512'],
      [6, page(512, 1), 'LTX_ENCODE', 'page 6 is beyond the commit size 5'],
    ];
    for (const [pgno, data, code, message] of cases) {
      const e = new LtxEncoder(lite);
      e.begin();
      expect(thrown(() => e.writePage(pgno, data))).toEqual({ code, message });
    }
    const e = new LtxEncoder(lite);
    e.begin();
    e.writePage(3, page(512, 1));
    expect(thrown(() => e.writePage(3, page(512, 1)))).toEqual({
      code: 'LTX_PAGE_ORDER',
      message: 'page 3 written after page 3: pages must ascend',
    });
    expect(thrown(() => e.writePage(2, page(512, 1)))).toEqual({
      code: 'LTX_PAGE_ORDER',
      message: 'page 2 written after page 3: pages must ascend',
    });
    expect(() => e.writePage(5, page(512, 1))).not.toThrow();
  });

  it('the lock page is never stored; a snapshot skips it and ends below it', () => {
    // 64 KiB pages: the lock page is 16385 (0x40000000 / 65536 + 1).
    const big = litestreamHeader({ pageSize: 65536, commit: 16386, minTxid: 3, maxTxid: 3, timestamp: 0 });
    const e = new LtxEncoder(big);
    e.begin();
    e.writePage(16384, page(65536, 1));
    expect(thrown(() => e.writePage(16385, page(65536, 1)))).toEqual({
      code: 'LTX_ENCODE',
      message: 'page 16385 is the lock page and is never stored',
    });
    expect(() => e.writePage(16386, page(65536, 1))).not.toThrow();
  });

  it('snapshots hold every page: a gap or a short end is refused', () => {
    const snap = litestreamHeader({ pageSize: 512, commit: 3, minTxid: 1, maxTxid: 4, timestamp: 0 });
    const gap = new LtxEncoder(snap);
    gap.begin();
    gap.writePage(1, page(512, 1));
    expect(thrown(() => gap.writePage(3, page(512, 1)))).toEqual({
      code: 'LTX_ENCODE',
      message: 'snapshot is missing page 2 (got page 3 next)',
    });
    const first = new LtxEncoder(snap);
    first.begin();
    expect(thrown(() => first.writePage(2, page(512, 1))).message).toBe(
      'snapshot is missing page 1 (got page 2 next)',
    );
    const short = new LtxEncoder(snap);
    short.begin();
    short.writePage(1, page(512, 1));
    short.writePage(2, page(512, 1));
    expect(thrown(() => short.finish())).toEqual({
      code: 'LTX_ENCODE',
      message: 'snapshot ends at page 2 but commit is 3: snapshots must hold every page',
    });
  });

  it('a snapshot whose commit is the lock page ends at the page before it', () => {
    const snap = litestreamHeader({ pageSize: 65536, commit: 16385, minTxid: 1, maxTxid: 1, timestamp: 0 });
    const e = new LtxEncoder(snap);
    e.begin();
    const data = page(65536, 0);
    for (let pgno = 1; pgno <= 16384; pgno++) e.writePage(pgno, data);
    expect(() => e.finish()).not.toThrow();
  });

  it('trailer rules: NoChecksum needs post 0; with checksums, bit 63, and the empty-database value', () => {
    const liteSnap = litestreamHeader({ pageSize: 512, commit: 1, minTxid: 1, maxTxid: 1, timestamp: 0 });
    expect(
      thrown(() => encodeLtxFile(liteSnap, [{ pgno: 1, data: page(512, 1) }], { postApplyChecksum: 1n })),
    ).toEqual({
      code: 'LTX_ENCODE',
      message: 'postApplyChecksum must be 0 when the NoChecksum flag is set',
    });
    const snap = checked({ commit: 1 });
    for (const post of [0n, 0x7fffffffffffffffn, 2n ** 64n]) {
      expect(
        thrown(() => encodeLtxFile(snap, [{ pgno: 1, data: page(512, 1) }], { postApplyChecksum: post })),
      ).toEqual({
        code: 'LTX_ENCODE',
        message: `postApplyChecksum 0x${post.toString(16)} lacks bit 63`,
      });
    }
    expect(() =>
      encodeLtxFile(snap, [{ pgno: 1, data: page(512, 1) }], { postApplyChecksum: 0xffffffffffffffffn }),
    ).not.toThrow();
    expect(
      thrown(() => encodeLtxFile(checked({ commit: 0 }), [], { postApplyChecksum: 0x8000000000000001n })),
    ).toEqual({
      code: 'LTX_ENCODE',
      message: 'an empty database (commit 0) has postApplyChecksum 0x8000000000000000',
    });
  });
});
