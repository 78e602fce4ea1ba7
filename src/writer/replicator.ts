import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import type { PageEncoding } from '../ltx/index.js';
import { emptyStats, openReplicaClient } from '../storage/index.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient, RequestStats } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { Checkpointer } from './checkpointer.js';
import { CompactionScheduler, type CompactionStats } from './compaction/compaction.js';
import type { CompactionConfig } from './compaction/compaction-config.js';
import { L0Builder, type SyncedEvent } from './l0-builder.js';
import { Lease } from './lease.js';
import { LocalLock } from './local-lock.js';
import { LocalState } from './local-state.js';
import { ManifestPublisher, type ManifestPublisherOptions } from './manifest-publisher.js';
import { withPageDigests } from './page-digests-client.js';
import type { CheckpointMode } from './primary-db.js';
import { Uploader } from './uploader.js';

export type { SyncedEvent } from './l0-builder.js';

export interface ReplicatorLogger {
  info(line: string): void;
  warn(line: string): void;
  error(line: string): void;
  debug?(line: string): void;
}

export interface ReplicatorOptions {
  /** The primary database (WAL mode; switched to it if needed). */
  dbPath: string;
  /** A ReplicaClient, or a replica URL to open (and close on stop). */
  replica: ReplicaClient | string;
  /** How often committed frames become an L0 file (default 1000 ms; tens of ms work). */
  syncIntervalMs?: number;
  /** Page encoding of L0 files (default lz4-block, Litestream >= 0.5.16). */
  encoding?: PageEncoding;
  logger?: ReplicatorLogger;
  /** PASSIVE checkpoint when the WAL has this many frames (Litestream: 1000). */
  minCheckpointPages?: number;
  /** TRUNCATE checkpoint when the WAL has this many frames (Litestream: 121359, ~500 MB). */
  truncateCheckpointPages?: number;
  /** PASSIVE checkpoint at least this often when something was synced (default 60 s). */
  checkpointIntervalMs?: number;
  /**
   * How often, after its own checkpoint, the replicator looks for the WAL restart that follows
   * (one 32-byte read; default 10 ms), to move its read transaction off SQLite's "database file
   * only" read slot as soon as the new WAL has `refreshFrames` frames. A read transaction left in
   * that slot makes every autocheckpoint of the application re-sort the whole WAL index and give
   * up (measured: 10000 -> 1500 tx/s); one at a normal read mark costs the application nothing.
   */
  checkpointCheckMs?: number;
  /** Frames of the restarted WAL before the read transaction moves onto it (default 16). */
  refreshFrames?: number;
  /** One L0 file covers at most about this many WAL bytes (split at commits; default 64 MiB). */
  maxSyncBytes?: number;
  /** The writer lease (lock.json); default on. `false` only for tests and single-writer setups. */
  lease?: false | { ttlMs?: number; renewIntervalMs?: number; owner?: string };
  busyTimeoutMs?: number;
  /**
   * Local staging bound (bytes of L0 files staged but not yet in the replica; default 1 GiB).
   * Beyond it, while the store does not take them, no further L0 is staged: the read transaction
   * still moves on so the application's checkpoints proceed, and once the staged files have gone
   * down to half the bound, one snapshot-style L0 (the database file holds the state) continues
   * the history. Reported by a log line, the 'staging' event and stats().staging.
   */
  maxStagedBytes?: number;
  /** Upload retry backoff bounds. */
  retryMinDelayMs?: number;
  retryMaxDelayMs?: number;
  /** Keep the Node process alive while running (CLI); default false (timers are unref'd). */
  keepAlive?: boolean;
  /**
   * Compaction, L9 snapshots and retention on this replica (CompactionScheduler). Off unless
   * given; the CLI turns it on with Litestream's defaults.
   */
  compaction?: CompactionConfig;
  /**
   * How often the compaction scheduler looks at its schedule (default 1000 ms); 0: never by
   * itself, only when compactNow() is called (`replicate --once`).
   */
  compactionPollMs?: number;
  /**
   * The reader manifest `ltxvfs/manifest.json` and hot pages `ltxvfs/hot.ltx` (README, "Opening
   * and following"); default on. `false` leaves the replica exactly as Litestream would.
   */
  manifest?: false | ManifestPublisherOptions;
}

