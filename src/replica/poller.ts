import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import type { Txid } from '../util/txid.js';
import { extendChain, type Listing } from './extend.js';

/** What a look at the listing found beyond the current position. */
export type PollFinding =
  | { kind: 'none' }
  /** Files that continue the current chain, in order. */
  | { kind: 'extend'; files: [LtxFileInfo, ...LtxFileInfo[]] }
  /** The current position can no longer be continued (files gone, lineage reset): plan afresh. */
  | { kind: 'replan'; listing: Listing };

/**
 * Finds what is new after `position`. The common case costs one LIST of L0 from position+1.
 * When L0 does not continue the chain (its files were compacted into L1+ and deleted, or L0 is
 * missing altogether), it lists every level and extends across them, accepting files that
 * straddle the position; if even that cannot reach further, the caller re-plans.
 */
export async function findNewFiles(client: ReplicaClient, position: Txid): Promise<PollFinding> {
  const l0 = await client.listFiles(0, { fromTxid: position + 1 });
  if (l0.length === 0) return { kind: 'none' };
  if (l0[0]?.minTxid === position + 1) {
    const files = extendChain(new Map([[0, l0]]), position);
    return nonEmpty(files) ? { kind: 'extend', files } : { kind: 'none' };
  }
  const listing = await listAllLevels(client);
  const files = extendChain(listing, position);
  const reached = files[files.length - 1]?.maxTxid ?? position;
  let newest = 0;
  for (const list of listing.values()) for (const f of list) newest = Math.max(newest, f.maxTxid);
  // The listing may have changed between the two LISTs (compaction + retention): nothing beyond
  // the position any more is nothing new, not an empty extension.
  if (reached >= newest) return nonEmpty(files) ? { kind: 'extend', files } : { kind: 'none' };
  return { kind: 'replan', listing };
}

function nonEmpty<T>(list: T[]): list is [T, ...T[]] {
  return list.length > 0;
}

/** Runs `tick` every `intervalMs` without overlapping, on an unref'd timer. */
export class PollTimer {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly tick: () => Promise<unknown>,
  ) {}

  start(): void {
    if (this.intervalMs <= 0 || this.stopped) return;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick()
        .catch(() => {})
        .finally(() => {
          if (!this.stopped) this.schedule();
        });
    }, this.intervalMs);
    this.timer.unref();
  }
}
