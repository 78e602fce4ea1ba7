import type { Txid } from '../src/util/txid.js';

/*
 * What the VFS needs from a replica: the read-side seam of src/replica/replica.ts (ReplicaView,
 * HydrationStatus, and the part of Replica the VFS calls). Declared structurally here so the VFS
 * can also run over any other source of consistent page views (tests use an in-memory one).
 */

export interface HydrationStatus {
  state: 'off' | 'running' | 'done' | 'error';
  txid: Txid;
  pagesDone: number;
  pagesTotal: number;
  bytesDownloaded: number;
  error?: string;
}

/** One consistent TXID of the database; immutable while held. */
export interface ReplicaView {
  readonly txid: Txid;
  readonly pageSize: number;
  readonly pageCount: number;
  readonly timestamp: Date;
  /** Page bytes (pgno 1-based), true bytes as stored (the VFS patches page 1 itself). */
  readPage(pgno: number): Promise<Uint8Array>;
  /** The same, only when it can be answered without I/O. */
  readPageSync(pgno: number): Uint8Array | undefined;
  release(): void;
}

export interface ReplicaSource {
  acquireLatest(): ReplicaView;
  acquireAt(target: { txid?: Txid; timestamp?: Date }): Promise<ReplicaView>;
  lagSeconds(): number;
  hydration(): HydrationStatus;
}

/** Resolves the path of a `file:<name>?vfs=ltx` URI to a registered replica. */
export interface ReplicaRegistry {
  resolve(name: string): { name: string; replica: ReplicaSource } | undefined;
  names(): string[];
}
