import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import type Database from 'better-sqlite3';
import { loadBetterSqlite3 } from '../util/better-sqlite3.js';
import { LtxvfsError } from '../util/errors.js';
import { FileWalSource } from '../wal/index.js';
import type { DbFingerprint } from './continuity.js';

export interface FileIdentity {
  dev: number;
  ino: number;
}

export type CheckpointMode = 'PASSIVE' | 'TRUNCATE';

export interface CheckpointResult {
  busy: boolean;
  /** Frames in the WAL, and frames backfilled into the database file. */
  log: number;
  checkpointed: number;
}

/**
 * The primary database as the replicator sees it: two reader connections, one of which always
 * holds the long-lived read transaction (so the WAL cannot be restarted under frames not yet
 * copied; the other takes over in `handoffRead`, so there is never a moment without one), a
 * third connection used only as a write barrier around checkpoints, and raw positional reads of
 * the database file for pages that are not in the WAL.
 */
export class PrimaryDatabase {
  readonly walPath: string;
  private reader: Database.Database;
  /** The reader not holding the long read transaction (opened on first handoff). */
  private spare: Database.Database | undefined;
  private barrier: Database.Database | undefined;
  private dbFd: number;
  private wal: FileWalSource | undefined;
  private walIdentity: FileIdentity | undefined;
  /** The current read transaction's epoch (process-wide unique, also across reopens). */
  private epochCounter = 0;
  private static epochs = 0;
  readonly identity: FileIdentity;

  private constructor(
    readonly dbPath: string,
    private readonly busyTimeoutMs: number,
  ) {
    this.walPath = `${dbPath}-wal`;
    if (!existsSync(dbPath)) throw new LtxvfsError('WRITER_DB', `database ${dbPath} does not exist`);
    this.reader = this.openReader();
    try {
      const mode = String(this.reader.pragma('journal_mode = WAL', { simple: true })).toLowerCase();
      if (mode !== 'wal') {
        throw new LtxvfsError(
          'WRITER_DB',
          `database ${dbPath}: could not switch to WAL mode (journal_mode is ${mode})`,
        );
      }
    } catch (err) {
      this.reader.close();
      if (err instanceof LtxvfsError) throw err;
      throw new LtxvfsError('WRITER_DB', `database ${dbPath}: ${(err as Error).message}`, { cause: err });
    }
    this.dbFd = openSync(dbPath, 'r');
    const st = fstatSync(this.dbFd);
    this.identity = { dev: st.dev, ino: st.ino };
    this.beginRead();
  }

  static open(dbPath: string, options: { busyTimeoutMs?: number } = {}): PrimaryDatabase {
    return new PrimaryDatabase(dbPath, options.busyTimeoutMs ?? 1000);
  }

  /** Which read transaction is current; a restart is provably harmless only within one epoch. */
  get epoch(): number {
    return this.epochCounter;
  }

  beginRead(): void {
    if (this.reader.inTransaction) return;
    startRead(this.reader);
    this.epochCounter = ++PrimaryDatabase.epochs;
  }

  /**
   * Moves the long read transaction to the end of the WAL without a write lock: the spare
   * connection starts its read transaction first, then the old one ends, so some read mark of
   * ours protects the WAL at every moment. Whether the new mark may sit in SQLite's "read only
   * the database file" slot (which lets the next writer restart the WAL) is for the caller to
   * reason about; see Replicator.
   */
  handoffRead(): void {
    if (!this.reader.inTransaction) {
      this.beginRead();
      return;
    }
    if (!this.spare) this.spare = this.openReader();
    startRead(this.spare);
    const old = this.reader;
    this.reader = this.spare;
    this.spare = old;
    this.epochCounter = ++PrimaryDatabase.epochs;
    old.exec('COMMIT');
  }

  endRead(): void {
    if (this.reader.inTransaction) this.reader.exec('COMMIT');
  }

  /** True when the path now names another file than the one opened (replaced or deleted). */
  replaced(): boolean {
    try {
      const st = statSync(this.dbPath);
      return st.ino !== this.identity.ino || st.dev !== this.identity.dev;
    } catch {
      return true;
    }
  }

  /** Size, mtime (ns), identity and a digest of page 1 of the file at the path, as it is now. */
  fingerprint(pageSize: number): DbFingerprint {
    const st = statSync(this.dbPath, { bigint: true });
    const page1 = pageSize > 0 ? this.readPage(1, pageSize) : new Uint8Array(0);
    return {
      size: Number(st.size),
      mtimeNs: st.mtimeNs.toString(),
      dev: Number(st.dev),
      ino: Number(st.ino),
      page1: createHash('sha256').update(page1).digest('hex'),
    };
  }

  fileSize(): number {
    return fstatSync(this.dbFd).size;
  }

