import type { LtxFileInfo, LtxFileRef } from '../../storage/types.js';
import { present } from '../../util/invariant.js';
import { formatTxid, type Txid } from '../../util/txid.js';

/** The last wall-clock boundary at or before `nowMs` (Go's `time.Truncate`, on the Unix epoch). */
export function compactionBoundary(nowMs: number, intervalMs: number): number {
  return Math.floor(nowMs / intervalMs) * intervalMs;
}

export function describeFile(file: LtxFileRef): string {
  return `L${file.level} ${formatTxid(file.minTxid)}-${formatTxid(file.maxTxid)}`;
}

/** What one compaction into a level should merge, decided from the listings alone. */
export type CompactionPlan =
  | { kind: 'merge'; inputs: LtxFileInfo[]; minTxid: Txid; maxTxid: Txid; stoppedAtGap?: string }
  | { kind: 'nothing'; reason: string }
  | { kind: 'gap'; reason: string };

/**
 * Chooses the inputs of a compaction into a level whose newest file is `newestAtTarget`:
 * every file of the level below that extends past it, in TXID order, up to the first hole
 * (reported in `stoppedAtGap`), starting right after it (a file straddling the boundary is included, so a
 * level whose boundaries do not line up still never gets a hole).
 *
 * A hole between the target and the inputs is only acceptable when a snapshot already covers
 * it (`bridgedUpTo` = MaxTXID of the newest snapshot): retention removed the files below the
 * floor on purpose and no restore can need them. Any other hole is reported, never papered over.
 */
export function planCompaction(
  lowerLevel: readonly LtxFileInfo[],
  newestAtTarget: LtxFileRef | undefined,
  bridgedUpTo: Txid = 0,
): CompactionPlan {
  const done = newestAtTarget?.maxTxid ?? 0;
  const pending = lowerLevel
    .filter((f) => f.maxTxid > done)
    .sort((a, b) => a.minTxid - b.minTxid || a.maxTxid - b.maxTxid);
  if (pending.length === 0) return { kind: 'nothing', reason: `nothing after TXID ${formatTxid(done)}` };

  // Lower-level files are disjoint runs in practice; keep the longest chain and drop files that
  // another input already covers entirely (possible after a crash left an overlapping file).
  const inputs: LtxFileInfo[] = [];
  let covered = 0;
  let stoppedAtGap: string | undefined;
  for (const file of pending) {
    if (inputs.length === 0) {
      inputs.push(file);
      covered = file.maxTxid;
      continue;
    }
    if (file.maxTxid <= covered) continue;
    if (file.minTxid > covered + 1) {
      // Merge the contiguous part; what lies beyond the hole waits until the hole is explained.
      stoppedAtGap = `${describeFile(file)} does not follow TXID ${formatTxid(covered)}: TXIDs ${formatTxid(covered + 1)}-${formatTxid(file.minTxid - 1)} are missing`;
      break;
    }
    inputs.push(file);
    covered = file.maxTxid;
  }
  const first = present(inputs[0], 'first input of a non-empty compaction');
  if (newestAtTarget !== undefined && first.minTxid > done + 1 && first.minTxid > bridgedUpTo + 1) {
    return {
      kind: 'gap',
      reason: `${describeFile(first)} does not follow ${describeFile(newestAtTarget)}: TXIDs ${formatTxid(done + 1)}-${formatTxid(first.minTxid - 1)} are missing below`,
    };
  }
  return {
    kind: 'merge',
    inputs,
    minTxid: first.minTxid,
    maxTxid: covered,
    ...(stoppedAtGap ? { stoppedAtGap } : {}),
  };
}

/** Problems with how a level's files tile the TXID space: holes between neighbours. */
export function findLevelGaps(files: readonly LtxFileRef[]): string[] {
  const sorted = [...files].sort((a, b) => a.minTxid - b.minTxid || a.maxTxid - b.maxTxid);
  const gaps: string[] = [];
  for (const [i, next] of sorted.entries()) {
    const prev = sorted[i - 1];
    if (prev === undefined) continue;
    if (next.minTxid > prev.maxTxid + 1) {
      gaps.push(`${describeFile(prev)} is followed by ${describeFile(next)}: TXIDs in between are missing`);
    } else if (next.maxTxid <= prev.maxTxid) {
      gaps.push(`${describeFile(next)} adds nothing after ${describeFile(prev)}`);
    }
  }
  return gaps;
}