export interface SyncOptions {
  /**
   * Reject (instead of waiting for as long as it takes) once an upload has failed this many
   * times in a row with an error retrying does not cure: STORAGE_FULL, STORAGE_READ_ONLY,
   * STORAGE_ACCESS_DENIED. `replicate --once` uses it; the staged files stay for the next run.
   */
  giveUpAfterAttempts?: number;
}

export interface ReplicatorStats {
  /** Newest TXID staged locally, and newest durable in the replica. */
  txid: Txid;
  uploadedTxid: Txid;
  pendingUploads: number;
  /** Age of the oldest staged file not yet in the replica (0 when caught up), ms. */
  lagMs: number;
  syncs: number;
  snapshots: number;
  checkpoints: number;
  uploads: number;
  uploadRetries: number;
  compaction?: CompactionStats;
  requests: RequestStats;
  /**
   * The writer lease: `held`, `expired` (the store did not confirm a renewal in time: nothing is
   * uploaded until it does, staging goes on), `lost` (another writer took it), or `off`.
   */
  lease: 'held' | 'expired' | 'lost' | 'off';
  /** Renewals that succeeded after the lease had expired unrenewed (outages ridden out). */
  leaseRecoveries: number;
  staging: StagingStats;
}

export interface StagingStats {
  /** Bytes and files of L0 staged locally, not yet in the replica. */
  bytes: number;
  files: number;
  limitBytes: number;
  /** True while staging is paused because `bytes` went over the limit. */
  full: boolean;
  /** Syncs that staged nothing because staging was full. */
  skippedSyncs: number;
}

/**
 * The primary side: turns committed WAL frames into L0 LTX files (one per sync), stages them in
 * `.<db>-ltxvfs/`, and uploads them in TXID order. See README "Replicate" for the guarantees.
 *
 * Continuity: an incremental L0 is written only when the replicator can prove the new frames
 * follow the last copied one (same WAL salts and the frame before the cursor unchanged, or a
 * single WAL restart while its own read transaction, which blocks any further backfill, was held
 * since everything was copied). Anything else gets a snapshot-style L0 with every page.
 *
 * An unreachable store stops nothing on the primary's side: L0 files keep being staged (up to
 * `maxStagedBytes`), the read transaction keeps moving so checkpoints proceed, and an expired
 * lease is renewed when the store answers again (LEASE_LOST only if another writer took it).
 *
 * Events: 'synced' (SyncedEvent), 'uploaded' ({txid, bytes, ms}), 'checkpoint' ({mode, ...}),
 * 'retry' ({txid, attempt, delayMs, error}), 'lease-recovered' ({generation}), 'staging'
 * (StagingStats, when staging becomes full or resumes), 'fatal' (LtxvfsError), 'error'.
 */
export class Replicator extends EventEmitter {
  readonly dbPath: string;
  private readonly opts: Required<
    Omit<
      ReplicatorOptions,
      | 'logger'
      | 'replica'
      | 'lease'
      | 'dbPath'
      | 'encoding'
      | 'keepAlive'
      | 'compaction'
      | 'compactionPollMs'
      | 'manifest'
    >
  > & { encoding: PageEncoding; keepAlive: boolean };
  private readonly staging = { bytes: 0, files: 0, full: false, skippedSyncs: 0 };
  private readonly stagedSize = new Map<Txid, number>();
  private readonly logger: ReplicatorLogger;
  private readonly local: LocalState;
  /** Created by start(); kept after stop() so stats() and client still answer. */
  private run: Running | undefined;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private running = false;
  private fatalError: LtxvfsError | undefined;
  private stagedAt = new Map<Txid, number>();
  /** The newest L0 that changed the page size, until an L9 snapshot at or after it is written. */
  private pageSizeChangedAt: Txid | undefined;
  private pageSizeSnapshot: Promise<void> | undefined;
  /** The upload failures since the last successful upload, if any. */
  private uploadFailure: { code: string; since: number; attempts: number } | undefined;
  private counters = {
    syncs: 0,
    snapshots: 0,
    checkpoints: 0,
    uploads: 0,
    uploadRetries: 0,
    leaseRecoveries: 0,
  };

