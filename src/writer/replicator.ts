import { EventEmitter } from 'node:events';
import { lockPgno, type PageEncoding } from '../ltx/index.js';
import { emptyStats, openReplicaClient, SpoolFile } from '../storage/index.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient, RequestStats } from '../storage/types.js';
import { crashPoint } from '../util/crash-point.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import {
  decodeWalHeader,
  scanWal,
  WAL_HEADER_SIZE,
  type WalHeader,
  type WalPosition,
  type WalSource,
  walFrameSize,
  walPositionAt,
  walStartPosition,
} from '../wal/index.js';
import { CompactionScheduler, type CompactionStats } from './compaction.js';
import type { CompactionConfig } from './compaction-config.js';
import { type DbFingerprint, decideSync } from './continuity.js';
import { encodeLtxChunks, litestreamHeader } from './l0-file.js';
import { Lease } from './lease.js';
import { LocalState, type WalCursor, type WriterState } from './local-state.js';
import { ManifestPublisher, type ManifestPublisherOptions } from './manifest-publisher.js';
import { fullPages, incrementalPages, newestFramesBefore, WalChangedError } from './page-source.js';
import { type CheckpointMode, PrimaryDatabase } from './primary-db.js';
import { Uploader } from './uploader.js';

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
  /** How often the compaction scheduler looks at its schedule (default 1000 ms). */
  compactionPollMs?: number;
  /**
   * The reader manifest `ltxvfs/manifest.json` and hot pages `ltxvfs/hot.ltx` (README, "Opening
   * and following"); default on. `false` leaves the replica exactly as Litestream would.
   */
  manifest?: false | ManifestPublisherOptions;
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
}

