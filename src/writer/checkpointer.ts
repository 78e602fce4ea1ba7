import { WAL_HEADER_SIZE, walFrameOffset, walFrameSize, walPositionAt } from '../wal/index.js';
import type { L0Builder } from './l0-builder.js';
import type { CheckpointMode, CheckpointResult } from './primary-db.js';

export interface CheckpointerOptions {
  /** PASSIVE checkpoint when the WAL has this many frames. */
  minCheckpointPages: number;
  /** TRUNCATE checkpoint when the WAL file has this many frames. */
  truncateCheckpointPages: number;
  /** PASSIVE checkpoint at least this often when something was synced. */
  checkpointIntervalMs: number;
  /** How often, after our own checkpoint, to look for the WAL restart that follows. */
  checkpointCheckMs: number;
  /** Frames of the restarted WAL before the read transaction moves onto it. */
  refreshFrames: number;
  debug?(line: string): void;
  onCheckpoint(event: { mode: CheckpointMode } & CheckpointResult): void;
  /** A checkpoint ran to the end (counted in the replicator's stats). */
  onCheckpointed(): void;
}

/**
 * The replicator's side of SQLite's checkpoints: when to checkpoint (PASSIVE by WAL frames or
 * time, TRUNCATE by WAL file size), Litestream's hand-off around them, and the read-transaction
 * epochs that say when one WAL restart is provably continuous (`builder.restartAllowedEpoch`).
 * Every method runs inside the replicator's serialized chain.
 */
export class Checkpointer {
  /** Set by our checkpoint; cleared once the read transaction is on the restarted WAL. */
  private awaitingRestart = false;
  /** The epoch whose read mark is known not to be past the copied end (begun under the barrier). */
  private markCopiedEpoch = -1;
  private framesSinceCheckpoint = 0;
  private syncedSinceCheckpoint = false;
  private lastCheckpointAt = Date.now();
  private watchTimer: NodeJS.Timeout | undefined;
  private handoffQueued = false;

  constructor(
    private readonly builder: L0Builder,
    private readonly opts: CheckpointerOptions,
  ) {}

  noteFramesRead(frames: number): void {
    this.framesSinceCheckpoint += frames;
  }

  noteSynced(): void {
    this.syncedSinceCheckpoint = true;
  }

  /**
   * After the replicator's own checkpoint its read transaction usually sits in SQLite's "read
   * only the database file" slot (everything was backfilled when it began). That slot lets the
   * application's next write restart the WAL (the one restart this epoch allows) but blocks every
   * later backfill, and SQLite's autocheckpoint then re-sorts the whole WAL index after each
   * commit and gives up. So once the restarted WAL has a few frames, the read transaction moves
   * onto it (a handoff, no write lock needed), long before the application's autocheckpoint
   * threshold. `serialized` runs the hand-off in the replicator's chain.
   */
  watch(
    active: () => boolean,
    serialized: (fn: () => void) => Promise<void>,
    report: (err: unknown) => void,
  ): void {
    this.watchTimer = setInterval(() => {
      if (!active() || !this.awaitingRestart || this.handoffQueued) return;
      if (!this.restartedWalHasFrames(this.opts.refreshFrames)) return;
      this.handoffQueued = true;
      void serialized(() => {
        if (this.awaitingRestart) this.moveReadAfterRestart();
      })
        .catch(report)
        .finally(() => {
          this.handoffQueued = false;
        });
    }, this.opts.checkpointCheckMs);
    this.watchTimer.unref();
  }

  stopWatching(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
  }

  /**
   * True when the WAL header has other salts than the last copied frame (it restarted) and the
   * new generation has at least `n` frames. Two small reads.
   */
  private restartedWalHasFrames(n: number): boolean {
    const cursor = this.builder.state?.wal;
    const source = this.builder.db.walSource();
    if (!cursor || !source) return false;
    const header = this.builder.walHeader(source);
    if (!header) return false;
    if (header.salt1 === cursor.salt1 && header.salt2 === cursor.salt2) return false;
    return walPositionAt(source, header, walFrameOffset(n, header.pageSize)) !== null;
  }

