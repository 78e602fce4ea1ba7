/**
 * One replicator per database (issue 10, "two replicas of one database"): `replicate app.db A`
 * and `replicate app.db B` at once would share `.app.db-ltxvfs/state.json` and the staged L0
 * files. The second is refused with WRITER_LOCKED naming the holder's pid and replica, before
 * it creates anything; a lock left by a process killed with -9 is taken over. And `replicate` on
 * a database that does not exist creates nothing. Real child processes of the built CLI.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replicator } from '../src/writer/index.js';
import { rejection } from './support/rejection.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

let tmp: TempDir;
const children: ChildProcess[] = [];
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-local-lock-');
});
afterAll(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await tmp.cleanup();
});

function database(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const dbPath = join(dir, 'app.db');
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  db.prepare('INSERT INTO t (v) VALUES (?)').run('first');
  db.close();
  return dbPath;
}

function once(dbPath: string, replica: string) {
  return spawnSync(process.execPath, [cli, 'replicate', dbPath, replica, '--once', '--no-compaction'], {
    encoding: 'utf8',
  });
}

/** `replicate db replica` in the background, resolved once its first L0 is in the replica. */
async function continuous(dbPath: string, replica: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [cli, 'replicate', dbPath, replica, '--sync-interval', '100ms'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  const first = join(replica, 'ltx', '0', '0000000000000001-0000000000000001.ltx');
  while (!existsSync(first)) {
    if (child.exitCode !== null) throw new Error(`replicate exited ${child.exitCode}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('one replicator per database', () => {
  it('a second replicate of the same database (another replica, or the same) is refused naming the holder; after it stops, the other runs', async () => {
    const dir = join(tmp.dir, 'two');
    const dbPath = database(dir);
    const replicaA = join(dir, 'A');
    const replicaB = join(dir, 'B');
    const a = await continuous(dbPath, replicaA);
    try {
      for (const replica of [replicaB, replicaA]) {
        const r = once(dbPath, replica);
        expect(r.status, r.stderr).toBe(1);
        expect(r.stderr).toContain('ltxvfs: WRITER_LOCKED:');
        expect(r.stderr).toContain(`${dbPath} is already being replicated by process ${a.pid}`);
        expect(r.stderr).toContain(`(to file://${replicaA}`);
      }
      // Refused before anything was created for B.
      expect(existsSync(replicaB)).toBe(false);
      const lock = JSON.parse(readFileSync(join(dir, '.app.db-ltxvfs', 'writer.lock'), 'utf8')) as {
        pid: number;
      };
      expect(lock.pid).toBe(a.pid);
    } finally {
      a.kill('SIGTERM');
    }
    expect(await exited(a)).toBe(0);
    expect(existsSync(join(dir, '.app.db-ltxvfs', 'writer.lock'))).toBe(false);
    const b = once(dbPath, replicaB);
    expect(b.status, b.stderr).toBe(0);
  });

  it('a lock left by a replicator killed with -9 is taken over at once', async () => {
    const dir = join(tmp.dir, 'stale');
    const dbPath = database(dir);
    const replica = join(dir, 'R');
    const a = await continuous(dbPath, replica);
    a.kill('SIGKILL');
    await exited(a);
    expect(existsSync(join(dir, '.app.db-ltxvfs', 'writer.lock'))).toBe(true);
    const r = once(dbPath, replica);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('WRITER_LOCKED');
  });

  it('two Replicators of one database in one process: the second is refused until the first stops', async () => {
    const dir = join(tmp.dir, 'in-process');
    const dbPath = database(dir);
    const first = new Replicator({ dbPath, replica: join(dir, 'A'), lease: false });
    await first.start();
    try {
      const err = await rejection(new Replicator({ dbPath, replica: join(dir, 'B'), lease: false }).start());
      expect(err.code).toBe('WRITER_LOCKED');
      expect(err.message).toContain(`process ${process.pid}`);
    } finally {
      await first.stop();
    }
    const second = new Replicator({ dbPath, replica: join(dir, 'B'), lease: false });
    await second.start();
    await second.stop();
  });

  it('replicate on a database that does not exist: WRITER_DB naming it, and nothing is created', () => {
    const dir = join(tmp.dir, 'missing');
    mkdirSync(dir);
    const dbPath = join(dir, 'nope.db');
    const replica = join(dir, 'replica');
    const r = once(dbPath, replica);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(
      `ltxvfs: WRITER_DB: database ${dbPath} does not exist (nothing was created)`,
    );
    expect(existsSync(replica)).toBe(false);
    expect(existsSync(join(dir, '.nope.db-ltxvfs'))).toBe(false);
    expect(existsSync(dbPath)).toBe(false);
  });
});
