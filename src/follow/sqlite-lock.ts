import type BetterSqlite3 from 'better-sqlite3';
import { type BetterSqlite3Constructor, loadBetterSqlite3 as loadShared } from '../util/better-sqlite3.js';

/** better-sqlite3, loaded on first use: a read-only install that never follows need not have it. */
export function loadBetterSqlite3(): BetterSqlite3Constructor {
  return loadShared('follow mode (restore --follow, follow())');
}

/**
 * SQLite's own lock on a database file, held through a SQLite connection so that every other
 * connection, in any process, honours it: `BEGIN EXCLUSIVE` in rollback-journal mode takes the
 * PENDING then EXCLUSIVE lock, so new readers wait (their busy timeout) and the lock is granted
 * once the readers in flight are done.
 *
 * Opening the connection (and each BEGIN) also plays back a hot journal a crashed apply left.
 *
 * POSIX record locks belong to the process, not to a descriptor, and closing ANY descriptor of
 * the file drops all of them: the caller must write through one descriptor it keeps open for as
 * long as this lock object lives, and must close it only after close().
 */
export class SqliteFileLock {
  private readonly db: BetterSqlite3.Database;

  constructor(path: string, busyTimeoutMs: number) {
    const Database = loadBetterSqlite3();
    this.db = new Database(path, { fileMustExist: true });
    this.db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    // A connection that never writes still checks the header; reading the schema here also
    // makes the connection roll back a hot journal now rather than at the first apply.
    this.db.prepare('SELECT count(*) FROM sqlite_schema').get();
  }

  /** Runs `fn` while this process holds SQLite's EXCLUSIVE lock on the file. */
  exclusive<T>(fn: () => T): T {
    try {
      this.db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      // Readers kept the lock past the busy timeout: nothing was touched, the caller retries.
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
    try {
      return fn();
    } finally {
      // Nothing was written through this connection, so COMMIT only releases the lock.
      this.db.exec('COMMIT');
    }
  }

  /** The database's journal mode as SQLite reads it from the file. */
  journalMode(): string {
    return String(this.db.pragma('journal_mode', { simple: true }));
  }

  close(): void {
    this.db.close();
  }
}