export interface SyncedEvent {
  txid: Txid;
  snapshot: boolean;
  reason?: string;
  pages: number;
  bytes: number;
  commit: number;
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
 * Events: 'synced' (SyncedEvent), 'uploaded' ({txid, bytes, ms}), 'checkpoint' ({mode, ...}),
 * 'retry' ({txid, attempt, delayMs, error}), 'fatal' (LtxvfsError), 'error' (non-fatal).
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
  private readonly logger: ReplicatorLogger;
  private clientOwned = false;
  private clientRef: ReplicaClient | undefined;
  private lease: Lease | undefined;
  private db: PrimaryDatabase | undefined;
  private local: LocalState;
  private state: WriterState | undefined;
  private uploader: Uploader | undefined;
  private compactor: CompactionScheduler | undefined;
  private manifest: ManifestPublisher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private walWatch: NodeJS.Timeout | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private running = false;
  private fatalError: LtxvfsError | undefined;
  /** Why the next sync must be a snapshot-style L0, if it must. */
  private snapshotReason: string | undefined;
  /** The read-transaction epoch during which one WAL restart is provably continuous. */
  private restartAllowedEpoch = -1;
  private lastCheckpointAt = Date.now();
  private syncedSinceCheckpoint = false;
  private stagedAt = new Map<Txid, number>();
  private counters = { syncs: 0, snapshots: 0, checkpoints: 0, uploads: 0, uploadRetries: 0 };

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
      keepAlive: options.keepAlive ?? false,
    };
    this.logger = options.logger ?? { info() {}, warn() {}, error() {} };
    this.local = new LocalState(options.dbPath);
    // Unhandled 'error' events would crash the process; errors are also logged.
    this.on('error', () => {});
  }

  /** The replica client (for compaction and snapshots). */
  get client(): ReplicaClient {
    if (!this.clientRef) throw new LtxvfsError('WRITER_DB', 'replicator not started');
    return this.clientRef;
  }

  get encoding(): PageEncoding {
    return this.opts.encoding;
  }

  /** Acquires the lease, opens the database, reconciles local state with the replica, starts syncing. */
  async start(): Promise<void> {
    if (this.running) return;
    const client =
      typeof this.options.replica === 'string'
        ? openReplicaClient(this.options.replica)
        : this.options.replica;
    this.clientOwned = typeof this.options.replica === 'string';
    this.clientRef = client;
    try {
      if (this.options.lease !== false) {
        const l = this.options.lease ?? {};
        this.lease = await Lease.acquire({
          client,
          ttlMs: l.ttlMs,
          renewIntervalMs: l.renewIntervalMs,
          owner: l.owner,
          onLost: (err) => this.fail(err),
        });
        this.lease.startRenewing();
      }
      this.db = PrimaryDatabase.open(this.dbPath, { busyTimeoutMs: this.opts.busyTimeoutMs });
      this.local.ensure();
      const remoteMax = await this.remoteMaxTxid(client);
      this.reconcile(remoteMax);
    } catch (err) {
      await this.teardown();
      throw err;
    }
    const uploaded = Math.min(this.state?.txid ?? 0, this.remoteMaxAtStart);
    if (this.options.manifest !== false) {
      this.manifest = new ManifestPublisher(client, {
        ...this.options.manifest,
        log: (line) => this.logger.info(line),
      });
      this.manifest.start();
    }
    this.uploader = new Uploader(
      {
        client,
        readStaged: (txid) => this.local.readStaged(txid),
        onUploaded: ({ txid, bytes, ms }) => {
          this.counters.uploads++;
          const staged = this.stagedAt.get(txid);
          this.stagedAt.delete(txid);
          this.local.removeStaged(txid);
          const lag = staged === undefined ? undefined : Date.now() - staged;
          this.logger.debug?.(
            `uploaded L0 ${formatTxid(txid)} (${bytes} bytes) in ${ms} ms${lag === undefined ? '' : `, lag ${lag} ms`}`,
          );
          this.emit('uploaded', { txid, bytes, ms, lagMs: lag });
          this.manifest?.publish().catch(() => {});
        },
        onRetry: (info) => {
          this.counters.uploadRetries++;
          const message = info.error instanceof Error ? info.error.message : String(info.error);
          if (info.attempt === 1 || info.attempt % 10 === 0) {
            this.logger.warn(
              `upload of L0 ${formatTxid(info.txid)} failed (attempt ${info.attempt}), retrying in ${info.delayMs} ms: ${message}`,
            );
          }
          this.emit('retry', info);
        },
        onFatal: (err) => this.fail(err),
        checkLease: () => this.lease?.check(),
        minDelayMs: this.opts.retryMinDelayMs,
        maxDelayMs: this.opts.retryMaxDelayMs,
      },
      uploaded,
      this.state?.txid ?? 0,
    );
    for (const txid of this.local.listStaged()) if (txid > uploaded) this.stagedAt.set(txid, Date.now());
    this.uploader.start();
    this.running = true;
    this.schedule();
    this.watchWal();
    if (this.options.compaction) {
      this.compactor = new CompactionScheduler({
        client,
        config: this.options.compaction,
        takeSnapshot: () => this.takeSnapshot(),
        logger: (line) => this.logger.info(line),
        warn: (line) => this.logger.warn(line),
        encoding: this.opts.encoding,
        spoolDir: this.local.dir,
        afterPass: this.manifest ? () => this.manifest?.publish() ?? Promise.resolve() : undefined,
      });
      this.compactor.start(this.options.compactionPollMs ?? 1000);
    }
  }

  private remoteMaxAtStart = 0;

  private async remoteMaxTxid(client: ReplicaClient): Promise<Txid> {
    let max = 0;
    for (const files of (await listAllLevels(client)).values()) {
      for (const f of files) max = Math.max(max, f.maxTxid);
    }
    this.remoteMaxAtStart = max;
    return max;
  }

  /** Startup: make local state and staged files agree with what the replica holds. */
  private reconcile(remoteMax: Txid): void {
    const loaded = this.local.load();
    const db = this.db!;
    if (!loaded) {
      this.local.discardBeyond(0);
      this.state = undefined;
      this.startFrom(remoteMax, remoteMax === 0 ? 'first sync' : 'no local state; continuing the replica');
      return;
    }
    this.local.discardBeyond(loaded.txid);
    if (loaded.txid < remoteMax) {
      this.logger.warn(
        `replica is ahead of local state (replica ${formatTxid(remoteMax)}, local ${formatTxid(loaded.txid)}): continuing after the replica with a snapshot`,
      );
      this.local.discardBeyond(0);
      this.startFrom(remoteMax, 'replica ahead of local state');
      return;
    }
    const staged = new Set(this.local.listStaged());
    for (let t = remoteMax + 1; t <= loaded.txid; t++) {
      if (!staged.has(t)) {
        this.logger.warn(
          `staged L0 ${formatTxid(t)} is missing and not in the replica: rewinding to ${formatTxid(remoteMax)} with a snapshot`,
        );
        this.local.discardBeyond(0);
        this.startFrom(remoteMax, 'staged files lost');
        return;
      }
    }
    for (const t of staged) if (t <= remoteMax) this.local.removeStaged(t);
    this.state = loaded;
    if (loaded.db.ino !== db.identity.ino || loaded.db.dev !== db.identity.dev) {
      this.snapshotReason = 'database file replaced while the replicator was stopped';
    }
  }

  private startFrom(txid: Txid, reason: string): void {
    this.state =
      txid === 0
        ? undefined
        : { version: 1, txid, pageSize: 0, commit: 0, wal: null, db: { ...this.db!.identity } };
    this.snapshotReason = reason;
  }

  /**
   * After the replicator's own checkpoint its read transaction usually sits in SQLite's "read
   * only the database file" slot (everything was backfilled when it began). That slot lets the
   * application's next write restart the WAL (the one restart this epoch allows) but blocks every
   * later backfill, and SQLite's autocheckpoint then re-sorts the whole WAL index after each
   * commit and gives up. So once the restarted WAL has a few frames, the read transaction moves
   * onto it (a handoff, no write lock needed), long before the application's autocheckpoint
   * threshold.
   */
  private watchWal(): void {
    this.walWatch = setInterval(() => {
      if (!this.running || !this.db || !this.awaitingRestart || this.handoffQueued) return;
      if (!this.restartedWalHasFrames(this.opts.refreshFrames)) return;
      this.handoffQueued = true;
      void this.serialized(() => {
        if (this.awaitingRestart) this.moveReadAfterRestart();
      })
        .catch((err) => this.report(err))
        .finally(() => {
          this.handoffQueued = false;
        });
    }, this.opts.checkpointCheckMs);
    this.walWatch.unref();
  }

  private handoffQueued = false;
  /** Set by our checkpoint; cleared once the read transaction is on the restarted WAL. */
  private awaitingRestart = false;
  /** The epoch whose read mark is known not to be past the copied end (begun under the barrier). */
  private markCopiedEpoch = -1;
  private framesSinceCheckpoint = 0;

  /**
   * True when the WAL header has other salts than the last copied frame (it restarted) and the
   * new generation has at least `n` frames. Two small reads.
   */
  private restartedWalHasFrames(n: number): boolean {
    const cursor = this.state?.wal;
    const source = this.db?.walSource();
    if (!cursor || !source) return false;
    const head = source.read(0, WAL_HEADER_SIZE);
    if (head.length < WAL_HEADER_SIZE) return false;
    const view = new DataView(head.buffer, head.byteOffset, WAL_HEADER_SIZE);
    const salt1 = view.getUint32(16);
    const salt2 = view.getUint32(20);
    if (salt1 === cursor.salt1 && salt2 === cursor.salt2) return false;
    const probe = source.read(WAL_HEADER_SIZE + (n - 1) * walFrameSize(this.state!.pageSize), 24);
    if (probe.length < 24) return false;
    const frame = new DataView(probe.buffer, probe.byteOffset, 24);
    return frame.getUint32(8) === salt1 && frame.getUint32(12) === salt2;
  }

  /**
   * Handoff without copying first. Safe only from an epoch whose read mark was not past the
   * copied end: if the new read transaction lands in the "database file only" slot, its mark
   * equals the backfilled end, which is at most that old mark (nothing was copied beyond it, so
   * nothing can be lost), or the WAL already restarted and no further backfill (hence no further
   * restart) is possible while it is held. The allowed restart carries over.
   */
  private moveReadAfterRestart(): void {
    const db = this.db!;
    this.awaitingRestart = false;
    if (this.markCopiedEpoch !== db.epoch) return;
    const allowed = this.restartAllowedEpoch === db.epoch;
    db.handoffRead();
    if (allowed) this.restartAllowedEpoch = db.epoch;
  }

  /**
   * Moves the read transaction to the end of the WAL right after a sync copied every committed
   * frame, so the application's checkpoints can backfill what was copied. If the new read
   * transaction lands in the "database file only" slot, everything was backfilled and its mark
   * is at most the copied end, so a WAL restart during its epoch is continuous; if the WAL header
   * shows a restart already, it happened during the previous epoch and is allowed only if that
   * epoch allowed it.
   */
  private moveReadAfterSync(): void {
    const db = this.db!;
    const cursor = this.state?.wal;
    if (!cursor || this.snapshotReason) return;
    const allowed = this.restartAllowedEpoch === db.epoch;
    db.handoffRead();
    const header = this.readWalHeader(db.walSource());
    const sameGeneration = header !== null && header.salt1 === cursor.salt1 && header.salt2 === cursor.salt2;
    if (sameGeneration || allowed) this.restartAllowedEpoch = db.epoch;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      void this.tick().finally(() => this.schedule());
    }, this.opts.syncIntervalMs);
    if (!this.opts.keepAlive) this.timer.unref();
  }

  private async tick(): Promise<void> {
    try {
      await this.serialized(() => {
        this.syncLocal();
        this.moveReadAfterSync();
        this.maybeCheckpoint();
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
  async sync(): Promise<{ txid: Txid }> {
    const txid = await this.serialized(() => this.syncLocal());
    await this.uploader!.waitFor(txid);
    await this.manifest?.publish().catch(() => {});
    return { txid };
  }

  /** Stages what is committed (no waiting for the store). */
  syncLocalNow(): Promise<Txid> {
    return this.serialized(() => this.syncLocal());
  }

  /** Runs a checkpoint now (tests, CLI). */
  checkpoint(mode: CheckpointMode): Promise<void> {
    return this.serialized(() => this.runCheckpoint(mode));
  }

  /**
   * Writes a full L9 snapshot `1-N` of the database at the current TXID N (after a sync) and
   * returns it; null when nothing was replicated yet. STORAGE_EXISTS if that snapshot exists.
   * This is the hook compaction uses for level 9.
   */
  async takeSnapshot(): Promise<LtxFileInfo | null> {
    const built = await this.serialized(() => {
      this.syncLocal();
      return this.buildSnapshotFile();
    });
    if (!built) return null;
    try {
      this.lease?.check();
      return await this.client.writeFileFrom({ level: 9, minTxid: 1, maxTxid: built.txid }, built.file, {
        timestamp: new Date(built.timestamp),
      });
    } finally {
      await built.file.remove();
    }
  }

  /** Final sync (local), waits for uploads up to `drainMs`, releases the lease, closes. */
  async stop(options: { drainMs?: number } = {}): Promise<void> {
    if (!this.running && !this.db) return;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    let txid = this.state?.txid ?? 0;
    if (!this.fatalError) {
      try {
        txid = await this.serialized(() => this.syncLocal());
      } catch (err) {
        this.report(err);
      }
      const drainMs = options.drainMs ?? 30_000;
      if (this.uploader && drainMs > 0) {
        let timeout: NodeJS.Timeout | undefined;
        await Promise.race([
          this.uploader.waitFor(txid).catch(() => undefined),
          new Promise<void>((resolve) => {
            timeout = setTimeout(resolve, drainMs);
          }),
        ]);
        clearTimeout(timeout);
        if (this.uploader.uploadedTxid < txid) {
          this.logger.warn(
            `stopping with L0 ${formatTxid(this.uploader.uploadedTxid + 1)}..${formatTxid(txid)} staged but not uploaded; they upload at the next start`,
          );
        }
      }
    }
    await this.chain.catch(() => undefined);
    await this.teardown();
  }

  /** The error that stopped replication, if any (undefined while it runs or after a clean stop). */
  get failure(): LtxvfsError | undefined {
    return this.fatalError;
  }

  stats(): ReplicatorStats {
    const now = Date.now();
    let oldest = now;
    for (const at of this.stagedAt.values()) oldest = Math.min(oldest, at);
    const txid = this.state?.txid ?? 0;
    const uploadedTxid = this.uploader?.uploadedTxid ?? 0;
    return {
      txid,
      uploadedTxid,
      pendingUploads: Math.max(0, txid - uploadedTxid),
      lagMs: now - oldest,
      ...this.counters,
      ...(this.compactor ? { compaction: this.compactor.stats() } : {}),
      requests: this.clientRef?.stats() ?? emptyStats(),
    };
  }

  // ---- internals -------------------------------------------------------------------------

  private serialized<T>(fn: () => T): Promise<T> {
    const run = this.chain.then(() => {
      if (this.fatalError) throw this.fatalError;
      if (!this.db) throw new LtxvfsError('WRITER_DB', 'replicator is not running');
      return fn();
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private fail(err: LtxvfsError): void {
    if (this.fatalError) return;
    this.fatalError = err;
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.walWatch) clearInterval(this.walWatch);
    this.logger.error(`replication stopped: ${err.code}: ${err.message}`);
    void this.uploader?.stop(err);
    void this.compactor?.stop();
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

  private async teardown(): Promise<void> {
    this.running = false;
    if (this.walWatch) clearInterval(this.walWatch);
    await this.compactor?.stop();
    this.compactor = undefined;
    this.manifest?.stop();
    await this.manifest?.publish().catch(() => {});
    this.manifest = undefined;
    await this.uploader?.stop(this.fatalError);
    try {
      if (!this.fatalError) await this.lease?.release();
    } catch (err) {
      this.logger.warn(`could not release the lease: ${(err as Error).message}`);
    }
    this.lease?.stopRenewing();
    this.db?.close();
    this.db = undefined;
    if (this.clientOwned) await this.clientRef?.close();
  }

  /** Stages L0 files until the WAL's committed frames are all copied; returns the newest TXID. */
  private syncLocal(): Txid {
    this.lease?.check();
    for (let i = 0; i < 10_000; i++) {
      let more: boolean;
      try {
        more = this.syncStep();
      } catch (err) {
        if (err instanceof WalChangedError) {
          this.snapshotReason = err.message;
          continue;
        }
        throw err;
      }
      if (!more) break;
    }
    return this.state?.txid ?? 0;
  }

  private readWalHeader(source: WalSource | null): WalHeader | null {
    if (!source || source.size() < WAL_HEADER_SIZE) return null;
    try {
      return decodeWalHeader(source.read(0, WAL_HEADER_SIZE), this.db!.walPath);
    } catch {
      // SQLite ignores a WAL whose header does not verify; so does the replicator.
      return null;
    }
  }

  /** One L0 file at most; true when more committed frames remain (size limit). */
  private syncStep(): boolean {
    let db = this.db!;
    if (db.replaced()) {
      this.logger.warn(`database file ${this.dbPath} was replaced: reopening and taking a snapshot`);
      db.close();
      this.db = PrimaryDatabase.open(this.dbPath, { busyTimeoutMs: this.opts.busyTimeoutMs });
      db = this.db;
      this.snapshotReason = 'database file replaced';
    }
    const source = db.walSource();
    const header = this.readWalHeader(source);
    const pageSize = header?.pageSize ?? db.headerPageSize();
    if (pageSize === 0) return false; // an empty database: nothing to replicate yet
    const state = this.state;
    const cursor = state?.wal ?? null;
    const sameGeneration =
      header !== null && cursor !== null && header.salt1 === cursor.salt1 && header.salt2 === cursor.salt2;
    const at =
      sameGeneration && source && header && cursor ? walPositionAt(source, header, cursor.offset) : null;
    const fingerprint = db.fingerprint(pageSize);
    const decision = decideSync({
      wal: header,
      pageSize,
      state: state && {
        txid: state.txid,
        pageSize: state.pageSize,
        cursor,
        ...(state.file ? { fingerprint: state.file } : {}),
      },
      checksumAtCursor: at,
      fingerprint,
      pendingSnapshot: this.snapshotReason,
      restartAllowed: this.restartAllowedEpoch === db.epoch,
    });
    switch (decision.kind) {
      case 'none':
        return false;
      case 'snapshot':
        return this.snapshotStep(source, header, pageSize, decision.reason, fingerprint);
      case 'incremental':
        if (!source || !header) return false;
        if (decision.from === 'cursor' && at) return this.incrementalStep(source, header, at, fingerprint);
        return this.incrementalStep(source, header, walStartPosition(header), fingerprint);
    }
  }

  private incrementalStep(
    source: WalSource,
    header: WalHeader,
    from: WalPosition,
    file: DbFingerprint,
  ): boolean {
    const db = this.db!;
    const state = this.state!;
    const scan = scanWal(source, header, from, { maxBytes: this.opts.maxSyncBytes });
    if (scan.commit === null) return false;
    this.framesSinceCheckpoint += scan.frames;
    const growth = new Set<number>();
    const lock = lockPgno(header.pageSize);
    for (let p = state.commit + 1; p <= scan.commit; p++) if (p !== lock && !scan.pages.has(p)) growth.add(p);
    const earlier = newestFramesBefore(source, header, from.offset, growth);
    const pages = incrementalPages({
      pageSize: header.pageSize,
      commit: scan.commit,
      prevCommit: state.commit,
      walPages: scan.pages,
      earlier,
      source,
      header,
      db,
      walPath: db.walPath,
    });
    this.stage({
      pageSize: header.pageSize,
      commit: scan.commit,
      wal: {
        offset: from.offset,
        size: scan.end.offset - from.offset,
        salt1: header.salt1,
        salt2: header.salt2,
      },
      pages: (function* () {
        for (const p of pages) yield { pgno: p.pgno, data: p.data() };
      })(),
      pageCount: pages.length,
      cursor: cursorOf(header, scan.end),
      snapshot: false,
      file,
    });
    return scan.endReason === 'limit';
  }

  private snapshotStep(
    source: WalSource | null,
    header: WalHeader | null,
    pageSize: number,
    reason: string,
    file: DbFingerprint,
  ): boolean {
    const db = this.db!;
    const scan = header && source ? scanWal(source, header, walStartPosition(header)) : null;
    const commit = scan?.commit ?? db.sizeInPages(pageSize);
    if (commit === 0) return false;
    const lock = lockPgno(pageSize);
    this.stage({
      pageSize,
      commit,
      wal:
        header && scan
          ? {
              offset: WAL_HEADER_SIZE,
              size: scan.end.offset - WAL_HEADER_SIZE,
              salt1: header.salt1,
              salt2: header.salt2,
            }
          : null,
      pages: fullPages({
        pageSize,
        commit,
        walPages: scan?.pages ?? null,
        source,
        header,
        db,
        walPath: db.walPath,
      }),
      pageCount: commit - (commit >= lock ? 1 : 0),
      cursor: header && scan ? cursorOf(header, scan.end) : null,
      snapshot: true,
      reason,
      file,
    });
    this.snapshotReason = undefined;
    if (!header) this.restartAllowedEpoch = db.epoch;
    return false;
  }

  private stage(l0: {
    pageSize: number;
    commit: number;
    wal: { offset: number; size: number; salt1: number; salt2: number } | null;
    pages: Iterable<{ pgno: number; data: Uint8Array }>;
    pageCount: number;
    cursor: WalCursor | null;
    snapshot: boolean;
    reason?: string;
    file: DbFingerprint;
  }): void {
    const db = this.db!;
    const txid = (this.state?.txid ?? 0) + 1;
    const timestamp = Date.now();
    const header = litestreamHeader({
      minTxid: txid,
      maxTxid: txid,
      pageSize: l0.pageSize,
      commit: l0.commit,
      timestamp,
      wal: l0.wal,
    });
    const bytes = this.local.stageL0(txid, encodeLtxChunks(header, l0.pages, this.opts.encoding));
    crashPoint('after-stage');
    this.state = {
      version: 1,
      txid,
      pageSize: l0.pageSize,
      commit: l0.commit,
      wal: l0.cursor,
      db: { ...db.identity },
      file: l0.file,
    };
    this.local.save(this.state);
    crashPoint('after-state');
    this.stagedAt.set(txid, timestamp);
    this.counters.syncs++;
    this.syncedSinceCheckpoint = true;
    if (l0.snapshot) {
      this.counters.snapshots++;
      if (txid > 1) this.logger.info(`L0 ${formatTxid(txid)} is a full snapshot: ${l0.reason}`);
    }
    this.uploader?.notify(txid);
    const event: SyncedEvent = {
      txid,
      snapshot: l0.snapshot,
      pages: l0.pageCount,
      bytes,
      commit: l0.commit,
      ...(l0.reason ? { reason: l0.reason } : {}),
    };
    this.emit('synced', event);
  }

  private maybeCheckpoint(): void {
    const db = this.db!;
    const source = db.walSource();
    const header = this.readWalHeader(source);
    if (!source || !header) return;
    // The file keeps its largest size across restarts, so its size only bounds TRUNCATE.
    const fileFrames = Math.floor((source.size() - WAL_HEADER_SIZE) / walFrameSize(header.pageSize));
    if (fileFrames >= this.opts.truncateCheckpointPages) this.runCheckpoint('TRUNCATE');
    else if (this.framesSinceCheckpoint >= this.opts.minCheckpointPages) this.runCheckpoint('PASSIVE');
    else if (
      this.syncedSinceCheckpoint &&
      Date.now() - this.lastCheckpointAt >= this.opts.checkpointIntervalMs
    ) {
      this.runCheckpoint('PASSIVE');
    }
  }

  /**
   * Litestream's procedure (ltx-and-litestream.md section 3). PASSIVE: take the write lock on a
   * second connection so the WAL cannot grow, copy everything, release the read transaction,
   * checkpoint, take a new read transaction, release the write lock. Since every frame was
   * copied, one WAL restart after this is continuous. TRUNCATE cannot run under our own write
   * lock, so frames committed in between could be checkpointed unseen: the next L0 is a snapshot.
   *
   * Before the write lock, a PASSIVE checkpoint on the spare connection backfills up to the read
   * mark, so the application waits only for what was committed since (and two fsyncs).
   */
  private runCheckpoint(mode: CheckpointMode): void {
    const db = this.db!;
    if (mode === 'PASSIVE') {
      db.checkpoint('PASSIVE');
      if (!db.acquireBarrier()) {
        this.logger.debug?.('checkpoint skipped: the database is busy');
        return;
      }
      try {
        this.syncLocal();
        db.endRead();
        try {
          const r = db.checkpoint('PASSIVE');
          this.emit('checkpoint', { mode, ...r });
        } finally {
          db.beginRead();
        }
        this.markCopiedEpoch = db.epoch;
        this.awaitingRestart = true;
        if (!this.snapshotReason) this.restartAllowedEpoch = db.epoch;
      } finally {
        db.releaseBarrier();
      }
    } else {
      this.syncLocal();
      db.endRead();
      try {
        const r = db.checkpoint('TRUNCATE');
        this.emit('checkpoint', { mode, ...r });
      } finally {
        db.beginRead();
      }
      this.snapshotReason = 'after a TRUNCATE checkpoint';
    }
    this.counters.checkpoints++;
    this.lastCheckpointAt = Date.now();
    this.syncedSinceCheckpoint = false;
    this.framesSinceCheckpoint = 0;
  }

  private buildSnapshotFile(): { txid: Txid; file: SpoolFile; timestamp: number } | null {
    const db = this.db!;
    const state = this.state;
    if (!state || state.txid === 0) return null;
    const source = db.walSource();
    let header = this.readWalHeader(source);
    const cursor = state.wal;
    if (cursor && header && (header.salt1 !== cursor.salt1 || header.salt2 !== cursor.salt2)) {
      // The WAL restarted after the last sync with nothing new committed; everything is in the file.
      header = null;
    }
    let walPages = null;
    if (header && cursor && source) {
      const scan = scanUpTo(source, header, cursor.offset);
      if (scan.end.offset !== cursor.offset) {
        throw new LtxvfsError(
          'WRITER_DB',
          `${db.walPath}: committed frames end at ${scan.end.offset}, before the last synced position ${cursor.offset}`,
        );
      }
      walPages = scan.pages;
    }
    const timestamp = Date.now();
    const ltxHeader = litestreamHeader({
      minTxid: 1,
      maxTxid: state.txid,
      pageSize: state.pageSize,
      commit: state.commit,
      timestamp,
      wal:
        header && cursor
          ? {
              offset: WAL_HEADER_SIZE,
              size: cursor.offset - WAL_HEADER_SIZE,
              salt1: header.salt1,
              salt2: header.salt2,
            }
          : null,
    });
    // Written to a temp file beside the local state as it is encoded (synchronously: the pages
    // must come from this one read transaction), then streamed up: memory stays ~1 MiB.
    const file = new SpoolFile(this.local.dir, 'snapshot');
    try {
      for (const chunk of encodeLtxChunks(
        ltxHeader,
        fullPages({
          pageSize: state.pageSize,
          commit: state.commit,
          walPages,
          source,
          header,
          db,
          walPath: db.walPath,
        }),
        this.opts.encoding,
      ))
        file.writeSync(chunk);
      file.finish();
    } catch (err) {
      file.removeSync();
      throw err;
    }
    return { txid: state.txid, file, timestamp };
  }
}

function cursorOf(header: WalHeader, end: WalPosition): WalCursor {
  return {
    salt1: header.salt1,
    salt2: header.salt2,
    checkpointSeq: header.checkpointSeq,
    offset: end.offset,
    checksum1: end.checksum1,
    checksum2: end.checksum2,
  };
}

/** The WAL's committed frames in [WAL start, end) only. */
function scanUpTo(source: WalSource, header: WalHeader, end: number) {
  const limited: WalSource = {
    size: () => Math.min(source.size(), end),
    read: (offset, length) => source.read(offset, Math.max(0, Math.min(length, end - offset))),
  };
  return scanWal(limited, header, walStartPosition(header));
}
