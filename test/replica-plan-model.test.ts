/**
 * The restore planner (src/replica/plan.ts) and chain extension (src/replica/extend.ts) against
 * a second implementation written from Litestream's rule as the docs state it
 * (ltx-and-litestream.md 2.6): the newest fitting L9 snapshot, then step by step the best file
 * of levels 8..0 that touches the chain's end and moves it forward (largest MaxTXID, then
 * smaller MinTXID, then higher level, then older createdAt), scanned naively (every file, every
 * step), plus this project's stricter endings (LTX_NOT_CONTIGUOUS, TXID_NOT_AVAILABLE). Random
 * listings with ties on every key and targets on exact boundaries (a TXID that is some file's
 * max, a time equal to some file's createdAt).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { extendChain, greedyChain } from '../src/replica/extend.js';
import { planRestore, type RestoreTarget } from '../src/replica/plan.js';
import type { LtxFileInfo } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';

const T0 = Date.parse('2026-01-01T00:00:00Z');

function better(a: LtxFileInfo, b: LtxFileInfo): boolean {
  if (a.maxTxid !== b.maxTxid) return a.maxTxid > b.maxTxid;
  if (a.minTxid !== b.minTxid) return a.minTxid < b.minTxid;
  if (a.level !== b.level) return a.level > b.level;
  return a.createdAt.getTime() < b.createdAt.getTime();
}

/** The naive chain: every step looks at every file of levels 8..0. */
function modelChain(files: readonly LtxFileInfo[], from: number, fits: (f: LtxFileInfo) => boolean) {
  const chain: LtxFileInfo[] = [];
  let cur = from;
  for (;;) {
    let best: LtxFileInfo | undefined;
    for (let level = 8; level >= 0; level--) {
      for (const f of files) {
        if (f.level !== level || !fits(f) || f.minTxid > cur + 1 || f.maxTxid <= cur) continue;
        if (best === undefined || better(f, best)) best = f;
      }
    }
    if (best === undefined) return chain;
    chain.push(best);
    cur = best.maxTxid;
  }
}

type Outcome = { plan: LtxFileInfo[] } | { code: string };

function modelPlan(files: readonly LtxFileInfo[], target: RestoreTarget): Outcome {
  if (files.length === 0) return { code: 'REPLICA_EMPTY' };
  const fits = (f: LtxFileInfo) =>
    (target.txid === undefined || f.maxTxid <= target.txid) &&
    (target.timestamp === undefined || f.createdAt.getTime() <= target.timestamp.getTime());
  let snapshot: LtxFileInfo | undefined;
  for (const f of files)
    if (f.level === 9 && fits(f) && (snapshot === undefined || f.maxTxid > snapshot.maxTxid)) snapshot = f;
  const plan = snapshot ? [snapshot] : [];
  plan.push(...modelChain(files, snapshot?.maxTxid ?? 0, fits));
  const end = plan.at(-1)?.maxTxid ?? 0;
  if (target.txid === undefined && target.timestamp === undefined) {
    if (files.some((f) => f.level !== 9 && f.minTxid > end + 1)) return { code: 'LTX_NOT_CONTIGUOUS' };
  }
  if (plan[0]?.minTxid !== 1) return { code: 'TXID_NOT_AVAILABLE' };
  if (target.txid !== undefined && end !== target.txid) return { code: 'TXID_NOT_AVAILABLE' };
  return { plan };
}

function ours(files: readonly LtxFileInfo[], target: RestoreTarget, asMap: boolean): Outcome {
  const listing = asMap
    ? new Map([0, 1, 2, 3, 9].map((level) => [level, files.filter((f) => f.level === level)]))
    : files;
  try {
    return { plan: planRestore(listing, target) };
  } catch (err) {
    if (!isLtxvfsError(err)) throw err;
    return { code: err.code };
  }
}

