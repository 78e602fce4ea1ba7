import { randomInt } from 'node:crypto';
import {
  closeSync,
  fdatasyncSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readSync,
  rmSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { lockPgno } from '../ltx/index.js';
import { fsyncDirSync, writeAllSync } from '../util/atomic-file.js';
import { crashPoint } from '../util/crash-point.js';
import { LtxvfsError } from '../util/errors.js';
import { type JournalPage, journalHeader, journalRecord } from './journal.js';
import { SqliteFileLock } from './sqlite-lock.js';

/** One step of the file from one whole state to the next. */
export interface FileChange {
  pageSize: number;
  /** Size of the new state in pages. */
  commit: number;
  /** Pages that change, ascending, without the lock page; page 1 is always among them. */
  pgnos: readonly number[];
  /** The new bytes of one of `pgnos` (page 1 already patched for rollback mode). */
  page(pgno: number): Uint8Array;
}

export interface ApplyTiming {
  /** Waiting for SQLite's EXCLUSIVE lock (readers finishing). */
  waitMs: number;
  /** From holding the lock to releasing it: journal, pages, syncs. */
  holdMs: number;
  /** Pages saved in the journal. */
  journaled: number;
}

/** The path SQLite uses for a database's rollback journal. */
export function journalPath(path: string): string {
  return `${path}-journal`;
}

/**
 * The followed database file: one descriptor for reads and writes, kept open as long as the
 * SQLite lock connection is (closing any descriptor of the file would drop the process's POSIX
 * locks, SQLite's included), and the apply protocol of a rollback-journal commit.
 */
export class FollowedFile {
  private readonly fd: number;
  private readonly lock: SqliteFileLock;
  private closed = false;

  /** Opens the file (a hot journal left by a crash is rolled back by SQLite here). */
  constructor(
    readonly path: string,
    busyTimeoutMs: number,
  ) {
    this.lock = new SqliteFileLock(path, busyTimeoutMs);
    try {
      this.fd = openSync(path, 'r+');
    } catch (err) {
      this.lock.close();
      throw err;
    }
  }

  size(): number {
    return fstatSync(this.fd).size;
  }

  readPage(pgno: number, pageSize: number): Uint8Array {
    const out = new Uint8Array(pageSize);
    let done = 0;
    while (done < pageSize) {
      const n = readSync(this.fd, out, done, pageSize - done, (pgno - 1) * pageSize + done);
      if (n === 0) break;
      done += n;
    }
    return out;
  }

  /**
   * Moves the file to the new state the way SQLite commits in rollback-journal mode, under
   * SQLite's EXCLUSIVE lock: save the old pages (and the old size) in `<file>-journal`, sync it
   * and its directory, write the new pages, cut the file, sync it, delete the journal (the commit
   * point). A failure before the delete puts the old pages back; a crash leaves a hot journal
   * that SQLite rolls back on the next open.
   */
  apply(change: FileChange, oldPageSize: number): ApplyTiming {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `${this.path}: follower is closed`);
    const waitStart = performance.now();
    let lockedAt = 0;
    let journaled = 0;
    this.lock.exclusive(() => {
      lockedAt = performance.now();
      const oldSize = this.size();
      const oldCommit = Math.floor(oldSize / oldPageSize);
      const saved = this.oldPages(change, oldPageSize, oldCommit);
      journaled = saved.length;
      try {
        this.writeJournal(saved, oldCommit, oldPageSize);
      } catch (err) {
        // Nothing of the database was touched yet; a partial journal must not be left behind.
        rmSync(journalPath(this.path), { force: true });
        throw err;
      }
      try {
        const lock = lockPgno(change.pageSize);
        crashPoint('follow-journal-synced');
        const half = Math.floor(change.pgnos.length / 2);
        for (const [i, pgno] of change.pgnos.entries()) {
          if (i === half) crashPoint('follow-half-written');
          writeAllSync(this.fd, change.page(pgno), (pgno - 1) * change.pageSize);
        }
        if (lock <= change.commit && (change.pageSize !== oldPageSize || lock > oldCommit)) {
          writeAllSync(this.fd, new Uint8Array(change.pageSize), (lock - 1) * change.pageSize);
        }
        ftruncateSync(this.fd, change.commit * change.pageSize);
        fdatasyncSync(this.fd);
        crashPoint('follow-pages-synced');
      } catch (err) {
        this.undo(saved, oldSize, oldPageSize);
        throw err;
      }
      rmSync(journalPath(this.path));
      crashPoint('follow-committed');
    });
    const end = performance.now();
    return { waitMs: lockedAt - waitStart, holdMs: end - lockedAt, journaled };
  }

  /** The pages the change overwrites or cuts off, as they are now. */
  private oldPages(change: FileChange, oldPageSize: number, oldCommit: number): JournalPage[] {
    const lock = lockPgno(oldPageSize);
    const pgnos: number[] = [];
    if (change.pageSize !== oldPageSize) {
      for (let p = 1; p <= oldCommit; p++) if (p !== lock) pgnos.push(p);
    } else {
      for (const p of change.pgnos) if (p <= oldCommit) pgnos.push(p);
      for (let p = change.commit + 1; p <= oldCommit; p++) if (p !== lock) pgnos.push(p);
    }
    return pgnos.map((pgno) => ({ pgno, data: this.readPage(pgno, oldPageSize) }));
  }

  private writeJournal(saved: readonly JournalPage[], oldCommit: number, pageSize: number): void {
    const nonce = randomInt(0, 0x1_0000_0000);
    const parts = [journalHeader(saved.length, nonce, oldCommit, pageSize)];
    for (const page of saved) parts.push(journalRecord(page, nonce));
    const path = journalPath(this.path);
    const fd = openSync(path, 'w');
    try {
      writeAllSync(fd, Buffer.concat(parts), 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    fsyncDirSync(dirname(this.path));
  }

  /** Puts the saved pages back after a failed write; if even that fails the hot journal stays. */
  private undo(saved: readonly JournalPage[], oldSize: number, pageSize: number): void {
    try {
      for (const { pgno, data } of saved) writeAllSync(this.fd, data, (pgno - 1) * pageSize);
      ftruncateSync(this.fd, oldSize);
      fdatasyncSync(this.fd);
      rmSync(journalPath(this.path));
    } catch {
      // The journal is still there and hot: SQLite rolls it back at the next open.
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // The lock connection first: the descriptor may close only once no lock is held through it.
    this.lock.close();
    closeSync(this.fd);
  }
}