  constructor(private readonly options: ReplicatorOptions) {
    super();
    this.dbPath = options.dbPath;
    this.opts = {
      syncIntervalMs: options.syncIntervalMs ?? 1000,
      encoding: options.encoding ?? 'lz4-block',
      minCheckpointPages: options.minCheckpointPages ?? 1000,
      truncateCheckpointPages: options.truncateCheckpointPages ?? 121_359,
      checkpointIntervalMs: options.checkpointIntervalMs ?? 60_000,
      checkpointCheckMs: options.checkpointCheckMs ?? 10,
      refreshFrames: options.refreshFrames ?? 16,
      maxSyncBytes: options.maxSyncBytes ?? 64 * 1024 * 1024,
      busyTimeoutMs: options.busyTimeoutMs ?? 1000,
      retryMinDelayMs: options.retryMinDelayMs ?? 100,
      retryMaxDelayMs: options.retryMaxDelayMs ?? 5000,
      maxStagedBytes: options.maxStagedBytes ?? 1024 * 1024 * 1024,
      keepAlive: options.keepAlive ?? false,
    };
    this.logger = options.logger ?? { info() {}, warn() {}, error() {} };
    this.local = new LocalState(options.dbPath);
    // Unhandled 'error' events would crash the process; errors are also logged.
    this.on('error', () => {});
  }

  /** The replica client (for compaction and snapshots). */
  get client(): ReplicaClient {
    if (!this.run) throw new LtxvfsError('WRITER_DB', 'replicator not started');
    return this.run.client;
  }

  get encoding(): PageEncoding {
    return this.opts.encoding;
  }

