import { decodeHeader, HEADER_SIZE } from '../ltx/index.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError } from '../util/errors.js';
import type { Txid } from '../util/txid.js';
import { planRestore, type ReplicaListing } from './plan.js';

/**
 * The restore plan of the newest state whose commit time (the LTX header timestamp) is at or
 * before `at`. A listing only carries the upload time (S3 LastModified, which trails the header
 * after an outage; the file backend's mtime is the header time), and the upload never precedes
 * the header. So every file uploaded by `at` qualifies for free, and only the file boundaries
 * beyond those need their true time: a binary search over them, one 100-byte header read per
 * probe (header times grow with the TXID), instead of a HEAD or GET per file.
 */
export async function planAtTime(
  client: ReplicaClient,
  listing: ReplicaListing,
  at: Date,
  url: string,
): Promise<LtxFileInfo[]> {
  const t = at.getTime();
  const ends = new Map<Txid, LtxFileInfo>();
  let surely = 0;
  for (const f of flat(listing)) {
    const known = ends.get(f.maxTxid);
    if (known === undefined || f.level < known.level) ends.set(f.maxTxid, f);
    if (f.createdAt.getTime() <= t) surely = Math.max(surely, f.maxTxid);
  }
  const later = [...ends.keys()].filter((txid) => txid > surely).sort((a, b) => a - b);
  let lo = 0;
  let hi = later.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const txid = later[mid];
    const file = txid === undefined ? undefined : ends.get(txid);
    if (file === undefined) break;
    const header = decodeHeader(await client.readRange(file, 0, HEADER_SIZE));
    if (header.timestamp <= t) lo = mid + 1;
    else hi = mid;
  }
  const best = lo > 0 ? (later[lo - 1] ?? surely) : surely;
  if (best === 0) return planRestore(listing, { timestamp: at }, { url }); // the usual error
  try {
    return planRestore(listing, { txid: best }, { url });
  } catch (err) {
    // That boundary cannot be restored exactly (its chain is gone): Litestream's rule by upload time.
    if (!isLtxvfsError(err, 'TXID_NOT_AVAILABLE')) throw err;
    return planRestore(listing, { timestamp: at }, { url });
  }
}

function flat(listing: ReplicaListing): readonly LtxFileInfo[] {
  if (Array.isArray(listing)) return listing as readonly LtxFileInfo[];
  const out: LtxFileInfo[] = [];
  for (const files of (listing as ReadonlyMap<number, readonly LtxFileInfo[]>).values()) out.push(...files);
  return out;
}
