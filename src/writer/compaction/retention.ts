import type { LtxFileInfo } from '../../storage/types.js';
import type { Txid } from '../../util/txid.js';

/*
 * Litestream v0.5's retention rules (ltx-and-litestream.md section 2.5), as pure functions over
 * listings so they can be checked against an independent model. Every rule keeps the newest file
 * of its level: it is what the next compaction continues from and what a reader of the latest
 * state needs.
 */

function newestOf(files: readonly LtxFileInfo[]): LtxFileInfo | undefined {
  let newest: LtxFileInfo | undefined;
  for (const f of files) if (!newest || f.maxTxid > newest.maxTxid) newest = f;
  return newest;
}

/**
 * L0 files that may go: already merged into L1 (MaxTXID <= the highest L1 TXID) AND created
 * more than `l0RetentionMs` ago, so readers and restores that listed them a moment ago still
 * find them.
 */
export function planL0Retention(
  l0: readonly LtxFileInfo[],
  l1MaxTxid: Txid | undefined,
  nowMs: number,
  l0RetentionMs: number,
): LtxFileInfo[] {
  if (l1MaxTxid === undefined) return [];
  const newest = newestOf(l0);
  const threshold = nowMs - l0RetentionMs;
  return l0.filter((f) => f !== newest && f.maxTxid <= l1MaxTxid && f.createdAt.getTime() < threshold);
}

/**
 * Snapshots older than the retention go, keeping the newest. `floor` is the MaxTXID of the
 * newest snapshot deleted (Litestream >= 0.5.14): level files entirely below it are expired.
 */
export function planSnapshotRetention(
  snapshots: readonly LtxFileInfo[],
  nowMs: number,
  retentionMs: number,
): { deleted: LtxFileInfo[]; floor: Txid | undefined } {
  const newest = newestOf(snapshots);
  const threshold = nowMs - retentionMs;
  const deleted = snapshots.filter((f) => f !== newest && f.createdAt.getTime() < threshold);
  const floor = deleted.length === 0 ? undefined : Math.max(...deleted.map((f) => f.maxTxid));
  return { deleted, floor };
}

/** Files of one compaction level wholly below the floor, keeping the level's newest. */
export function planFloorRetention(files: readonly LtxFileInfo[], floor: Txid): LtxFileInfo[] {
  const newest = newestOf(files);
  return files.filter((f) => f !== newest && f.maxTxid < floor);
}
