import type { Txid } from '../util/txid.js';

/** One LTX object in a replica, as the listing describes it. */
export interface LtxFileInfo {
  level: number;
  minTxid: Txid;
  maxTxid: Txid;
  /** Size in bytes, from the listing. */
  size: number;
  /** `litestream-timestamp` metadata when known, else LastModified (S3) or mtime (file). */
  createdAt: Date;
}

/** Identifies one LTX object. */
export interface LtxFileRef {
  level: number;
  minTxid: Txid;
  maxTxid: Txid;
}

export interface ListOptions {
  /** Only files whose minTxid >= fromTxid. */
  fromTxid?: Txid;
  /**
   * S3: set createdAt from each object's `litestream-timestamp` metadata (one HEAD per file, as
   * Litestream does for timestamp restores) instead of LastModified. File: no effect (the mtime
   * already is the header timestamp).
   */
  metadata?: boolean;
}

export interface WriteOptions {
  /** The LTX header timestamp; stored as `litestream-timestamp` (S3) or the mtime (file). */
  timestamp: Date;
}

/** A finished file on the local disk whose bytes become an object (see writeFileFrom). */
export interface LocalFileSource {
  /** Path of the file; it must not change while the write runs. */
  path: string;
  /** Its size in bytes; checked against the file before anything is sent. */
  size: number;
}

export interface SmallObject {
  data: Uint8Array;
  /** Opaque version token for conditional replace (S3 ETag without quotes; file: content hash). */
  etag: string;
}

export type ObjectCondition = { ifNoneMatch: '*' } | { ifMatch: string };

/** Requests and bytes, by kind; deterministic, so tests assert on them. */
export interface RequestStats {
  list: number;
  get: number;
  put: number;
  delete: number;
  head: number;
  bytesRead: number;
  bytesWritten: number;
}

/**
 * The one interface every backend implements. Names and layout of keys are the backend's
 * business; callers speak in levels and TXIDs.
 *
 * Errors are LtxvfsError with codes STORAGE_* and messages naming the bucket/key or path and
 * the operation.
 */
export interface ReplicaClient {
  /** e.g. `s3://bucket/path` or `file:///abs/dir`; used in messages. */
  readonly url: string;
  /** Levels present (0..9) in ascending order. */
  levels(): Promise<number[]>;
  /**
   * Files of every level in one listing (S3: one LIST of the whole prefix, no delimiter, so one
   * round trip for any replica under 1,000 objects), by level in ascending TXID order.
   */
  listAll(): Promise<LtxFileInfo[]>;
  /** Files of one level in ascending TXID order; names that are not LTX names are ignored. */
  listFiles(level: number, options?: ListOptions): Promise<LtxFileInfo[]>;
  /** Bytes [offset, offset+length) of a file; shorter when the range passes the end. */
  readRange(file: LtxFileRef, offset: number, length: number): Promise<Uint8Array>;
  /** The whole file. */
  readFile(file: LtxFileRef): Promise<Uint8Array>;
  /**
   * Create-only write. Throws STORAGE_EXISTS if the object already exists: two writers can never
   * both write the same name.
   */
  writeFile(file: LtxFileRef, data: Uint8Array, options: WriteOptions): Promise<LtxFileInfo>;
  /**
   * writeFile with the bytes of a local file, streamed: memory stays a few MiB whatever the size
   * (compaction outputs, snapshots). Same create-only contract and STORAGE_EXISTS. S3: one
   * PutObject, so at most 5 GiB (a larger file is STORAGE_TOO_LARGE; multipart uploads are not
   * create-only on every S3 server). The caller keeps and removes the local file.
   */
  writeFileFrom(file: LtxFileRef, source: LocalFileSource, options: WriteOptions): Promise<LtxFileInfo>;
  /** Deletes in batches; files already gone are not an error. */
  deleteFiles(files: LtxFileRef[]): Promise<void>;
  /** Small object under the replica path (e.g. `lock.json`); null when it does not exist. */
  readObject(name: string): Promise<SmallObject | null>;
  /**
   * Conditional GET (S3 If-None-Match): 'unchanged' when the object still has `etag` (a 304, no
   * body), else as readObject. Counts as one GET either way.
   */
  readObjectIfChanged(name: string, etag: string | undefined): Promise<SmallObject | null | 'unchanged'>;
  /** Conditional write; throws STORAGE_CONDITION_FAILED on 412/404/409 or a lost race. */
  writeObject(name: string, data: Uint8Array, condition: ObjectCondition): Promise<{ etag: string }>;
  /** Conditional delete; a missing object is not an error. */
  deleteObject(name: string, condition?: { ifMatch: string }): Promise<void>;
  /**
   * Opens up to `sockets` connections to the store in the background, without waiting, so the
   * requests of the next round do not pay for new connections (TCP, TLS). Optional: backends
   * without connections leave it out. Costs no requests.
   */
  preconnect?(sockets: number): void;
  /** Counters since creation (or the last reset). */
  stats(): RequestStats;
  resetStats(): void;
  close(): Promise<void>;
}
