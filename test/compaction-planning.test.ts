import { describe, expect, it } from 'vitest';
import type { LtxFileInfo } from '../src/storage/types.js';
import { compactionBoundary, findLevelGaps, planCompaction } from '../src/writer/compaction/levels.js';
import {
  planFloorRetention,
  planL0Retention,
  planSnapshotRetention,
} from '../src/writer/compaction/retention.js';

// Pure rules over hand-written listings; the expected sets are read off section 2.5 of the
// Litestream notes, not computed by the code under test.

const file = (level: number, minTxid: number, maxTxid: number, createdAtMs = 0): LtxFileInfo => ({
  level,
  minTxid,
  maxTxid,
  size: 100,
  createdAt: new Date(createdAtMs),
});
const names = (files: LtxFileInfo[]) => files.map((f) => `${f.minTxid}-${f.maxTxid}`);

describe('compaction boundaries and input selection', () => {
  it('truncates to the interval like time.Truncate', () => {
    expect(compactionBoundary(95_000, 30_000)).toBe(90_000);
    expect(compactionBoundary(90_000, 30_000)).toBe(90_000);
    expect(compactionBoundary(89_999, 30_000)).toBe(60_000);
  });

  it('merges every lower file after the newest target file, contiguously', () => {
    const l0 = [1, 2, 3, 4, 5, 6].map((t) => file(0, t, t));
    const plan = planCompaction(l0, file(1, 1, 3));
    expect(plan).toMatchObject({ kind: 'merge', minTxid: 4, maxTxid: 6 });
    expect(plan.kind === 'merge' && names(plan.inputs)).toEqual(['4-4', '5-5', '6-6']);
    expect(planCompaction(l0, undefined)).toMatchObject({ kind: 'merge', minTxid: 1, maxTxid: 6 });
    expect(planCompaction(l0, file(1, 1, 6)).kind).toBe('nothing');
  });

  it('includes a lower file that straddles the target boundary', () => {
    const l1 = [file(1, 1, 10), file(1, 11, 20), file(1, 21, 30)];
    const plan = planCompaction(l1, file(2, 1, 15));
    expect(plan.kind === 'merge' && names(plan.inputs)).toEqual(['11-20', '21-30']);
    expect(plan).toMatchObject({ minTxid: 11, maxTxid: 30 });
  });

  it('stops before a hole inside the lower level', () => {
    const plan = planCompaction([file(0, 4, 4), file(0, 5, 5), file(0, 8, 8)], file(1, 1, 3));
    expect(plan).toMatchObject({ kind: 'merge', minTxid: 4, maxTxid: 5 });
    expect(plan.kind === 'merge' && plan.stoppedAtGap).toMatch(
      /0000000000000006-0000000000000007 are missing/,
    );
  });

  it('refuses a hole between the target and the lower level unless a snapshot covers it', () => {
    const l1 = [file(1, 21, 30), file(1, 31, 40)];
    expect(planCompaction(l1, file(2, 1, 10)).kind).toBe('gap');
    expect(planCompaction(l1, file(2, 1, 10), 19).kind).toBe('gap');
    expect(planCompaction(l1, file(2, 1, 10), 20)).toMatchObject({ kind: 'merge', minTxid: 21, maxTxid: 40 });
  });

  it('finds holes and useless files in a level', () => {
    expect(findLevelGaps([file(1, 1, 5), file(1, 6, 9), file(1, 10, 10)])).toEqual([]);
    expect(findLevelGaps([file(1, 1, 5), file(1, 7, 9)])).toHaveLength(1);
    expect(findLevelGaps([file(1, 1, 5), file(1, 3, 5)])).toHaveLength(1);
  });
});

describe('retention rules (section 2.5)', () => {
  const now = 1_000_000;
  it('L0: only files merged into L1 and older than the L0 retention; never the newest', () => {
    const l0 = [
      file(0, 1, 1, now - 600_000),
      file(0, 2, 2, now - 301_000),
      file(0, 3, 3, now - 300_000), // exactly at the limit: not older
      file(0, 4, 4, now - 400_000), // old but not yet in L1
      file(0, 5, 5, now - 900_000), // newest, and not in L1 either
    ];
    expect(names(planL0Retention(l0, 3, now, 300_000))).toEqual(['1-1', '2-2']);
    expect(names(planL0Retention(l0, 5, now, 300_000))).toEqual(['1-1', '2-2', '4-4']);
    expect(planL0Retention(l0, undefined, now, 300_000)).toEqual([]);
    expect(names(planL0Retention([file(0, 9, 9, 0)], 9, now, 0))).toEqual([]);
  });

  it('snapshots: older than the retention go, the newest stays; floor = newest deleted MaxTXID', () => {
    const l9 = [file(9, 1, 10, now - 5000), file(9, 1, 20, now - 4000), file(9, 1, 30, now - 1000)];
    expect(planSnapshotRetention(l9, now, 3000)).toEqual({ deleted: [l9[0], l9[1]], floor: 20 });
    expect(planSnapshotRetention(l9, now, 10_000)).toEqual({ deleted: [], floor: undefined });
    // All expired: the newest is kept anyway.
    expect(planSnapshotRetention(l9, now, 500)).toEqual({ deleted: [l9[0], l9[1]], floor: 20 });
  });

  it('levels: files wholly below the floor go, the newest stays', () => {
    const l1 = [file(1, 1, 10), file(1, 11, 19), file(1, 20, 25), file(1, 26, 30)];
    expect(names(planFloorRetention(l1, 20))).toEqual(['1-10', '11-19']);
    expect(names(planFloorRetention([file(2, 1, 5)], 100))).toEqual([]);
  });
});
