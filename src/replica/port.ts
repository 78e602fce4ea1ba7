import type { ErrorCode } from '../util/errors.js';
import type { Txid } from '../util/txid.js';

/*
 * The read-side seam between a replica and its consumers (the VFS, the CLI, tests): plain
 * interfaces, so a consumer depends on what it calls, not on the Replica class, and any other
 * source of consistent page views (tests use an in-memory one) can stand in.
 */

export interface HydrationStatus {
  state: 'off' | 'running' | 'done' | 'error';
  txid: Txid;
  pagesDone: number;
  pagesTotal: number;
  bytesDownloaded: number;
  /** What failed, naming the file or object (state 'error'). */
  error?: string;
  /** HYDRATION_FAILED for local I/O (e.g. ENOSPC writing the file), else the store's error code. */
  errorCode?: ErrorCode;
}

/** One consistent TXID; immutable while held. */
export interface ReplicaView {
  readonly txid: Txid;
  readonly pageSize: number;
  /** Commit of the last file in the plan. */
  readonly pageCount: number;
  /** Header timestamp of the last file. */
  readonly timestamp: Date;
  /**
   * Page bytes (pgno 1-based); zeros for the lock page; a named error for missing/corrupt
   * objects. The array may be shared with the cache: copy it before modifying it.
   */
  readPage(pgno: number): Promise<Uint8Array>;
  /** The same, only if it can be answered without I/O (cache or hydrated file). */
  readPageSync(pgno: number): Uint8Array | undefined;
  /**
   * Copies bytes [within, within + length) of page `pgno` into `dst` at `at`, only if that needs
   * no I/O to the store: one copy from the cache, or one read of the hydrated file straight into
   * `dst` (which may be wasm memory). False (nothing written) when the store must answer.
   */
  readPageIntoSync?(pgno: number, within: number, length: number, dst: Uint8Array, at: number): boolean;
  /** End of the read transaction. Reading a released view is an error. */
  release(): void;
}

/** A state to open: a TXID, the newest state at or before a time, or (neither) the latest. */
export interface AcquireTarget {
  txid?: Txid;
  timestamp?: Date;
}

/** The page source a VFS reads from: views of consistent states, plus freshness and hydration. */
export interface ReplicaSource {
  /** Latest known state, synchronous; pinned until the view is released. */
  acquireLatest(): ReplicaView;
  /** A historical (or the latest) state. */
  acquireAt(target: AcquireTarget): Promise<ReplicaView>;
  /**
   * A view of `txid` if its page map is at hand (the latest, or a state acquired or left behind
   * recently), without I/O; undefined otherwise (then acquireAt).
   */
  acquireKnown?(txid: Txid): ReplicaView | undefined;
  /** Seconds the latest view may be behind the primary. */
  lagSeconds(): number;
  hydration(): HydrationStatus;
}
