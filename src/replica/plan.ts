import { formatLtxFileName, isContiguous, SNAPSHOT_LEVEL } from '../ltx/names.js';
import type { LtxFileInfo } from '../storage/types.js';
import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { greedyChain } from './extend.js';

/** Files of a replica by level, or one flat list (each file carries its level). */
export type ReplicaListing = ReadonlyMap<number, readonly LtxFileInfo[]> | readonly LtxFileInfo[];

export interface RestoreTarget {
  /** Restore exactly this TXID. */
  txid?: Txid;
  /** Restore the newest state whose files were all created at or before this time. */
  timestamp?: Date;
}

export interface PlanOptions {
  /** Names the replica in error messages. */
  url?: string;
}

/**
 * Litestream's restore plan (`CalcRestorePlan`, ltx-and-litestream.md 2.6), as a pure function
 * over a listing:
 *
 * 1. Start from the newest L9 snapshot that fits the target (MaxTXID <= txid, or createdAt <=
 *    timestamp), if any.
 * 2. Repeatedly extend the chain with the file, from levels 8 down to 0, that is contiguous
 *    (MinTXID <= current + 1), extends it (MaxTXID > current) and fits the target, choosing the
 *    largest MaxTXID; ties go to the smaller MinTXID, then the higher level, then the older
 *    createdAt.
 * 3. Untargeted: a file anywhere that starts beyond the chain's end + 1 means the replica has a
 *    hole: LTX_NOT_CONTIGUOUS naming the file.
 *
 * Stricter than Litestream where Litestream would silently restore something else: the chain
 * must start at TXID 1 (restore writes a complete database), and a TXID target must be reached
 * exactly; otherwise TXID_NOT_AVAILABLE says what the replica holds. An empty replica is
 * REPLICA_EMPTY.
 */
export function planRestore(
  listing: ReplicaListing,
  target: RestoreTarget = {},
  options: PlanOptions = {},
): LtxFileInfo[] {
  const url = options.url ?? 'the replica';
  if (target.txid !== undefined && target.timestamp !== undefined) {
    throw new LtxvfsError('BAD_ARGUMENT', 'restore target: give a TXID or a timestamp, not both');
  }
  const files = flatten(listing);
  if (files.length === 0) throw new LtxvfsError('REPLICA_EMPTY', `${url} holds no LTX files`);
  const fits = (f: LtxFileInfo): boolean =>
    (target.txid === undefined || f.maxTxid <= target.txid) &&
    (target.timestamp === undefined || f.createdAt.getTime() <= target.timestamp.getTime());

  const plan: LtxFileInfo[] = [];
  let current = 0;
  let snapshot: LtxFileInfo | undefined;
  for (const f of files) {
    if (f.level !== SNAPSHOT_LEVEL || !fits(f)) continue;
    if (!snapshot || f.maxTxid > snapshot.maxTxid) snapshot = f;
  }
  if (snapshot) {
    plan.push(snapshot);
    current = snapshot.maxTxid;
  }

  const candidates = files.filter(
    (f) => f.level !== SNAPSHOT_LEVEL && f.level >= 0 && f.level <= 8 && f.maxTxid > current && fits(f),
  );
  for (const f of greedyChain(candidates, current)) {
    plan.push(f);
    current = f.maxTxid;
  }

  const range = heldRange(files);
  if (target.txid === undefined && target.timestamp === undefined) {
    const beyond = files
      .filter((f) => f.level !== SNAPSHOT_LEVEL && !isContiguous(current, f.minTxid))
      .sort((a, b) => a.minTxid - b.minTxid)[0];
    if (beyond) {
      throw new LtxvfsError(
        'LTX_NOT_CONTIGUOUS',
        `${url} has a gap: level ${beyond.level} file ${fileName(beyond)} starts after TXID ${formatTxid(current)} + 1`,
      );
    }
  }
  if (plan[0]?.minTxid !== 1) {
    throw new LtxvfsError(
      'TXID_NOT_AVAILABLE',
      `${describeTarget(target)} is not available in ${url}: ${range}`,
    );
  }
  if (target.txid !== undefined && current !== target.txid) {
    throw new LtxvfsError(
      'TXID_NOT_AVAILABLE',
      `TXID ${formatTxid(target.txid)} is not available in ${url}: ${range}` +
        (current > 0 ? `; the nearest restorable TXID below it is ${formatTxid(current)}` : ''),
    );
  }
  return plan;
}

/** The TXID the plan restores to. */
export function planTxid(plan: readonly LtxFileInfo[]): Txid {
  return plan.at(-1)?.maxTxid ?? 0;
}

function flatten(listing: ReplicaListing): LtxFileInfo[] {
  if (Array.isArray(listing)) return [...(listing as readonly LtxFileInfo[])];
  const out: LtxFileInfo[] = [];
  for (const files of (listing as ReadonlyMap<number, readonly LtxFileInfo[]>).values()) out.push(...files);
  return out;
}

function heldRange(files: readonly LtxFileInfo[]): string {
  let min = Number.POSITIVE_INFINITY;
  let max = 0;
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const f of files) {
    min = Math.min(min, f.minTxid);
    max = Math.max(max, f.maxTxid);
    first = Math.min(first, f.createdAt.getTime());
    last = Math.max(last, f.createdAt.getTime());
  }
  return `replica holds TXIDs ${formatTxid(min)}..${formatTxid(max)} created ${new Date(first).toISOString()}..${new Date(last).toISOString()}`;
}

function describeTarget(target: RestoreTarget): string {
  if (target.txid !== undefined) return `TXID ${formatTxid(target.txid)}`;
  if (target.timestamp !== undefined) return `a state at or before ${target.timestamp.toISOString()}`;
  return 'a complete database (a chain starting at TXID 1)';
}

function fileName(f: LtxFileInfo): string {
  return formatLtxFileName(f.minTxid, f.maxTxid);
}

// Kept so older imports keep working; the listing lives in storage/ (writer and replica share it).
export { listAllLevels } from '../storage/listing.js';
