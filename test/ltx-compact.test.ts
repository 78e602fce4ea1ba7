import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  compactLtx,
  decodeLtxFile,
  encodeLtxFile,
  initZstd,
  type LtxHeader,
  litestreamHeader,
  lockPgno,
  type PageEncoding,
} from '../src/ltx/index.js';
import { defined, flipByte } from './support/defined.js';
import { ltxFileBytes } from './support/ltx-spec.js';

beforeAll(async () => {
  await initZstd();
});

const PAGE_SIZE = 512;

/** Reference applier: the database as a page map, truncated to each file's Commit. */
function apply(db: Map<number, Uint8Array>, file: Uint8Array): number {
  const f = decodeLtxFile(file);
  for (const pgno of [...db.keys()]) if (pgno > f.header.commit) db.delete(pgno);
  for (const p of f.pages) db.set(p.pgno, p.data);
  return f.header.commit;
}

function header(minTxid: number, maxTxid: number, commit: number, timestamp: number): LtxHeader {
  return litestreamHeader({ pageSize: PAGE_SIZE, commit, minTxid, maxTxid, timestamp });
}

function page(tag: number): Uint8Array {
  return new Uint8Array(PAGE_SIZE).map((_, i) => (i % 7 === 0 ? tag & 0xff : (tag * 31 + i) & 0xff));
}

/**
 * A history of a database: a snapshot at TXID 1, then incremental files that rewrite random pages
 * and change the size (a growing file writes every new page, as writers must).
 */
const history = fc
  .record({
    first: fc.integer({ min: 1, max: 20 }),
    steps: fc.array(
      fc.record({
        commit: fc.integer({ min: 0, max: 24 }),
        touched: fc.uniqueArray(fc.integer({ min: 1, max: 24 }), { maxLength: 8 }),
        span: fc.integer({ min: 1, max: 3 }),
      }),
      { minLength: 1, maxLength: 8 },
    ),
  })
  .map(({ first, steps }) => {
    const files: Uint8Array[] = [];
    let tag = 1;
    files.push(
      encodeLtxFile(
        header(1, 1, first, 1000),
        Array.from({ length: first }, (_, i) => ({ pgno: i + 1, data: page(tag++) })),
      ),
    );
    let commit = first;
    let txid = 1;
    for (const [k, s] of steps.entries()) {
      const newCommit = s.commit === 0 ? 1 : s.commit;
      const pgnos = new Set(s.touched.filter((p) => p <= newCommit));
      for (let p = commit + 1; p <= newCommit; p++) pgnos.add(p);
      const min = txid + 1;
      txid += s.span;
      files.push(
        encodeLtxFile(
          header(min, txid, newCommit, 2000 + k),
          [...pgnos].sort((a, b) => a - b).map((pgno) => ({ pgno, data: page(tag++) })),
        ),
      );
      commit = newCommit;
    }
    return files;
  });

async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  // Uneven chunks, so the merge really streams.
  for (let i = 0; i < bytes.length; i += 97) yield bytes.subarray(i, i + 97);
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of gen) parts.push(c);
  return Buffer.concat(parts);
}