  /** Page `pgno` from the database file, zero-filled past its end. */
  readPage(pgno: number, pageSize: number): Uint8Array {
    const out = new Uint8Array(pageSize);
    let done = 0;
    const base = (pgno - 1) * pageSize;
    while (done < pageSize) {
      const n = readSync(this.dbFd, out, done, pageSize - done, base + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /**
   * The database size in pages as SQLite would take it without a WAL: the in-header size when
   * valid (non-zero and the change counter equals version-valid-for), else the file size.
   */
  sizeInPages(pageSize: number): number {
    const head = this.readPage(1, 512);
    const view = new DataView(head.buffer);
    const inHeader = view.getUint32(28);
    const valid = inHeader !== 0 && view.getUint32(24) === view.getUint32(92);
    return valid ? inHeader : Math.floor(this.fileSize() / pageSize);
  }

  /** Page size from the database header (bytes 16-17; 1 means 65536); 0 for an empty file. */
  headerPageSize(): number {
    if (this.fileSize() < 100) return 0;
    const head = this.readPage(1, 512);
    const raw = ((head[16] ?? 0) << 8) | (head[17] ?? 0);
    return raw === 1 ? 65536 : raw;
  }

  /** The -wal file, reopened when the path names a new file; null when there is none. */
  walSource(): FileWalSource | null {
    let st: { ino: number; dev: number };
    try {
      st = statSync(this.walPath);
    } catch {
      this.closeWal();
      return null;
    }
    if (
      !this.wal ||
      !this.walIdentity ||
      this.walIdentity.ino !== st.ino ||
      this.walIdentity.dev !== st.dev
    ) {
      this.closeWal();
      try {
        this.wal = new FileWalSource(this.walPath);
      } catch {
        return null;
      }
      this.walIdentity = this.wal.identity();
    }
    return this.wal;
  }

  /**
   * Takes the database write lock on a second connection (BEGIN IMMEDIATE). While held, no
   * transaction can commit, so the WAL cannot grow. Returns false if it could not be had within
   * the busy timeout.
   */
  acquireBarrier(): boolean {
    if (!this.barrier) {
      this.barrier = new (loadBetterSqlite3('the writer (ltxvfs replicate, Replicator)'))(this.dbPath, {
        fileMustExist: true,
      });
      this.barrier.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      this.barrier.pragma('wal_autocheckpoint = 0');
    }
    if (this.barrier.inTransaction) return true;
    try {
      this.barrier.exec('BEGIN IMMEDIATE');
      return true;
    } catch (err) {
      if ((err as { code?: string }).code?.startsWith('SQLITE_BUSY')) return false;
      throw err;
    }
  }

  releaseBarrier(): void {
    if (this.barrier?.inTransaction) this.barrier.exec('ROLLBACK');
  }

  /**
   * Runs a checkpoint on a reader connection that has no transaction open. With the long read
   * transaction still held, a PASSIVE checkpoint backfills only up to its read mark.
   */
  checkpoint(mode: CheckpointMode): CheckpointResult {
    let conn = this.reader;
    if (conn.inTransaction) {
      if (!this.spare) this.spare = this.openReader();
      conn = this.spare;
    }
    const rows = conn.pragma(`wal_checkpoint(${mode})`) as Array<{
      busy: number;
      log: number;
      checkpointed: number;
    }>;
    const r = rows[0] ?? { busy: 1, log: -1, checkpointed: -1 };
    return { busy: r.busy !== 0, log: r.log, checkpointed: r.checkpointed };
  }

  close(): void {
    this.closeWal();
    try {
      this.releaseBarrier();
      this.barrier?.close();
    } catch {
      // closing is best effort
    }
    try {
      this.endRead();
    } catch {
      // rolled back by close
    }
    this.reader.close();
    this.spare?.close();
    closeSync(this.dbFd);
  }

  private openReader(): Database.Database {
    const Sqlite = loadBetterSqlite3('the writer (ltxvfs replicate, Replicator)');
    let conn: Database.Database;
    try {
      conn = new Sqlite(this.dbPath, { fileMustExist: true });
    } catch (err) {
      throw new LtxvfsError('WRITER_DB', `cannot open database ${this.dbPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      conn.pragma(`busy_timeout = ${this.busyTimeoutMs}`);
      // Only the replicator decides when its connections checkpoint.
      conn.pragma('wal_autocheckpoint = 0');
    } catch (err) {
      conn.close();
      throw new LtxvfsError('WRITER_DB', `database ${this.dbPath}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    return conn;
  }

  private closeWal(): void {
    this.wal?.close();
    this.wal = undefined;
    this.walIdentity = undefined;
  }
}

function startRead(conn: Database.Database): void {
  conn.exec('BEGIN');
  // A read transaction only takes its snapshot (and its WAL read mark) at the first read.
  conn.prepare('SELECT count(*) FROM sqlite_schema').get();
}
