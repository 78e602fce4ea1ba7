import { EventEmitter } from 'node:events';
import type { ReplicaClient } from '../storage/types.js';
import { LtxvfsError } from '../util/errors.js';
import type { Txid } from '../util/txid.js';

export interface ReplicaOptions {
  /** Default 1000; 0 = no background polling (call poll() yourself). */
  pollIntervalMs?: number;
  /** Page cache shared by all views of this replica, bounded by bytes. Default 64 MiB. */
  cacheBytes?: number;
  /** Download the whole database in the background into this file (plus a sidecar). */
  hydratePath?: string;
  /** Cap of the growing sequential read-ahead. Default 4 MiB. */
  maxReadAheadBytes?: number;
  /** Merge adjacent frames wanted at the same time into one range GET. Default true. */
  coalesce?: boolean;
  /** Grow read-ahead on sequential access. Default true. */
  readAhead?: boolean;
  logger?: (line: string) => void;
}

export interface HydrationStatus {
  state: 'off' | 'running' | 'done' | 'error';
  txid: Txid;
  pagesDone: number;
  pagesTotal: number;
  bytesDownloaded: number;
  error?: string;
}

/** One consistent TXID; immutable while held. */
export interface ReplicaView {
  readonly txid: Txid;
  readonly pageSize: number;
  /** Commit of the last file in the plan. */
  readonly pageCount: number;
  /** Header timestamp of the last file. */
  readonly timestamp: Date;
  /** Page bytes (pgno 1-based); zeros for the lock page; a named error for missing/corrupt objects. */
  readPage(pgno: number): Promise<Uint8Array>;
  /** The same, only if it can be answered without I/O (cache or hydrated file). */
  readPageSync(pgno: number): Uint8Array | undefined;
  /** End of the read transaction. */
  release(): void;
}

export class Replica extends EventEmitter {
  readonly client: ReplicaClient;

  protected constructor(client: ReplicaClient) {
    super();
    this.client = client;
  }

  /** Lists levels, plans the latest state and fetches the page-index tails in parallel. */
  static async open(_client: ReplicaClient, _options: ReplicaOptions = {}): Promise<Replica> {
    throw new LtxvfsError('BAD_ARGUMENT', 'Replica.open: not implemented yet');
  }

  /** Latest known state, synchronous (the poller keeps it fresh); pinned until release(). */
  acquireLatest(): ReplicaView {
    throw new LtxvfsError('BAD_ARGUMENT', 'not implemented yet');
  }

  /** A historical (or the latest) state; TXID_NOT_AVAILABLE if the replica does not hold it. */
  async acquireAt(_target: { txid?: Txid; timestamp?: Date }): Promise<ReplicaView> {
    throw new LtxvfsError('BAD_ARGUMENT', 'not implemented yet');
  }

  /** Polls now; resolves with the latest TXID. */
  async poll(): Promise<Txid> {
    throw new LtxvfsError('BAD_ARGUMENT', 'not implemented yet');
  }

  /** Seconds the latest view may be behind the primary. */
  lagSeconds(): number {
    return -1;
  }

  hydration(): HydrationStatus {
    return { state: 'off', txid: 0, pagesDone: 0, pagesTotal: 0, bytesDownloaded: 0 };
  }

  async close(): Promise<void> {}
}