/** Listings with ties: few distinct TXID bounds and creation seconds; (level, min, max) unique. */
const listingArb = fc
  .array(
    fc.record({
      level: fc.constantFrom(0, 0, 1, 2, 3, 9),
      min: fc.integer({ min: 1, max: 14 }),
      span: fc.integer({ min: 0, max: 6 }),
      created: fc.integer({ min: 0, max: 5 }),
    }),
    { minLength: 0, maxLength: 18 },
  )
  .map((raw) => {
    const seen = new Set<string>();
    const files: LtxFileInfo[] = [];
    for (const r of raw) {
      const minTxid = r.level === 9 ? 1 : r.min;
      const maxTxid = minTxid + r.span;
      const key = `${r.level}:${minTxid}-${maxTxid}`;
      if (seen.has(key)) continue;
      seen.add(key);
      files.push({ level: r.level, minTxid, maxTxid, size: 1, createdAt: new Date(T0 + r.created * 1000) });
    }
    return files;
  });

const names = (o: Outcome) =>
  'plan' in o
    ? o.plan.map((f) => `L${f.level}:${f.minTxid}-${f.maxTxid}@${f.createdAt.getTime() - T0}`)
    : o.code;

describe('planRestore and extendChain equal a naive model of the rule', () => {
  it('untargeted, by TXID (on and off file boundaries) and by time (equal to a createdAt), as a map or a flat list', () => {
    fc.assert(
      fc.property(
        listingArb,
        fc.oneof(
          fc.constant<RestoreTarget>({}),
          fc.integer({ min: 0, max: 22 }).map((txid): RestoreTarget => ({ txid })),
          fc.integer({ min: -1, max: 6 }).map((s): RestoreTarget => ({ timestamp: new Date(T0 + s * 1000) })),
        ),
        fc.boolean(),
        (files, target, asMap) => {
          expect(names(ours(files, target, asMap))).toEqual(names(modelPlan(files, target)));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('extendChain from any TXID, with and without a filter, skips snapshots and equals the model', () => {
    fc.assert(
      fc.property(
        listingArb,
        fc.integer({ min: 0, max: 20 }),
        fc.integer({ min: 0, max: 22 }),
        (files, from, cap) => {
          const listing = new Map<number, LtxFileInfo[]>();
          for (const f of files) listing.set(f.level, [...(listing.get(f.level) ?? []), f]);
          const key = (c: LtxFileInfo[]) =>
            c.map((f) => `L${f.level}:${f.minTxid}-${f.maxTxid}@${f.createdAt.getTime()}`);
          const all = (f: LtxFileInfo) => f.level !== 9;
          expect(key(extendChain(listing, from))).toEqual(key(modelChain(files, from, all)));
          const capped = (f: LtxFileInfo) => f.maxTxid <= cap;
          expect(key(extendChain(listing, from, capped))).toEqual(
            key(modelChain(files, from, (f) => all(f) && capped(f))),
          );
          // greedyChain over the same candidates in any order
          const candidates = files.filter((f) => f.level !== 9 && f.maxTxid > from).reverse();
          expect(key(greedyChain(candidates, from))).toEqual(key(modelChain(files, from, all)));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('names the replica and the problem in its errors', () => {
    const at = (s: number) => new Date(T0 + s * 1000);
    const file = (level: number, min: number, max: number, s = 0): LtxFileInfo => ({
      level,
      minTxid: min,
      maxTxid: max,
      size: 1,
      createdAt: at(s),
    });
    const err = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return isLtxvfsError(e) ? `${e.code}: ${e.message}` : String(e);
      }
      return 'no error';
    };
    expect(err(() => planRestore([], {}))).toBe('REPLICA_EMPTY: the replica holds no LTX files');
    expect(err(() => planRestore([], {}, { url: 's3://b/p' }))).toBe(
      'REPLICA_EMPTY: s3://b/p holds no LTX files',
    );
    expect(err(() => planRestore([file(0, 1, 1)], { txid: 1, timestamp: at(0) }))).toBe(
      'BAD_ARGUMENT: restore target: give a TXID or a timestamp, not both',
    );
    expect(err(() => planRestore([file(0, 1, 1), file(0, 3, 3, 2)], {}, { url: 'R' }))).toBe(
      'LTX_NOT_CONTIGUOUS: R has a gap: level 0 file 0000000000000003-0000000000000003.ltx starts after TXID 0000000000000001 + 1',
    );
  });
});
