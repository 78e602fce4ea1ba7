/**
 * The compaction planner (src/writer/compaction/levels.ts) on random lower levels, handed over in
 * any order, with overlaps, covered files and holes, against the rule its doc comment states,
 * checked as properties of the answer (not by re-running the same loop): the inputs are a
 * contiguous run in TXID order starting at the first pending file, every pending file left out
 * is either covered by the run or lies beyond the hole the answer names, and the messages name
 * the files and TXIDs exactly. findLevelGaps: every neighbour pair in TXID order, by hand.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { LtxFileInfo } from '../src/storage/types.js';
import { compactionBoundary, findLevelGaps, planCompaction } from '../src/writer/compaction/levels.js';

const hex = (n: number) => n.toString(16).padStart(16, '0');
const label = (f: { level: number; minTxid: number; maxTxid: number }) =>
  `L${f.level} ${hex(f.minTxid)}-${hex(f.maxTxid)}`;
const file = (level: number, minTxid: number, maxTxid: number): LtxFileInfo => ({
  level,
  minTxid,
  maxTxid,
  size: 1,
  createdAt: new Date(0),
});
const byTxid = (a: LtxFileInfo, b: LtxFileInfo) => a.minTxid - b.minTxid || a.maxTxid - b.maxTxid;

const levelArb = fc
  .array(fc.record({ min: fc.integer({ min: 1, max: 30 }), span: fc.integer({ min: 0, max: 5 }) }), {
    maxLength: 12,
  })
  .map((raw) => {
    const seen = new Set<string>();
    return raw
      .map((r) => file(0, r.min, r.min + r.span))
      .filter((f) => {
        const key = `${f.minTxid}-${f.maxTxid}`;
        if (seen.has(key)) return false;
        seen.add(key);
        return true;
      });
  });

describe('planCompaction: properties of its answer on random levels', () => {
  it('a contiguous run from the first pending file; what is left out is covered or beyond the named hole; exact reasons', () => {
    fc.assert(
      fc.property(
        levelArb,
        fc.option(fc.integer({ min: 0, max: 30 }), { nil: undefined }),
        fc.integer({ min: 0, max: 30 }),
        fc.integer({ min: 0, max: 1000 }),
        (lower, targetMax, bridged, seed) => {
          const newest = targetMax === undefined ? undefined : file(1, 1, Math.max(1, targetMax));
          const done = newest?.maxTxid ?? 0;
          // handed over in some order: the answer may not depend on it
          const shuffled = [...lower].sort(
            (a, b) =>
              ((a.minTxid * 31 + a.maxTxid * 7 + seed) % 13) - ((b.minTxid * 31 + b.maxTxid * 7 + seed) % 13),
          );
          const plan = planCompaction(shuffled, newest, bridged);
          const pending = lower.filter((f) => f.maxTxid > done).sort(byTxid);
          if (pending.length === 0) {
            expect(plan).toEqual({ kind: 'nothing', reason: `nothing after TXID ${hex(done)}` });
            return;
          }
          const first = pending[0] as LtxFileInfo;
          if (newest !== undefined && first.minTxid > done + 1 && first.minTxid > bridged + 1) {
            expect(plan).toEqual({
              kind: 'gap',
              reason: `${label(first)} does not follow ${label(newest)}: TXIDs ${hex(done + 1)}-${hex(first.minTxid - 1)} are missing below`,
            });
            return;
          }
          expect(plan.kind).toBe('merge');
          if (plan.kind !== 'merge') return;
          const { inputs } = plan;
          expect(inputs[0]).toBe(first);
          let covered = first.maxTxid;
          for (const f of inputs.slice(1)) {
            expect(f.minTxid).toBeLessThanOrEqual(covered + 1);
            expect(f.maxTxid).toBeGreaterThan(covered);
            covered = f.maxTxid;
          }
          expect(plan.minTxid).toBe(first.minTxid);
          expect(plan.maxTxid).toBe(covered);
          const left = pending.filter((f) => !inputs.includes(f));
          const beyond = left.filter((f) => f.maxTxid > covered);
          if (beyond.length === 0) {
            expect(plan.stoppedAtGap).toBeUndefined();
          } else {
            const next = beyond[0] as LtxFileInfo;
            expect(next.minTxid).toBeGreaterThan(covered + 1);
            expect(plan.stoppedAtGap).toBe(
              `${label(next)} does not follow TXID ${hex(covered)}: TXIDs ${hex(covered + 1)}-${hex(next.minTxid - 1)} are missing`,
            );
          }
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('an overlapping file that adds something after the covered end is taken; one inside it is not', () => {
    const plan = planCompaction([file(0, 3, 5), file(0, 1, 4), file(0, 2, 3), file(0, 5, 6)], undefined);
    expect(plan).toEqual({
      kind: 'merge',
      inputs: [file(0, 1, 4), file(0, 3, 5), file(0, 5, 6)],
      minTxid: 1,
      maxTxid: 6,
    });
    // equal maxTxid to the covered end adds nothing
    const same = planCompaction([file(0, 1, 4), file(0, 4, 4)], undefined);
    expect(same.kind === 'merge' && same.inputs).toEqual([file(0, 1, 4)]);
  });
});

describe('findLevelGaps', () => {
  it('names holes and files that add nothing, in TXID order whatever the input order', () => {
    fc.assert(
      fc.property(levelArb, (files) => {
        const sorted = [...files].sort(byTxid);
        const expected: string[] = [];
        for (let i = 1; i < sorted.length; i++) {
          const prev = sorted[i - 1] as LtxFileInfo;
          const next = sorted[i] as LtxFileInfo;
          if (next.minTxid > prev.maxTxid + 1)
            expected.push(`${label(prev)} is followed by ${label(next)}: TXIDs in between are missing`);
          else if (next.maxTxid <= prev.maxTxid)
            expected.push(`${label(next)} adds nothing after ${label(prev)}`);
        }
        expect(findLevelGaps([...files].reverse())).toEqual(expected);
        expect(findLevelGaps(files)).toEqual(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('compactionBoundary truncates to the interval on the Unix epoch', () => {
    expect(compactionBoundary(0, 1000)).toBe(0);
    expect(compactionBoundary(999, 1000)).toBe(0);
    expect(compactionBoundary(1000, 1000)).toBe(1000);
    expect(compactionBoundary(3_599_999, 3_600_000)).toBe(0);
    expect(compactionBoundary(7_200_001, 3_600_000)).toBe(7_200_000);
  });
});
