import { describe, expect, it } from 'vitest';
import { planRestore, planTxid } from '../src/replica/plan.js';
import type { LtxFileInfo } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';

const t0 = Date.parse('2026-01-01T00:00:00Z');
function f(level: number, min: number, max: number, createdSec = max): LtxFileInfo {
  return { level, minTxid: min, maxTxid: max, size: 100, createdAt: new Date(t0 + createdSec * 1000) };
}
const names = (plan: LtxFileInfo[]) => plan.map((p) => `L${p.level}:${p.minTxid}-${p.maxTxid}`);
function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isLtxvfsError(err) ? `${err.code}: ${err.message}` : String(err);
  }
  return undefined;
}

describe('planRestore (Litestream CalcRestorePlan)', () => {
  const l0 = Array.from({ length: 12 }, (_, i) => f(0, i + 1, i + 1));
  it('L0 only: every file in order', () => {
    expect(names(planRestore(l0))).toEqual(l0.map((x) => `L0:${x.minTxid}-${x.maxTxid}`));
  });
  it('prefers the longest extension across levels; snapshot first', () => {
    const listing = new Map([
      [0, l0],
      [1, [f(1, 1, 5), f(1, 6, 10)]],
      [2, [f(2, 1, 8)]],
      [9, [f(9, 1, 4), f(9, 1, 7)]],
    ]);
    expect(names(planRestore(listing))).toEqual(['L9:1-7', 'L1:6-10', 'L0:11-11', 'L0:12-12']);
    // L2:1-8 and L0:8-8 both reach 8: the smaller MinTXID wins
    expect(names(planRestore(listing, { txid: 9 }))).toEqual(['L9:1-7', 'L2:1-8', 'L0:9-9']);
    expect(names(planRestore(listing, { txid: 8 }))).toEqual(['L9:1-7', 'L2:1-8']);
    expect(names(planRestore(listing, { txid: 3 }))).toEqual(['L0:1-1', 'L0:2-2', 'L0:3-3']);
    expect(planTxid(planRestore(listing, { txid: 10 }))).toBe(10);
  });
  it('ties: smaller min, then higher level, then older createdAt', () => {
    expect(names(planRestore([f(0, 1, 1), f(1, 1, 3), f(2, 2, 3)]))).toEqual(['L1:1-3']);
    expect(names(planRestore([f(1, 1, 3), f(2, 1, 3)]))).toEqual(['L2:1-3']);
    const older = f(1, 1, 3, 1);
    const newer = { ...f(1, 1, 3, 9) };
    expect(planRestore([newer, older])[0]).toBe(older);
  });
  it('timestamp target uses createdAt', () => {
    expect(names(planRestore(l0, { timestamp: new Date(t0 + 5500) }))).toHaveLength(5);
    expect(code(() => planRestore(l0, { timestamp: new Date(t0) }))).toMatch(
      /^TXID_NOT_AVAILABLE: .*2026-01-01T00:00:00.000Z/,
    );
  });
  it('untargeted restore fails on a gap, naming the file', () => {
    const gap = [f(0, 1, 1), f(0, 2, 2), f(0, 4, 4)];
    expect(code(() => planRestore(gap, {}, { url: 's3://b/p' }))).toBe(
      'LTX_NOT_CONTIGUOUS: s3://b/p has a gap: level 0 file 0000000000000004-0000000000000004.ltx starts after TXID 0000000000000002 + 1',
    );
    expect(names(planRestore(gap, { txid: 2 }))).toEqual(['L0:1-1', 'L0:2-2']);
  });
  it('TXID not reachable exactly, or no chain from 1: TXID_NOT_AVAILABLE with the held range', () => {
    const listing = [f(1, 1, 100), f(0, 101, 101), f(0, 102, 102)];
    expect(code(() => planRestore(listing, { txid: 42 }, { url: 'file:///r' }))).toMatch(
      /^TXID_NOT_AVAILABLE: TXID 000000000000002a is not available in file:\/\/\/r: replica holds TXIDs 0000000000000001\.\.0000000000000066/,
    );
    expect(code(() => planRestore([f(0, 5, 5), f(0, 6, 6)], { txid: 6 }))).toMatch(/^TXID_NOT_AVAILABLE/);
    expect(code(() => planRestore([], {}))).toMatch(/^REPLICA_EMPTY/);
    expect(code(() => planRestore(l0, { txid: 99 }))).toMatch(
      /nearest restorable TXID below it is 000000000000000c/,
    );
  });
});
