import { describe, expect, it } from 'vitest';
import { compactLtx } from '../src/ltx/compactor.js';
import { decodeLtxFile } from '../src/ltx/decoder.js';
import { initZstd } from '../src/ltx/zstd.js';
import { flipByte } from './support/defined.js';
import { ltxFileBytes, tagPage } from './support/ltx-spec.js';

await initZstd();

// compactLtx's contract (src/ltx/compactor.ts, README "Compaction"): contiguous inputs only, the
// newest version of a page wins, pages beyond a later shrink are dropped, Litestream's header
// (NoChecksum, no WAL fields) with the last input's commit and timestamp, the output encoding as
// asked. Expected pages come from the spec of each input (tagPage), not from the decoder.

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of gen) parts.push(p);
  return Buffer.concat(parts);
}

async function refusal(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  throw new Error('expected a refusal');
}

describe('compactLtx rules', () => {
  it('needs at least one input', async () => {
    expect(await refusal(collect(compactLtx([])))).toEqual({
      code: 'BAD_ARGUMENT',
      message: 'compactLtx needs at least one input',
    });
  });

  it('inputs must continue each other exactly: a gap or an overlap names both inputs', async () => {
    const a = ltxFileBytes({ minTxid: 1, maxTxid: 2, pages: [{ pgno: 1 }] });
    const gap = ltxFileBytes({ minTxid: 4, pages: [{ pgno: 1, tag: 4 }] });
    const overlap = ltxFileBytes({ minTxid: 2, maxTxid: 3, pages: [{ pgno: 1, tag: 3 }] });
    expect(await refusal(collect(compactLtx([once(a), once(gap)])))).toEqual({
      code: 'LTX_NOT_CONTIGUOUS',
      message: 'input 1 starts at TXID 4, expected 3 after input 0',
    });
    expect(await refusal(collect(compactLtx([once(a), once(overlap)])))).toEqual({
      code: 'LTX_NOT_CONTIGUOUS',
      message: 'input 1 starts at TXID 2, expected 3 after input 0',
    });
  });

  it("the output: Litestream's header, the whole TXID range, the last commit and timestamp, newest pages", async () => {
    const one = ltxFileBytes({
      minTxid: 5,
      commit: 4,
      timestamp: 100,
      pages: [1, 2, 4].map((pgno) => ({ pgno, tag: 50 + pgno })),
    });
    const two = ltxFileBytes({
      minTxid: 6,
      maxTxid: 8,
      commit: 4,
      timestamp: 200,
      pages: [{ pgno: 2, tag: 62 }],
    });
    const three = ltxFileBytes({
      minTxid: 9,
      commit: 4,
      timestamp: 300,
      pages: [
        { pgno: 3, tag: 93 },
        { pgno: 4, tag: 94 },
      ],
    });
    const out = decodeLtxFile(await collect(compactLtx([once(one), once(two), once(three)])));
    expect(out.header).toEqual({
      flags: 2,
      pageSize: 512,
      commit: 4,
      minTxid: 5,
      maxTxid: 9,
      timestamp: 300,
      preApplyChecksum: 0n,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: 0n,
    });
    expect(out.trailer.postApplyChecksum).toBe(0n);
    const want = [
      [1, 51],
      [2, 62],
      [3, 93],
      [4, 94],
    ];
    expect(out.pages.map((p) => p.pgno)).toEqual(want.map(([pgno]) => pgno));
    for (const [i, [, tag]] of want.entries()) {
      expect(
        Buffer.from(out.pages[i]?.data ?? []).equals(Buffer.from(tagPage(512, tag ?? 0))),
        `page ${i + 1}`,
      ).toBe(true);
    }
  });

  it('a shrink drops the pages beyond it even if an older input had them; a regrow brings new ones', async () => {
    const one = ltxFileBytes({
      minTxid: 2,
      commit: 5,
      pages: [1, 3, 5].map((pgno) => ({ pgno, tag: 20 + pgno })),
    });
    const shrink = ltxFileBytes({ minTxid: 3, commit: 2, pages: [{ pgno: 2, tag: 32 }] });
    const regrow = ltxFileBytes({ minTxid: 4, commit: 4, pages: [{ pgno: 4, tag: 44 }] });
    const out = decodeLtxFile(await collect(compactLtx([once(one), once(shrink), once(regrow)])));
    expect(out.header.commit).toBe(4);
    expect(out.pages.map((p) => [p.pgno, p.data[0]])).toEqual([
      [1, 21],
      [2, 32],
      [4, 44],
    ]);
    // Only the shrink: page 1 and 2 survive, 3 and 5 go.
    const two = decodeLtxFile(await collect(compactLtx([once(one), once(shrink)])));
    expect(two.pages.map((p) => p.pgno)).toEqual([1, 2]);
  });

  it('the encoding and compressor options shape the output pages', async () => {
    const one = ltxFileBytes({ minTxid: 2, commit: 3, pages: [{ pgno: 1 }, { pgno: 3 }] });
    for (const encoding of ['lz4-frame', 'zstd', 'lz4-block'] as const) {
      const out = decodeLtxFile(await collect(compactLtx([once(one)], { encoding, compressor: 'pierrec' })));
      expect(out.pages.map((p) => p.encoding)).toEqual([encoding, encoding]);
      expect(Buffer.from(out.pages[1]?.data ?? []).equals(Buffer.from(tagPage(512, 3)))).toBe(true);
    }
    const byDefault = decodeLtxFile(
      await collect(compactLtx([once(ltxFileBytes({ minTxid: 2, encoding: 'zstd', pages: [{ pgno: 1 }] }))])),
    );
    expect(byDefault.pages[0]?.encoding).toBe('lz4-block');
  });

  it('a superseded input (before a page size change) is still read through: its corruption is reported', async () => {
    const old = ltxFileBytes({ minTxid: 1, pages: [{ pgno: 1 }, { pgno: 2 }] });
    flipByte(old, old.length - 1, 1);
    const resized = ltxFileBytes({ pageSize: 1024, minTxid: 2, pages: [{ pgno: 1 }, { pgno: 2 }] });
    expect((await refusal(collect(compactLtx([once(old), once(resized)])))).code).toBe('LTX_BAD_CHECKSUM');
    const fine = ltxFileBytes({ minTxid: 1, pages: [{ pgno: 1 }, { pgno: 2 }] });
    const out = decodeLtxFile(await collect(compactLtx([once(fine), once(resized)])));
    expect(out.header).toMatchObject({ pageSize: 1024, minTxid: 1, maxTxid: 2, commit: 2 });
    expect(out.pages.map((p) => p.data.length)).toEqual([1024, 1024]);
  });

  it('a page size change file must hold every page', async () => {
    const before = ltxFileBytes({ minTxid: 1, pages: [{ pgno: 1 }] });
    const missing = ltxFileBytes({
      pageSize: 1024,
      minTxid: 2,
      commit: 3,
      pages: [{ pgno: 1 }, { pgno: 2 }],
    });
    expect(await refusal(collect(compactLtx([once(before), once(missing)])))).toEqual({
      code: 'LTX_NOT_CONTIGUOUS',
      message:
        "input 1 changes the page size from 512 to 1024 but holds 2 of the database's 3 pages (a page size change needs a file with every page)",
    });
  });
});