  /** Acquires the lease, opens the database, reconciles local state with the replica, starts syncing. */
  async start(): Promise<void> {
    if (this.running) return;
    // Before anything is created (the replica directory, lock.json, .<db>-ltxvfs/).
    if (!existsSync(this.dbPath)) {
      throw new LtxvfsError('WRITER_DB', `database ${this.dbPath} does not exist (nothing was created)`);
    }
    const clientOwned = typeof this.options.replica === 'string';
    const client =
      typeof this.options.replica === 'string'
        ? openReplicaClient(this.options.replica)
        : this.options.replica;
    let lease: Lease | undefined;
    let builder: L0Builder | undefined;
    let localLock: LocalLock | undefined;
    let remoteMax: Txid;
    try {
      localLock = LocalLock.acquire(this.local.dir, this.dbPath, client.url);
      if (this.options.lease !== false) {
        const l = this.options.lease ?? {};
        lease = await Lease.acquire({
          client,
          ttlMs: l.ttlMs,
          renewIntervalMs: l.renewIntervalMs,
          owner: l.owner,
          onLost: (err) => this.fail(err),
          onRenewedAfterExpiry: () => {
            this.counters.leaseRecoveries++;
            // A warning's counterpart: the upload failures of the outage were logged as warnings.
            this.logger.warn(
              `lease generation ${lease?.generation} renewed: the store answers again and nobody took over`,
            );
            this.emit('lease-recovered', { generation: lease?.generation });
            // Manifests were held back while it was expired.
            this.run?.manifest?.publish().catch(() => {});
          },
        });
        lease.startRenewing();
      }
      builder = new L0Builder({
        dbPath: this.dbPath,
        local: this.local,
        encoding: this.opts.encoding,
        maxSyncBytes: this.opts.maxSyncBytes,
        busyTimeoutMs: this.opts.busyTimeoutMs,
        info: (line) => this.logger.info(line),
        warn: (line) => this.logger.warn(line),
        // Only a lease another writer took stops staging; an expired one stops uploads only.
        checkLease: () => {
          if (lease?.lost) throw lease.lost;
        },
        onFramesRead: (frames) => this.run?.checkpointer.noteFramesRead(frames),
        onStaged: (event, timestamp) => this.staged(event, timestamp),
      });
      this.local.ensure();
      remoteMax = await remoteMaxTxid(client);
      builder.reconcile(remoteMax);
    } catch (err) {
      await this.release({ client, clientOwned, lease, builder, localLock });
      throw err;
    }
    const uploaded = Math.min(builder.state?.txid ?? 0, remoteMax);
    const manifest =
      this.options.manifest !== false
        ? new ManifestPublisher(client, {
            ...this.options.manifest,
            log: (line) => this.logger.info(line),
            // As for compaction: not while the lease is expired unrenewed (or lost).
            mayWrite: () => !lease || (lease.lost === undefined && !lease.expired()),
          })
        : undefined;
    // Every LTX write and delete goes through the publisher's view of the client, so the
    // manifest is kept from what this writer did rather than a LIST per write.
    // Outermost, large objects get their page digests written first and deleted last.
    const observed = withPageDigests(manifest?.observe(client) ?? client, (line) => this.logger.warn(line));
    manifest?.start();
    const uploader = new Uploader(
      {
        client: observed,
        readStaged: (txid) => this.local.readStaged(txid),
        onUploaded: ({ txid, bytes, ms }) => {
          this.counters.uploads++;
          this.noteUploadRecovered(txid);
          const staged = this.stagedAt.get(txid);
          this.stagedAt.delete(txid);
          this.local.removeStaged(txid);
          this.unstaged(txid);
          const lag = staged === undefined ? undefined : Date.now() - staged;
          this.logger.debug?.(
            `uploaded L0 ${formatTxid(txid)} (${bytes} bytes) in ${ms} ms${lag === undefined ? '' : `, lag ${lag} ms`}`,
          );
          this.emit('uploaded', { txid, bytes, ms, lagMs: lag });
          manifest?.publish().catch(() => {});
          if (this.pageSizeChangedAt !== undefined && txid >= this.pageSizeChangedAt)
            this.snapshotAfterPageSizeChange();
        },
        onRetry: (info) => {
          this.counters.uploadRetries++;
          this.noteUploadFailure(info.txid, info.error);
          this.emit('retry', info);
        },
        onFatal: (err) => this.fail(err),
        checkLease: () => lease?.check(),
        minDelayMs: this.opts.retryMinDelayMs,
        maxDelayMs: this.opts.retryMaxDelayMs,
      },
      uploaded,
      builder.state?.txid ?? 0,
    );
    const checkpointer = new Checkpointer(builder, {
      minCheckpointPages: this.opts.minCheckpointPages,
      truncateCheckpointPages: this.opts.truncateCheckpointPages,
      checkpointIntervalMs: this.opts.checkpointIntervalMs,
      checkpointCheckMs: this.opts.checkpointCheckMs,
      refreshFrames: this.opts.refreshFrames,
      debug: (line) => this.logger.debug?.(line),
      onCheckpoint: (event) => this.emit('checkpoint', event),
      onCheckpointed: () => {
        this.counters.checkpoints++;
      },
    });
    const run: Running = {
      client: observed,
      clientOwned,
      lease,
      builder,
      checkpointer,
      uploader,
      manifest,
      compactor: undefined,
      localLock,
      closed: false,
    };
    this.run = run;
    for (const txid of this.local.listStaged()) {
      if (txid <= uploaded) continue;
      this.stagedAt.set(txid, Date.now());
      this.noteStagedBytes(txid, this.local.stagedSize(txid));
    }
    uploader.start();
    this.running = true;
    this.schedule();
    checkpointer.watch(
      () => this.running && !run.closed,
      (fn) => this.serialized(fn),
      (err) => this.report(err),
    );
    if (this.options.compaction) {
      run.compactor = new CompactionScheduler({
        client: observed,
        config: this.options.compaction,
        takeSnapshot: () => this.takeSnapshot(),
        logger: (line) => this.logger.info(line),
        warn: (line) => this.logger.warn(line),
        encoding: this.opts.encoding,
        spoolDir: this.local.dir,
        afterPass: manifest ? () => manifest.publish() : undefined,
        mayWrite: () => !lease || (lease.lost === undefined && !lease.expired()),
      });
      const pollMs = this.options.compactionPollMs ?? 1000;
      if (pollMs > 0) run.compactor.start(pollMs);
    }
  }

