import { lockPgno, type PageEncoding } from '../ltx/index.js';
import { SpoolFile } from '../storage/index.js';
import { crashPoint } from '../util/crash-point.js';
import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import {
  readWalHeader,
  scanWal,
  WAL_HEADER_SIZE,
  type WalHeader,
  type WalPosition,
  type WalSource,
  walPositionAt,
  walStartPosition,
} from '../wal/index.js';
import { type DbFingerprint, decideSync } from './continuity.js';
import { encodeLtxChunks, litestreamHeader } from './l0-file.js';
import type { LocalState, WalCursor, WriterState } from './local-state.js';
import { fullPages, incrementalPages, newestFramesBefore, WalChangedError } from './page-source.js';
import { PrimaryDatabase } from './primary-db.js';

export interface SyncedEvent {
  txid: Txid;
  snapshot: boolean;
  reason?: string;
  /** Set when this L0 has another page size than the one before it (it then holds every page). */
  pageSizeChanged?: true;
  pages: number;
  bytes: number;
  commit: number;
}

export interface L0BuilderOptions {
  dbPath: string;
  local: LocalState;
  encoding: PageEncoding;
  /** One L0 file covers at most about this many WAL bytes (split at commits). */
  maxSyncBytes: number;
  busyTimeoutMs: number;
  info(line: string): void;
  warn(line: string): void;
  /** Throws when the lease is lost; called before each sync. */
  checkLease(): void;
  /** WAL frames read by an incremental step (they count towards the next checkpoint). */
  onFramesRead(frames: number): void;
  /** An L0 file was staged (fsynced, renamed, named by state.json). */
  onStaged(event: SyncedEvent, timestamp: number): void;
}

/**
 * Turns what the primary committed since the last L0 into the next L0 file: an incremental one
 * when the continuity decision (`decideSync`) proves the new frames follow the last copied one,
 * else a snapshot-style one with every page. Owns the primary database connection (reopened when
 * the file is replaced) and the replication position (`state`, persisted in `state.json`).
 */
export class L0Builder {
  /** The last staged L0: TXID, page size, database size, WAL cursor; undefined before the first. */
  state: WriterState | undefined;
  /** Why the next sync must be a snapshot-style L0, if it must. */
  snapshotReason: string | undefined;
  /** The read-transaction epoch during which one WAL restart is provably continuous. */
  restartAllowedEpoch = -1;
  private primary: PrimaryDatabase;

  constructor(private readonly opts: L0BuilderOptions) {
    this.primary = PrimaryDatabase.open(opts.dbPath, { busyTimeoutMs: opts.busyTimeoutMs });
  }

  get db(): PrimaryDatabase {
    return this.primary;
  }

  close(): void {
    this.primary.close();
  }

  /** The WAL's header, or null when there is none (or SQLite would ignore it). */
  walHeader(source: WalSource | null = this.primary.walSource()): WalHeader | null {
    return readWalHeader(source, this.primary.walPath);
  }

  /** Startup: make local state and staged files agree with what the replica holds. */
  reconcile(remoteMax: Txid): void {
    const local = this.opts.local;
    const loaded = local.load();
    const db = this.primary;
    if (!loaded) {
      local.discardBeyond(0);
      this.state = undefined;
      this.startFrom(remoteMax, remoteMax === 0 ? 'first sync' : 'no local state; continuing the replica');
      return;
    }
    local.discardBeyond(loaded.txid);
    if (loaded.txid < remoteMax) {
      this.opts.warn(
        `replica is ahead of local state (replica ${formatTxid(remoteMax)}, local ${formatTxid(loaded.txid)}): continuing after the replica with a snapshot`,
      );
      local.discardBeyond(0);
      this.startFrom(remoteMax, 'replica ahead of local state');
      return;
    }
    const staged = new Set(local.listStaged());
    for (let t = remoteMax + 1; t <= loaded.txid; t++) {
      if (!staged.has(t)) {
        this.opts.warn(
          `staged L0 ${formatTxid(t)} is missing and not in the replica: rewinding to ${formatTxid(remoteMax)} with a snapshot`,
        );
        local.discardBeyond(0);
        this.startFrom(remoteMax, 'staged files lost');
        return;
      }
    }
    for (const t of staged) if (t <= remoteMax) local.removeStaged(t);
    this.state = loaded;
    if (loaded.db.ino !== db.identity.ino || loaded.db.dev !== db.identity.dev) {
      this.snapshotReason = 'database file replaced while the replicator was stopped';
    }
  }