describe('compactLtx', () => {
  it('compacting any contiguous run equals applying its inputs one by one (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        history,
        fc.nat(),
        fc.nat(),
        fc.constantFrom<PageEncoding>('lz4-block', 'lz4-frame', 'zstd'),
        async (lz4Files, a, b, inputEncoding) => {
          // Inputs in the chosen encoding (mixed encodings across runs).
          const files = lz4Files.map((f) => {
            const d = decodeLtxFile(f);
            return encodeLtxFile(d.header, d.pages, { encoding: inputEncoding });
          });
          const i = a % files.length;
          const j = i + (b % (files.length - i));
          const expected = new Map<number, Uint8Array>();
          for (const f of files.slice(0, j + 1)) apply(expected, f);

          const out = await collect(compactLtx(files.slice(i, j + 1).map(once), { encoding: 'lz4-block' }));
          const merged = decodeLtxFile(out);
          const first = decodeLtxFile(defined(files[i])).header;
          const last = decodeLtxFile(defined(files[j])).header;
          expect(merged.header).toMatchObject({
            flags: 2,
            minTxid: first.minTxid,
            maxTxid: last.maxTxid,
            commit: last.commit,
            timestamp: last.timestamp,
            preApplyChecksum: 0n,
          });
          expect(merged.trailer.postApplyChecksum).toBe(0n);

          const actual = new Map<number, Uint8Array>();
          for (const f of files.slice(0, i)) apply(actual, f);
          apply(actual, out);
          expect([...actual.keys()].sort((x, y) => x - y)).toEqual(
            [...expected.keys()].sort((x, y) => x - y),
          );
          for (const [pgno, data] of expected)
            expect(Buffer.from(defined(actual.get(pgno))).equals(Buffer.from(data))).toBe(true);
          if (i === 0) expect(merged.pages.length).toBe(last.commit); // a full snapshot

          // The output encoding option is honoured.
          const again = decodeLtxFile(
            await collect(compactLtx(files.slice(i, j + 1).map(once), { encoding: 'zstd' })),
          );
          expect(again.pages.every((p) => p.encoding === 'zstd')).toBe(true);
          expect(again.pages.map((p) => p.pgno)).toEqual(merged.pages.map((p) => p.pgno));
        },
      ),
      { numRuns: 80 },
    );
  });

  it('uses the timestamp option and merges pages on both sides of the lock page', async () => {
    const pageSize = 65536;
    const lock = lockPgno(pageSize);
    const one = ltxFileBytes({
      pageSize,
      minTxid: 5,
      commit: lock + 1,
      pages: [
        { pgno: lock - 1, data: new Uint8Array(pageSize).fill(1) },
        { pgno: lock + 1, data: new Uint8Array(pageSize).fill(2) },
      ],
    });
    const two = ltxFileBytes({
      pageSize,
      minTxid: 6,
      commit: lock + 1,
      pages: [{ pgno: lock + 1, data: new Uint8Array(pageSize).fill(9) }],
    });
    const out = decodeLtxFile(await collect(compactLtx([once(one), once(two)], { timestamp: 42 })));
    expect(out.header).toMatchObject({ timestamp: 42, minTxid: 5, maxTxid: 6, commit: lock + 1 });
    expect(out.pages.map((p) => [p.pgno, p.data[0]])).toEqual([
      [lock - 1, 1],
      [lock + 1, 9],
    ]);
  });

  it('refuses a gap in TXIDs with LTX_NOT_CONTIGUOUS, and a corrupt input with its typed error', async () => {
    const a = ltxFileBytes({ minTxid: 1, pages: [{ pgno: 1 }] });
    const c = ltxFileBytes({ minTxid: 3, pages: [{ pgno: 1, tag: 3 }] });
    await expect(collect(compactLtx([once(a), once(c)]))).rejects.toMatchObject({
      code: 'LTX_NOT_CONTIGUOUS',
    });
    const b = ltxFileBytes({ minTxid: 2, pages: [{ pgno: 1, tag: 2 }] });
    const bad = b.slice();
    flipByte(bad, bad.length - 1, 1); // file checksum
    await expect(collect(compactLtx([once(a), once(bad)]))).rejects.toMatchObject({
      code: 'LTX_BAD_CHECKSUM',
    });
  });

  it('a page size change: the input that changes it (holding every page) replaces the inputs before it', async () => {
    // 512-byte pages at TXIDs 1-2; the primary VACUUMs into 1024-byte pages at TXID 3 (every page),
    // TXID 4 rewrites page 2. Expected: TXID 3's pages with TXID 4's page 2, page size 1024.
    const one = ltxFileBytes({ minTxid: 1, pages: [1, 2, 3, 4].map((pgno) => ({ pgno })) });
    const two = ltxFileBytes({ minTxid: 2, pages: [{ pgno: 4, tag: 40 }] });
    const three = ltxFileBytes({
      pageSize: 1024,
      minTxid: 3,
      pages: [1, 2, 3].map((pgno) => ({ pgno, tag: 300 + pgno })),
    });
    const four = ltxFileBytes({ pageSize: 1024, minTxid: 4, commit: 3, pages: [{ pgno: 2, tag: 42 }] });
    const out = decodeLtxFile(await collect(compactLtx([once(one), once(two), once(three), once(four)])));
    expect(out.header).toMatchObject({ minTxid: 1, maxTxid: 4, pageSize: 1024, commit: 3 });
    const expected = [...decodeLtxFile(three).pages];
    expected[1] = defined(decodeLtxFile(four).pages[0], 'page 2 of TXID 4');
    const bytesOf = (pages: readonly { pgno: number; data: Uint8Array }[]) =>
      pages.map((p) => ({ pgno: p.pgno, data: Buffer.from(p.data).toString('hex') }));
    expect(bytesOf(out.pages)).toEqual(bytesOf(expected));

    // A change at a file that lacks a page cannot be merged: the pages before it are another size.
    const partial = ltxFileBytes({
      pageSize: 1024,
      minTxid: 3,
      commit: 3,
      pages: [{ pgno: 1 }, { pgno: 3 }],
    });
    await expect(collect(compactLtx([once(two), once(partial)]))).rejects.toMatchObject({
      code: 'LTX_NOT_CONTIGUOUS',
      message: expect.stringContaining('holds 2 of the database'),
    });
  });
});
