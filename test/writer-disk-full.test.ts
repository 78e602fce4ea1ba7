/**
 * The replica's file system is full (issue 10, defect 5) or read-only, on a real small tmpfs: `replicate
 * --once` fails in bounded time with STORAGE_FULL naming the file, exits non-zero and leaves
 * nothing half-written in the replica; continuous replication keeps retrying with one warning
 * per failure streak and catches up once there is space again; a read-only one is
 * STORAGE_READ_ONLY naming the path. Needs root (mount); skipped with
 * the reason printed otherwise.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replicator } from '../src/writer/index.js';
import { expectRestoreEquals } from './support/restore-compare.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

let tmp: TempDir;
const mounted: string[] = [];
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-disk-full-');
});
afterAll(async () => {
  for (const dir of mounted) {
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
  }
  await tmp.cleanup();
});

/** A fresh tmpfs of `size` at a new directory; a string is the reason it could not be had. */
function mountTmpfs(name: string, size: string): string | { skip: string } {
  const dir = join(tmp.dir, name);
  mkdirSync(dir);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0)
    return { skip: `cannot mount a tmpfs (needs root): ${r.stderr.trim() || r.error?.message}` };
  mounted.push(dir);
  return dir;
}

function remount(dir: string, options: string): void {
  const r = spawnSync('mount', ['-o', `remount,${options}`, dir], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

function grow(dir: string, size: string): void {
  const r = spawnSync('mount', ['-o', `remount,size=${size}`, dir], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

/** A WAL-mode database of about 3 MiB of incompressible rows (the tmpfs holds 1 MiB). */
function bigDatabase(path: string): void {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
  const ins = db.prepare('INSERT INTO t (v) VALUES (randomblob(1000))');
  db.transaction(() => {
    for (let i = 0; i < 3000; i++) ins.run();
  })();
  db.close();
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name));
}

/** The rows both sides of a restore are compared by. */
const ROWS = 'SELECT id, hex(v) AS v FROM t ORDER BY id';

describe('the replica file system is full (a real 1 MiB tmpfs)', () => {
  it('--once fails with STORAGE_FULL naming the file in bounded time, exit 1, nothing half-written; the next run uploads once there is space', (ctx) => {
    const mount = mountTmpfs('once', '1m');
    if (typeof mount !== 'string') return ctx.skip(mount.skip);
    const dbPath = join(tmp.dir, 'once.db');
    bigDatabase(dbPath);
    const replica = join(mount, 'replica');

    const started = Date.now();
    // Without the fix this retried for ever; the spawn timeout ends it then.
    const r = spawnSync(process.execPath, [cli, 'replicate', dbPath, replica, '--once'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const elapsed = Date.now() - started;
    expect(r.signal, 'replicate --once was still retrying after 60 s').toBeNull();
    expect(r.status, r.stderr).toBe(1);
    expect(r.stderr).toContain(
      `ltxvfs: STORAGE_FULL: write ${join(replica, 'ltx', '0', '0000000000000001-0000000000000001.ltx')}: no space left on the file system (ENOSPC)`,
    );
    expect(elapsed).toBeLessThan(30_000);
    // Nothing half-written in the replica: no LTX file, no temp file (the digests sidecar of a
    // large object is written before the object by design, and lock.json is released); the L0
    // waits locally.
    const left = filesUnder(replica);
    expect(left.filter((f) => f.endsWith('.ltx') || f.includes('.tmp'))).toEqual([]);
    expect(left.filter((f) => !f.endsWith('lock.json') && !f.includes(join('ltxvfs', 'digests')))).toEqual(
      [],
    );
    expect(
      existsSync(join(tmp.dir, '.once.db-ltxvfs', 'ltx', '0', '0000000000000001-0000000000000001.ltx')),
    ).toBe(true);

    grow(mount, '16m');
    const again = spawnSync(process.execPath, [cli, 'replicate', dbPath, replica, '--once'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(again.status, again.stderr).toBe(0);
    expectRestoreEquals(dbPath, replica, join(tmp.dir, 'once-restored.db'), ROWS);
  });

  it('continuous: retries with one warning per failure streak, the app keeps writing, and it catches up when space frees', async (ctx) => {
    const mount = mountTmpfs('continuous', '1m');
    if (typeof mount !== 'string') return ctx.skip(mount.skip);
    const dbPath = join(tmp.dir, 'continuous.db');
    bigDatabase(dbPath);
    const warnings: string[] = [];
    const replicator = new Replicator({
      dbPath,
      replica: join(mount, 'replica'),
      syncIntervalMs: 20,
      retryMinDelayMs: 5,
      retryMaxDelayMs: 20,
      logger: { info() {}, warn: (line) => warnings.push(line), error: (line) => warnings.push(line) },
    });
    const retryCodes: unknown[] = [];
    const manyRetries = new Promise<void>((resolve) => {
      replicator.on('retry', (info: { error: unknown }) => {
        retryCodes.push((info.error as { code?: string }).code);
        if (retryCodes.length === 30) resolve();
      });
    });
    await replicator.start();
    try {
      const app = new Database(dbPath);
      const ins = app.prepare('INSERT INTO t (v) VALUES (randomblob(100))');
      for (let i = 0; i < 5; i++) ins.run();
      await manyRetries;
      for (let i = 0; i < 5; i++) ins.run();
      app.close();

      expect(new Set(retryCodes)).toEqual(new Set(['STORAGE_FULL']));
      const failures = warnings.filter((w) => w.includes('failed: STORAGE_FULL'));
      expect(failures, warnings.join('\n')).toHaveLength(1);
      expect(failures[0]).toContain(join(mount, 'replica', 'ltx', '0'));

      grow(mount, '32m');
      await replicator.sync();
      expect(warnings.filter((w) => /succeeded after \d+ failed attempt/.test(w))).toHaveLength(1);
      expect(warnings.filter((w) => w.includes('failed: STORAGE_FULL'))).toHaveLength(1);
    } finally {
      await replicator.stop();
    }
    expectRestoreEquals(dbPath, join(mount, 'replica'), join(tmp.dir, 'continuous-restored.db'), ROWS);
  });
});

describe('the replica file system is read-only (a real tmpfs remounted ro)', () => {
  it('replicate names the path with STORAGE_READ_ONLY, for a replica directory still to create and for one that exists', (ctx) => {
    const mount = mountTmpfs('read-only', '1m');
    if (typeof mount !== 'string') return ctx.skip(mount.skip);
    mkdirSync(join(mount, 'existing'));
    remount(mount, 'ro');
    const dbPath = join(tmp.dir, 'read-only.db');
    const db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
    db.close();
    const run = (replica: string) =>
      spawnSync(process.execPath, [cli, 'replicate', dbPath, replica, '--once'], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    // Was STORAGE_NOT_FOUND ("create directory ... not found"): a recursive mkdir says ENOENT.
    const missing = run(join(mount, 'new', 'replica'));
    expect(missing.status, missing.stderr).toBe(1);
    expect(missing.stderr.trim()).toBe(
      `ltxvfs: STORAGE_READ_ONLY: create directory ${join(mount, 'new', 'replica')}: the file system is read-only (EROFS)`,
    );
    const existing = run(join(mount, 'existing'));
    expect(existing.status, existing.stderr).toBe(1);
    expect(existing.stderr).toContain(
      `ltxvfs: STORAGE_READ_ONLY: lock ${join(mount, 'existing', 'lock.json')}`,
    );
    expect(readdirSync(join(mount, 'existing'))).toEqual([]);
  });
});
