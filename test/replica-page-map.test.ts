import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extendChain } from '../src/replica/extend.js';
import { makeFileIndex, PageMap } from '../src/replica/page-map.js';
import type { LtxFileInfo } from '../src/storage/types.js';
import { defined } from './support/defined.js';

function info(level: number, minTxid: number, maxTxid: number, createdAt = 0): LtxFileInfo {
  return { level, minTxid, maxTxid, size: 1000, createdAt: new Date(createdAt) };
}

/** One file of the sequence: its page set and the database size after it (undefined: header unknown). */
const fileArb = fc.record({
  commit: fc.integer({ min: 1, max: 60 }),
  pages: fc.uniqueArray(fc.integer({ min: 1, max: 60 }), { maxLength: 20 }),
  headerKnown: fc.boolean(),
});

describe('PageMap', () => {
  it('agrees with a naive applier for any sequence of files, batches, shrinks and folds', () => {
    fc.assert(
      fc.property(
        fc.array(fileArb, { minLength: 1, maxLength: 80 }),
        fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 80 }),
        (files, batchSizes) => {
          // The first file is a snapshot: every page 1..commit, header known.
          files[0] = {
            commit: defined(files[0]).commit,
            pages: Array.from({ length: defined(files[0]).commit }, (_, i) => i + 1),
            headerKnown: true,
          };
          const indexes = files.map((f, i) => {
            // A file never holds pages beyond its own commit; an unknown header still keeps that rule.
            const pages = f.pages.filter((p) => p <= f.commit).sort((a, b) => a - b);
            return makeFileIndex(
              info(0, i + 1, i + 1),
              pages.map((pgno, k) => ({ pgno, offset: 100 + k * 10, size: 10 })),
              f.headerKnown ? f.commit : Number.POSITIVE_INFINITY,
            );
          });
          // Reference: pgno -> file number, truncated at each known commit.
          const ref = new Map<number, number>();
          const refAfter: Array<Map<number, number>> = [];
          indexes.forEach((idx, i) => {
            if (Number.isFinite(idx.commit))
              for (const p of [...ref.keys()]) if (p > idx.commit) ref.delete(p);
            for (const p of idx.pgnos) ref.set(p, i);
            refAfter.push(new Map(ref));
          });
          // Apply in batches; the map's commit is the last known header's commit in practice, use 60.
          let map: PageMap | undefined;
          let at = 0;
          let b = 0;
          while (at < indexes.length) {
            const n = Math.min(defined(batchSizes[b++ % batchSizes.length]), indexes.length - at);
            const batch = indexes.slice(at, at + n);
            at += n;
            map = map === undefined ? PageMap.build(batch, 60) : map.apply(batch, 60);
            const expected = refAfter[at - 1];
            for (let p = 1; p <= 61; p++) {
              const loc = map.lookup(p);
              const want = defined(expected).get(p);
              if (want === undefined) expect(loc).toBeUndefined();
              else expect(loc?.index).toBe(indexes[want]);
              if (loc !== undefined) expect(loc.index.pgnos[loc.entry]).toBe(p);
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it('answers nothing beyond its commit', () => {
    const idx = makeFileIndex(
      info(0, 1, 1),
      [
        { pgno: 1, offset: 100, size: 10 },
        { pgno: 2, offset: 110, size: 10 },
      ],
      2,
    );
    const map = PageMap.build([idx], 1);
    expect(map.lookup(1)?.entry).toBe(0);
    expect(map.lookup(2)).toBeUndefined();
    expect(map.lookup(0)).toBeUndefined();
  });
});

describe('extendChain', () => {
  it('prefers the file reaching furthest, and accepts files straddling the position', () => {
    const listing = new Map([
      [0, [info(0, 5, 5), info(0, 6, 6), info(0, 12, 12)]],
      [1, [info(1, 1, 4), info(1, 3, 11)]],
    ]);
    expect(extendChain(listing, 4).map((f) => [f.level, f.minTxid, f.maxTxid])).toEqual([
      [1, 3, 11],
      [0, 12, 12],
    ]);
  });

  it('ties go to the smaller min, then the higher level, then the older file', () => {
    const listing = new Map([
      [0, [info(0, 2, 5, 10)]],
      [1, [info(1, 1, 5, 20)]],
      [2, [info(2, 1, 5, 30), info(2, 1, 5, 5)]],
    ]);
    const [first] = extendChain(listing, 0);
    expect([defined(first).level, defined(first).minTxid, defined(first).createdAt.getTime()]).toEqual([
      2, 1, 5,
    ]);
  });
});
