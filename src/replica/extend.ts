import type { LtxFileInfo } from '../storage/types.js';
import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';

export type Listing = Map<number, LtxFileInfo[]>;

/** Which files may be used at all (e.g. `maxTxid <= target`). */
export type FileFilter = (file: LtxFileInfo) => boolean;

const SNAPSHOT_LEVEL = 9;

/**
 * Greedy extension of a chain that ends at `fromTxid` using files of levels 8..0: among files that
 * touch or overlap the current end (min <= cur+1) and move it forward (max > cur), take the one
 * reaching furthest; ties go to the smaller min, then the higher level, then the older file.
 * Overlapping ("straddling") files are fine: an LTX file holds the newest version of every page
 * it changed, so applying it over a state inside its range yields the state at its max.
 */
export function extendChain(listing: Listing, fromTxid: Txid, fits: FileFilter = () => true): LtxFileInfo[] {
  const candidates: LtxFileInfo[] = [];
  for (const [level, files] of listing) {
    if (level === SNAPSHOT_LEVEL) continue;
    for (const f of files) if (f.maxTxid > fromTxid && fits(f)) candidates.push(f);
  }
  candidates.sort((a, b) => a.minTxid - b.minTxid);
  const chain: LtxFileInfo[] = [];
  let cur = fromTxid;
  for (;;) {
    let best: LtxFileInfo | undefined;
    for (const f of candidates) {
      if (f.minTxid > cur + 1) break;
      if (f.maxTxid <= cur) continue;
      if (best === undefined || isBetter(f, best)) best = f;
    }
    if (best === undefined) return chain;
    chain.push(best);
    cur = best.maxTxid;
  }
}

function isBetter(a: LtxFileInfo, b: LtxFileInfo): boolean {
  if (a.maxTxid !== b.maxTxid) return a.maxTxid > b.maxTxid;
  if (a.minTxid !== b.minTxid) return a.minTxid < b.minTxid;
  if (a.level !== b.level) return a.level > b.level;
  return a.createdAt.getTime() < b.createdAt.getTime();
}

/** The lowest and highest TXID a listing can restore to, for error messages. */
export function heldRange(listing: Listing): { low: Txid; high: Txid } | undefined {
  let low = Number.POSITIVE_INFINITY;
  let high = 0;
  for (const files of listing.values()) {
    for (const f of files) {
      if (f.maxTxid > high) high = f.maxTxid;
      if (f.maxTxid < low) low = f.maxTxid;
    }
  }
  return high === 0 ? undefined : { low, high };
}

/**
 * Litestream's restore plan (newest usable snapshot, then the greedy extension), used until the
 * shared planner in plan.ts exists. The result must start at TXID 1 to be a complete image.
 */
export function planChain(
  listing: Listing,
  target: { txid?: Txid; timestamp?: Date },
  url: string,
): LtxFileInfo[] {
  const fits: FileFilter = (f) =>
    (target.txid === undefined || f.maxTxid <= target.txid) &&
    (target.timestamp === undefined || f.createdAt.getTime() <= target.timestamp.getTime());
  let snapshot: LtxFileInfo | undefined;
  for (const f of listing.get(SNAPSHOT_LEVEL) ?? []) {
    if (f.minTxid === 1 && fits(f) && (snapshot === undefined || f.maxTxid >= snapshot.maxTxid)) snapshot = f;
  }
  const base = snapshot ? [snapshot] : [];
  const chain = [...base, ...extendChain(listing, snapshot?.maxTxid ?? 0, fits)];
  if (chain.length === 0 || chain[0].minTxid !== 1) {
    const range = heldRange(listing);
    if (range === undefined) throw new LtxvfsError('REPLICA_EMPTY', `replica ${url} holds no LTX files`);
    throw new LtxvfsError(
      'TXID_NOT_AVAILABLE',
      `${describeTarget(target)} is not available in ${url}: ${describeRange(range)}`,
    );
  }
  return chain;
}

export function describeTarget(target: { txid?: Txid; timestamp?: Date }): string {
  if (target.txid !== undefined) return `TXID ${formatTxid(target.txid)} (${target.txid})`;
  if (target.timestamp !== undefined) return `time ${target.timestamp.toISOString()}`;
  return 'the latest state';
}

export function describeRange(range: { low: Txid; high: Txid } | undefined): string {
  if (range === undefined) return 'the replica holds no LTX files';
  return `the replica holds TXIDs up to ${formatTxid(range.high)} (${range.high}), files ending between ${range.low} and ${range.high}`;
}
