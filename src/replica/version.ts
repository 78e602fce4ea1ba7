import type { Txid } from '../util/txid.js';
import type { PageMap } from './page-map.js';

/**
 * The replica's state at one TXID. Views pin a Version; the poller makes new ones. Its contents
 * never change, except that `map` may be swapped for an equivalent plan at the same
 * TXID when compaction or retention deleted objects the old plan read from.
 */
export interface Version {
  readonly txid: Txid;
  readonly pageSize: number;
  readonly commit: number;
  readonly timestamp: Date;
  /** The object whose header gave `commit` and `timestamp` (the last file of the plan), for errors. */
  readonly commitFrom: string;
  map: PageMap;
  /** A re-plan in progress for this TXID, shared by every reader that hit a vanished object. */
  replanning?: Promise<void>;
}