  private staged(event: SyncedEvent, timestamp: number): void {
    this.stagedAt.set(event.txid, timestamp);
    this.noteStagedBytes(event.txid, event.bytes);
    this.counters.syncs++;
    if (event.snapshot) this.counters.snapshots++;
    if (event.pageSizeChanged) this.pageSizeChangedAt = event.txid;
    this.run?.checkpointer.noteSynced();
    this.run?.uploader.notify(event.txid);
    this.emit('synced', event);
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.opts.syncIntervalMs);
    if (!this.opts.keepAlive) this.timer.unref();
  }

  private noteStagedBytes(txid: Txid, bytes: number): void {
    if (this.stagedSize.has(txid)) return;
    this.stagedSize.set(txid, bytes);
    this.staging.bytes += bytes;
    this.staging.files++;
  }

  private unstaged(txid: Txid): void {
    const bytes = this.stagedSize.get(txid);
    if (bytes === undefined) return;
    this.stagedSize.delete(txid);
    this.staging.bytes -= bytes;
    this.staging.files--;
  }

  /**
   * Whether this tick may stage: not while the staged bytes are over the bound, and, once over,
   * not until they are down to half of it (so it does not flap at every upload).
   */
  private mayStage(): boolean {
    const limit = this.opts.maxStagedBytes;
    if (!this.staging.full && this.staging.bytes > limit) {
      this.staging.full = true;
      this.logger.warn(
        `local staging is full: ${this.staging.bytes} bytes in ${this.staging.files} L0 files not yet in the replica (limit ${limit}); staging pauses, checkpoints go on, and a snapshot-style L0 follows once the store takes them`,
      );
      this.emit('staging', this.stagingStats());
    } else if (this.staging.full && this.staging.bytes <= limit / 2) {
      this.staging.full = false;
      this.logger.info(`local staging resumes (${this.staging.bytes} bytes staged) with a snapshot-style L0`);
      this.emit('staging', this.stagingStats());
    }
    return !this.staging.full;
  }

  private stagingStats(): StagingStats {
    return { ...this.staging, limitBytes: this.opts.maxStagedBytes };
  }

  private async tick(): Promise<void> {
    try {
      await this.serialized((run) => {
        if (!this.mayStage()) {
          this.staging.skippedSyncs++;
          run.builder.releaseWithoutCopying('local staging was full while the store did not take L0 files');
          return;
        }
        run.builder.syncLocal();
        run.checkpointer.moveReadAfterSync();
        run.checkpointer.maybeCheckpoint();
      });
    } catch (err) {
      this.report(err);
    }
  }

  /**
   * Resolves once everything committed before the call is durable in the replica: stages what is
   * committed, then waits for the upload and for the manifest that names it (so a reader opened
   * after sync() sees it). Rejects if replication stops (LEASE_LOST, WRITER_FORK).
   */
  async sync(options: SyncOptions = {}): Promise<{ txid: Txid }> {
    const { txid, run } = await this.serialized((run) => ({ txid: run.builder.syncLocal(), run }));
    await this.untilUploaded(run, txid, options.giveUpAfterAttempts);
    await this.pageSizeSnapshot;
    await run.manifest?.publish().catch(() => {});
    return { txid };
  }

  /**
   * The uploader's waitFor(txid), or, with `giveUpAfterAttempts`, the error of an upload that
   * failed that many times in a row for a reason retrying will not cure by itself (a full or
   * read-only replica file system, access denied). The staged files stay for the next start.
   */
  private untilUploaded(run: Running, txid: Txid, giveUpAfterAttempts: number | undefined): Promise<void> {
    if (giveUpAfterAttempts === undefined) return run.uploader.waitFor(txid);
    return new Promise((resolve, reject) => {
      let persistent = 0;
      const onRetry = (info: { error: unknown }) => {
        if (!isPersistentStorageError(info.error)) {
          persistent = 0;
          return;
        }
        persistent++;
        if (persistent < giveUpAfterAttempts) return;
        this.off('retry', onRetry);
        reject(info.error);
      };
      this.on('retry', onRetry);
      run.uploader.waitFor(txid).then(
        () => {
          this.off('retry', onRetry);
          resolve();
        },
        (err: unknown) => {
          this.off('retry', onRetry);
          reject(err);
        },
      );
    });
  }

  /**
   * One warning per failure streak (and per kind of failure within it), not one per retry: the
   * uploader retries with backoff for as long as it takes, and a line every few seconds would
   * bury the one that says why.
   */
  private noteUploadFailure(txid: Txid, error: unknown): void {
    const code = isLtxvfsError(error) ? error.code : 'ERROR';
    const streak = this.uploadFailure;
    if (streak) streak.attempts++;
    if (streak?.code === code) return;
    const message = error instanceof Error ? error.message : String(error);
    this.logger.warn(
      `upload of L0 ${formatTxid(txid)} failed: ${code}: ${message}; retrying with backoff (at most every ${this.opts.retryMaxDelayMs} ms), one line per failure streak`,
    );
    this.uploadFailure = { code, since: streak?.since ?? Date.now(), attempts: streak?.attempts ?? 1 };
  }

  private noteUploadRecovered(txid: Txid): void {
    const streak = this.uploadFailure;
    if (!streak) return;
    this.uploadFailure = undefined;
    this.logger.warn(
      `upload of L0 ${formatTxid(txid)} succeeded after ${streak.attempts} failed attempt(s) over ${Date.now() - streak.since} ms (last failure: ${streak.code})`,
    );
  }

  /**
   * The primary's page size changed (an offline `PRAGMA page_size` + VACUUM) and the L0 that
   * carries it is in the replica: a full L9 snapshot at once, so that a reader's chain (which
   * starts at the newest snapshot) never spans two page sizes. Until it lands, restore and
   * compaction still handle the change (the L0 holds every page); a failure is retried after the
   * next upload.
   */
  private snapshotAfterPageSizeChange(): void {
    if (this.pageSizeSnapshot) return;
    const due = this.pageSizeChangedAt;
    this.pageSizeSnapshot = this.takeSnapshot()
      .then(
        (file) => {
          if (this.pageSizeChangedAt === due) this.pageSizeChangedAt = undefined;
          if (file)
            this.logger.info(`the page size changed: wrote the L9 snapshot ${formatTxid(file.maxTxid)}`);
        },
        (err: unknown) => {
          if (isLtxvfsError(err, 'STORAGE_EXISTS')) {
            if (this.pageSizeChangedAt === due) this.pageSizeChangedAt = undefined;
            return;
          }
          const message = err instanceof Error ? err.message : String(err);
          this.logger.warn(
            `L9 snapshot after the page size change failed (tried again after the next upload): ${message}`,
          );
        },
      )
      .finally(() => {
        this.pageSizeSnapshot = undefined;
      });
  }

  /** Stages what is committed (no waiting for the store). */
  syncLocalNow(): Promise<Txid> {
    return this.serialized((run) => run.builder.syncLocal());
  }

  /**
   * Runs the compaction, snapshot and retention work that is due now (what the scheduler's next
   * tick would do) and waits for it; a failing step is logged and counted in stats().compaction.
   * Nothing without the `compaction` option. `replicate --once` calls it after its sync.
   */
  async compactNow(): Promise<CompactionStats | undefined> {
    const compactor = this.run?.compactor;
    if (!compactor || this.fatalError) return undefined;
    await compactor.tick();
    return compactor.stats();
  }

  /** Runs a checkpoint now (tests, CLI). */
  checkpoint(mode: CheckpointMode): Promise<void> {
    return this.serialized((run) => run.checkpointer.run(mode));
  }

  /**
   * Writes a full L9 snapshot `1-N` of the database at the current TXID N (after a sync) and
   * returns it; null when nothing was replicated yet. STORAGE_EXISTS if that snapshot exists.
   * This is the hook compaction uses for level 9.
   */
  async takeSnapshot(): Promise<LtxFileInfo | null> {
    const built = await this.serialized((run) => {
      run.builder.syncLocal();
      const file = run.builder.buildSnapshotFile();
      return file && { ...file, run };
    });
    if (!built) return null;
    try {
      built.run.lease?.check();
      return await built.run.client.writeFileFrom({ level: 9, minTxid: 1, maxTxid: built.txid }, built.file, {
        timestamp: new Date(built.timestamp),
      });
    } finally {
      await built.file.remove();
    }
  }

  /** Final sync (local), waits for uploads up to `drainMs`, releases the lease, closes. */
  async stop(options: { drainMs?: number } = {}): Promise<void> {
    const run = this.run;
    if (!run || run.closed) return;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    let txid = run.builder.state?.txid ?? 0;
    if (!this.fatalError) {
      try {
        txid = await this.serialized((r) => r.builder.syncLocal());
      } catch (err) {
        this.report(err);
      }
      const drainMs = options.drainMs ?? 30_000;
      if (drainMs > 0) {
        let timeout: NodeJS.Timeout | undefined;
        await Promise.race([
          run.uploader.waitFor(txid).catch(() => undefined),
          new Promise<void>((resolve) => {
            timeout = setTimeout(resolve, drainMs);
          }),
        ]);
        clearTimeout(timeout);
        if (run.uploader.uploadedTxid < txid) {
          this.logger.warn(
            `stopping with L0 ${formatTxid(run.uploader.uploadedTxid + 1)}..${formatTxid(txid)} staged but not uploaded; they upload at the next start`,
          );
        }
      }
    }
    await this.chain.catch(() => undefined);
    await this.teardown(run);
  }

  /** The error that stopped replication, if any (undefined while it runs or after a clean stop). */
  get failure(): LtxvfsError | undefined {
    return this.fatalError;
  }

  stats(): ReplicatorStats {
    const now = Date.now();
    let oldest = now;
    for (const at of this.stagedAt.values()) oldest = Math.min(oldest, at);
    const run = this.run;
    const txid = run?.builder.state?.txid ?? 0;
    const uploadedTxid = run?.uploader.uploadedTxid ?? 0;
    const compactor = run && !run.closed ? run.compactor : undefined;
    return {
      txid,
      uploadedTxid,
      pendingUploads: Math.max(0, txid - uploadedTxid),
      lagMs: now - oldest,
      ...this.counters,
      ...(compactor ? { compaction: compactor.stats() } : {}),
      requests: run?.client.stats() ?? emptyStats(),
      lease: leaseState(run?.lease, this.fatalError),
      staging: this.stagingStats(),
    };
  }

  // ---- internals -------------------------------------------------------------------------

  private serialized<T>(fn: (run: Running) => T): Promise<T> {
    const chained = this.chain.then(() => {
      if (this.fatalError) throw this.fatalError;
      const run = this.run;
      if (!run || run.closed) throw new LtxvfsError('WRITER_DB', 'replicator is not running');
      return fn(run);
    });
    this.chain = chained.catch(() => undefined);
    return chained;
  }

  private fail(err: LtxvfsError): void {
    if (this.fatalError) return;
    this.fatalError = err;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.run?.checkpointer.stopWatching();
    // The long read transaction must not pin the application's WAL once nothing copies it.
    try {
      this.run?.builder.db.endRead();
    } catch {
      // the connection closes at stop() anyway
    }
    this.logger.error(`replication stopped: ${err.code}: ${err.message}`);
    void this.run?.uploader.stop(err);
    void this.run?.compactor?.stop();
    this.emit('fatal', err);
  }

  private report(err: unknown): void {
    if (isLtxvfsError(err, 'LEASE_LOST') || isLtxvfsError(err, 'WRITER_FORK')) {
      this.fail(err);
      return;
    }
    if (this.fatalError && err === this.fatalError) return;
    const message = err instanceof Error ? err.message : String(err);
    this.logger.error(`sync failed: ${message}`);
    this.emit('error', err);
  }

  private async teardown(run: Running): Promise<void> {
    this.running = false;
    run.checkpointer.stopWatching();
    await run.compactor?.stop();
    run.manifest?.stop();
    await run.manifest?.publish().catch(() => {});
    await run.uploader.stop(this.fatalError);
    await this.release(run);
    run.closed = true;
  }

  /** Releases the lease (unless replication failed), closes the database and an owned client. */
  private async release(parts: {
    client: ReplicaClient;
    clientOwned: boolean;
    lease: Lease | undefined;
    builder: L0Builder | undefined;
    localLock: LocalLock | undefined;
  }): Promise<void> {
    try {
      if (!this.fatalError) await parts.lease?.release();
    } catch (err) {
      this.logger.warn(`could not release the lease: ${(err as Error).message}`);
    }
    parts.lease?.stopRenewing();
    parts.builder?.close();
    parts.localLock?.release();
    if (parts.clientOwned) await parts.client.close();
  }
}

