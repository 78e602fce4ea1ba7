import { isContiguous, SNAPSHOT_LEVEL } from '../ltx/names.js';
import type { LtxFileInfo } from '../storage/types.js';
import type { Txid } from '../util/txid.js';

export type Listing = Map<number, LtxFileInfo[]>;

/** Which files may be used at all (e.g. `maxTxid <= target`). */
export type FileFilter = (file: LtxFileInfo) => boolean;

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
  return greedyChain(candidates, fromTxid);
}

/**
 * The greedy rule over `candidates` (any order; sorted here by minTxid), in O(n log n): each step
 * admits the files that now touch the end (min <= cur+1) and takes the best of those that move it
 * forward. Files admitted in an earlier step never qualify again: the file chosen then reached at
 * least as far as every file admitted with it, so their max is <= the new end.
 */
export function greedyChain(candidates: readonly LtxFileInfo[], fromTxid: Txid): LtxFileInfo[] {
  const sorted = [...candidates].sort((a, b) => a.minTxid - b.minTxid);
  const chain: LtxFileInfo[] = [];
  let cur = fromTxid;
  let next = 0;
  for (;;) {
    let best: LtxFileInfo | undefined;
    for (; next < sorted.length; next++) {
      const f = sorted[next];
      if (f === undefined || !isContiguous(cur, f.minTxid)) break;
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
