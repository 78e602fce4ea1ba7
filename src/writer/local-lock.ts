import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LtxvfsError } from '../util/errors.js';
import { isProcessAlive } from '../util/process.js';

const LOCK_FILE = 'writer.lock';
/** An unreadable lock younger than this may be one a starting replicator has not written yet. */
const HALF_WRITTEN_GRACE_MS = 2000;

/** Who holds the local lock (the file's content). */
export interface LocalLockHolder {
  pid: number;
  host: string;
  replica: string;
  since: string;
}

/** Lock files this process holds (a pid alone cannot tell two replicators of one process apart). */
const heldHere = new Set<string>();

/**
 * One replicator per database on this machine: an O_EXCL file `writer.lock` in `.<db>-ltxvfs/`
 * naming the process and its replica. Two replicators of one database (to the same replica or
 * two different ones) would share `state.json` and the staged L0 files and corrupt each other's
 * TXID sequence; the second is refused with WRITER_LOCKED naming the holder. A lock whose
 * process is gone (kill -9, crash) is taken over at once; the pid is checked with signal 0 on
 * this host, and a lock written on another host (a shared file system) is never taken over.
 */
export class LocalLock {
  private released = false;

  private constructor(readonly path: string) {}

  static acquire(dir: string, dbPath: string, replica: string): LocalLock {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, LOCK_FILE);
    const me: LocalLockHolder = {
      pid: process.pid,
      host: hostname(),
      replica,
      since: new Date().toISOString(),
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      let fd: number;
      try {
        fd = openSync(path, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new LtxvfsError('WRITER_DB', `cannot create ${path}: ${(err as Error).message}`, {
            cause: err,
          });
        }
        const holder = readHolder(path);
        if (!holder && ageMs(path) < HALF_WRITTEN_GRACE_MS) {
          // Just created by a replicator starting right now, not yet written: look again.
          sleepSync(20);
          attempt--;
          continue;
        }
        if (holder && isAlive(holder, path)) {
          throw new LtxvfsError(
            'WRITER_LOCKED',
            `${dbPath} is already being replicated by process ${holder.pid} on ${holder.host} (to ${holder.replica}, since ${holder.since}); one replicator per database: stop that one first (lock ${path})`,
          );
        }
        // Its process is gone: move the file aside (atomic, so of two racing takers one wins).
        const aside = `${path}.${process.pid}.stale`;
        try {
          renameSync(path, aside);
          const moved = readHolder(aside);
          if (moved?.pid !== holder?.pid || moved?.since !== holder?.since) {
            // Another process took it over between our look and the rename: give it back.
            linkSync(aside, path);
          }
          unlinkSync(aside);
        } catch {
          // another process took it over first; look again
        }
        continue;
      }
      try {
        writeSync(fd, `${JSON.stringify(me)}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      heldHere.add(path);
      return new LocalLock(path);
    }
    throw new LtxvfsError(
      'WRITER_LOCKED',
      `${dbPath}: could not take ${path} (other replicators keep racing for it)`,
    );
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.path);
    try {
      unlinkSync(this.path);
    } catch {
      // gone already; nothing to release
    }
  }
}

function readHolder(path: string): LocalLockHolder | null {
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<LocalLockHolder>;
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null;
    return {
      pid: parsed.pid,
      host: parsed.host,
      replica: String(parsed.replica ?? 'an unknown replica'),
      since: String(parsed.since ?? 'an unknown time'),
    };
  } catch {
    // Unreadable or empty: a process died between creating and writing it.
    return null;
  }
}

function isAlive(holder: LocalLockHolder, path: string): boolean {
  if (holder.host !== hostname()) return true;
  if (holder.pid === process.pid) return heldHere.has(path);
  return isProcessAlive(holder.pid);
}

function ageMs(path: string): number {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
