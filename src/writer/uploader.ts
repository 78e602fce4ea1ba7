import { decodeHeader, HEADER_SIZE } from '../ltx/index.js';
import type { ReplicaClient } from '../storage/types.js';
import { crashPoint } from '../util/crash-point.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';

export interface UploaderOptions {
  client: ReplicaClient;
  /** Bytes of a staged L0 file. */
  readStaged: (txid: Txid) => Uint8Array;
  /** Called after a file is durable in the replica (the staged copy may go). */
  onUploaded: (info: { txid: Txid; bytes: number; ms: number }) => void;
  onRetry: (info: { txid: Txid; attempt: number; delayMs: number; error: unknown }) => void;
  /** Fatal: history would fork (someone else wrote this TXID) or the lease is gone. */
  onFatal: (err: LtxvfsError) => void;
  /** Throws LEASE_LOST when this writer may no longer write. */
  checkLease: () => void;
  minDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * Uploads staged L0 files strictly in TXID order with create-only writes, one at a time (memory:
 * one file). A store that fails is retried with exponential backoff, forever: files wait on disk,
 * and the primary never waits for the network. A create-only write that finds the name taken is
 * fine only if the stored bytes are ours (a retry of a write that did land); otherwise another
 * writer produced this TXID and continuing would fork the history.
 */
export class Uploader {
  private uploaded: Txid;
  private staged: Txid;
  private wake: (() => void) | undefined;
  private stopped = false;
  private loop: Promise<void> | undefined;
  private waiters: Array<{ txid: Txid; resolve: () => void; reject: (err: unknown) => void }> = [];
  private failure: LtxvfsError | undefined;
  private readonly minDelay: number;
  private readonly maxDelay: number;
  private sleeping: { timer: NodeJS.Timeout; resolve: () => void } | undefined;

  constructor(
    private readonly options: UploaderOptions,
    uploadedTxid: Txid,
    stagedTxid: Txid,
  ) {
    this.uploaded = uploadedTxid;
    this.staged = stagedTxid;
    this.minDelay = options.minDelayMs ?? 100;
    this.maxDelay = options.maxDelayMs ?? 5000;
  }

  get uploadedTxid(): Txid {
    return this.uploaded;
  }

  get stagedTxid(): Txid {
    return this.staged;
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** A new file was staged. */
  notify(stagedTxid: Txid): void {
    this.staged = Math.max(this.staged, stagedTxid);
    this.wake?.();
  }

  /** Resolves when `txid` is durable in the replica. */
  waitFor(txid: Txid): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (txid <= this.uploaded) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ txid, resolve, reject }));
  }

  /** Stops after the upload in flight (if any). */
  async stop(reason?: LtxvfsError): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (this.sleeping) {
      clearTimeout(this.sleeping.timer);
      this.sleeping.resolve();
    }
    await this.loop;
    this.rejectAll(reason ?? new LtxvfsError('WRITER_DB', 'replicator stopped before the upload completed'));
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      const txid = this.uploaded + 1;
      if (txid > this.staged) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const started = Date.now();
      try {
        this.options.checkLease();
        await this.uploadOne(txid);
        attempt = 0;
        this.uploaded = txid;
        this.options.onUploaded({ txid, bytes: this.lastBytes, ms: Date.now() - started });
        this.resolveUpTo(txid);
      } catch (err) {
        if (isFatal(err)) {
          this.failure = err as LtxvfsError;
          this.stopped = true;
          this.rejectAll(err);
          this.options.onFatal(err as LtxvfsError);
          return;
        }
        attempt++;
        const delayMs = Math.min(this.maxDelay, this.minDelay * 2 ** Math.min(attempt - 1, 16));
        this.options.onRetry({ txid, attempt, delayMs, error: err });
        await this.sleep(delayMs);
      }
    }
  }

  private lastBytes = 0;

  private async uploadOne(txid: Txid): Promise<void> {
    const data = this.options.readStaged(txid);
    this.lastBytes = data.length;
    const header = decodeHeader(data.subarray(0, HEADER_SIZE));
    const ref = { level: 0, minTxid: txid, maxTxid: txid };
    try {
      crashPoint('before-upload');
      await this.options.client.writeFile(ref, data, { timestamp: new Date(header.timestamp) });
      crashPoint('after-upload');
    } catch (err) {
      if (!isLtxvfsError(err, 'STORAGE_EXISTS')) throw err;
      const stored = await this.options.client.readFile(ref);
      if (!sameBytes(stored, data)) {
        throw new LtxvfsError(
          'WRITER_FORK',
          `${this.options.client.url}: L0 TXID ${formatTxid(txid)} already exists with other content: another writer is replicating this database; stopping instead of forking the history`,
          { cause: err },
        );
      }
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.sleeping = undefined;
        resolve();
      }, ms);
      this.sleeping = { timer, resolve };
    });
  }

  private resolveUpTo(txid: Txid): void {
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (w.txid <= txid) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  private rejectAll(err: unknown): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w.reject(err);
  }
}

function isFatal(err: unknown): boolean {
  return isLtxvfsError(err, 'WRITER_FORK') || isLtxvfsError(err, 'LEASE_LOST');
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