  private startFrom(txid: Txid, reason: string): void {
    this.state =
      txid === 0
        ? undefined
        : { version: 1, txid, pageSize: 0, commit: 0, wal: null, db: { ...this.primary.identity } };
    this.snapshotReason = reason;
  }

  /**
   * Lets the application's WAL go without copying it (staging is full): no read transaction is
   * held (one at any WAL read mark would keep the WAL from restarting), a PASSIVE checkpoint
   * backfills what it can, and the next L0 is a snapshot-style one, since frames may now be
   * checkpointed unseen. The next syncLocal() takes a read transaction again.
   */
  releaseWithoutCopying(reason: string): void {
    this.opts.checkLease();
    this.snapshotReason ??= reason;
    this.primary.endRead();
    this.primary.checkpoint('PASSIVE');
  }

  /** Stages L0 files until the WAL's committed frames are all copied; returns the newest TXID. */
  syncLocal(): Txid {
    this.opts.checkLease();
    this.primary.beginRead();
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

  /** One L0 file at most; true when more committed frames remain (size limit). */
  private syncStep(): boolean {
    if (this.primary.replaced()) {
      this.opts.warn(`database file ${this.opts.dbPath} was replaced: reopening and taking a snapshot`);
      this.primary.close();
      this.primary = PrimaryDatabase.open(this.opts.dbPath, { busyTimeoutMs: this.opts.busyTimeoutMs });
      this.snapshotReason = 'database file replaced';
    }
    const db = this.primary;
    const source = db.walSource();
    const header = this.walHeader(source);
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
        if (!source || !header || !state) return false;
        if (decision.from === 'cursor' && at)
          return this.incrementalStep(state, source, header, at, fingerprint);
        return this.incrementalStep(state, source, header, walStartPosition(header), fingerprint);
    }
  }

  private incrementalStep(
    state: WriterState,
    source: WalSource,
    header: WalHeader,
    from: WalPosition,
    file: DbFingerprint,
  ): boolean {
    const db = this.primary;
    const scan = scanWal(source, header, from, { maxBytes: this.opts.maxSyncBytes });
    if (scan.commit === null) return false;
    this.opts.onFramesRead(scan.frames);
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
    const db = this.primary;
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
    const txid = (this.state?.txid ?? 0) + 1;
    const previousPageSize = this.state?.pageSize ?? 0;
    const pageSizeChanged = previousPageSize !== 0 && previousPageSize !== l0.pageSize;
    const timestamp = Date.now();
    const header = litestreamHeader({
      minTxid: txid,
      maxTxid: txid,
      pageSize: l0.pageSize,
      commit: l0.commit,
      timestamp,
      wal: l0.wal,
    });
    const bytes = this.opts.local.stageL0(txid, encodeLtxChunks(header, l0.pages, this.opts.encoding));
    crashPoint('after-stage');
    this.state = {
      version: 1,
      txid,
      pageSize: l0.pageSize,
      commit: l0.commit,
      wal: l0.cursor,
      db: { ...this.primary.identity },
      file: l0.file,
    };
    this.opts.local.save(this.state);
    crashPoint('after-state');
    if (l0.snapshot && txid > 1) this.opts.info(`L0 ${formatTxid(txid)} is a full snapshot: ${l0.reason}`);
    this.opts.onStaged(
      {
        txid,
        snapshot: l0.snapshot,
        pages: l0.pageCount,
        bytes,
        commit: l0.commit,
        ...(l0.reason ? { reason: l0.reason } : {}),
        ...(pageSizeChanged ? { pageSizeChanged: true as const } : {}),
      },
      timestamp,
    );
  }

  /**
   * A full snapshot `1-N` of the database at the last staged TXID N, spooled to a temp file
   * beside the local state; null when nothing was replicated yet. Call right after `syncLocal`
   * (same read transaction), so the pages are exactly those of TXID N.
   */
  buildSnapshotFile(): { txid: Txid; file: SpoolFile; timestamp: number } | null {
    const db = this.primary;
    const state = this.state;
    if (!state || state.txid === 0) return null;
    const source = db.walSource();
    let header = this.walHeader(source);
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
    const file = new SpoolFile(this.opts.local.dir, 'snapshot');
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