  /**
   * Handoff without copying first. Safe only from an epoch whose read mark was not past the
   * copied end: if the new read transaction lands in the "database file only" slot, its mark
   * equals the backfilled end, which is at most that old mark (nothing was copied beyond it, so
   * nothing can be lost), or the WAL already restarted and no further backfill (hence no further
   * restart) is possible while it is held. The allowed restart carries over.
   */
  private moveReadAfterRestart(): void {
    const db = this.builder.db;
    this.awaitingRestart = false;
    if (this.markCopiedEpoch !== db.epoch) return;
    const allowed = this.builder.restartAllowedEpoch === db.epoch;
    db.handoffRead();
    if (allowed) this.builder.restartAllowedEpoch = db.epoch;
  }

  /**
   * Moves the read transaction to the end of the WAL right after a sync copied every committed
   * frame, so the application's checkpoints can backfill what was copied. If the new read
   * transaction lands in the "database file only" slot, everything was backfilled and its mark
   * is at most the copied end, so a WAL restart during its epoch is continuous; if the WAL header
   * shows a restart already, it happened during the previous epoch and is allowed only if that
   * epoch allowed it.
   */
  moveReadAfterSync(): void {
    const builder = this.builder;
    const db = builder.db;
    const cursor = builder.state?.wal;
    if (!cursor || builder.snapshotReason) return;
    const allowed = builder.restartAllowedEpoch === db.epoch;
    db.handoffRead();
    const header = builder.walHeader();
    const sameGeneration = header !== null && header.salt1 === cursor.salt1 && header.salt2 === cursor.salt2;
    if (sameGeneration || allowed) builder.restartAllowedEpoch = db.epoch;
  }

  maybeCheckpoint(): void {
    const source = this.builder.db.walSource();
    const header = this.builder.walHeader(source);
    if (!source || !header) return;
    // The file keeps its largest size across restarts, so its size only bounds TRUNCATE.
    const fileFrames = Math.floor((source.size() - WAL_HEADER_SIZE) / walFrameSize(header.pageSize));
    if (fileFrames >= this.opts.truncateCheckpointPages) this.run('TRUNCATE');
    else if (this.framesSinceCheckpoint >= this.opts.minCheckpointPages) this.run('PASSIVE');
    else if (
      this.syncedSinceCheckpoint &&
      Date.now() - this.lastCheckpointAt >= this.opts.checkpointIntervalMs
    ) {
      this.run('PASSIVE');
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
  run(mode: CheckpointMode): void {
    const builder = this.builder;
    const db = builder.db;
    if (mode === 'PASSIVE') {
      db.checkpoint('PASSIVE');
      if (!db.acquireBarrier()) {
        this.opts.debug?.('checkpoint skipped: the database is busy');
        return;
      }
      try {
        builder.syncLocal();
        db.endRead();
        try {
          const r = db.checkpoint('PASSIVE');
          this.opts.onCheckpoint({ mode, ...r });
        } finally {
          db.beginRead();
        }
        this.markCopiedEpoch = db.epoch;
        this.awaitingRestart = true;
        if (!builder.snapshotReason) builder.restartAllowedEpoch = db.epoch;
      } finally {
        db.releaseBarrier();
      }
    } else {
      builder.syncLocal();
      db.endRead();
      try {
        const r = db.checkpoint('TRUNCATE');
        this.opts.onCheckpoint({ mode, ...r });
      } finally {
        db.beginRead();
      }
      builder.snapshotReason = 'after a TRUNCATE checkpoint';
    }
    this.opts.onCheckpointed();
    this.lastCheckpointAt = Date.now();
    this.syncedSinceCheckpoint = false;
    this.framesSinceCheckpoint = 0;
  }
}