/** Everything that exists only while the replicator runs; created by start(). */
interface Running {
  readonly client: ReplicaClient;
  readonly clientOwned: boolean;
  readonly lease: Lease | undefined;
  /** The primary database and the replication position. */
  readonly builder: L0Builder;
  readonly checkpointer: Checkpointer;
  readonly uploader: Uploader;
  readonly manifest: ManifestPublisher | undefined;
  compactor: CompactionScheduler | undefined;
  /** This process's claim on `.<db>-ltxvfs/` (one replicator per database). */
  readonly localLock: LocalLock;
  /** Set once teardown has closed the database (the object stays for stats()). */
  closed: boolean;
}

function leaseState(lease: Lease | undefined, failure: LtxvfsError | undefined): ReplicatorStats['lease'] {
  if (!lease) return 'off';
  if (lease.lost) return failure?.code === 'LEASE_LOST' ? 'lost' : 'off';
  return lease.expired() ? 'expired' : 'held';
}

async function remoteMaxTxid(client: ReplicaClient): Promise<Txid> {
  let max = 0;
  for (const files of (await listAllLevels(client)).values()) {
    for (const f of files) max = Math.max(max, f.maxTxid);
  }
  return max;
}

/** Failures of the replica's storage that waiting alone does not end. */
function isPersistentStorageError(err: unknown): boolean {
  return (
    isLtxvfsError(err, 'STORAGE_FULL') ||
    isLtxvfsError(err, 'STORAGE_READ_ONLY') ||
    isLtxvfsError(err, 'STORAGE_ACCESS_DENIED')
  );
}
