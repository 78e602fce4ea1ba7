/**
 * `ltxvfs query --no-manifest` as a user runs it (a child process of the built CLI): on a replica
 * the ltxvfs writer keeps a manifest in, the default opens from the manifest and the flag opens by
 * listing, which the replica's log (--verbose) says; both print the rows SQLite gives on the
 * primary.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Replicator } from '../src/writer/index.js';
import { runCli } from './support/cli.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

let tmp: TempDir;
let replicaDir: string;
let expected: unknown;
const SQL = 'SELECT id, v FROM t WHERE id IN (3, 777, 1500) ORDER BY id';

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-cli-no-manifest-');
  mkdirSync(join(tmp.dir, 'app'));
  const dbPath = join(tmp.dir, 'app', 'app.db');
  replicaDir = join(tmp.dir, 'replica');
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 2000; id++) insert.run(id, `row ${id} ${'x'.repeat(id % 97)}`);
  })();
  const replicator = new Replicator({ dbPath, replica: replicaDir, syncIntervalMs: 3_600_000, lease: false });
  await replicator.start();
  try {
    await replicator.sync();
    db.prepare("UPDATE t SET v = 'changed' WHERE id = 777").run();
    await replicator.sync();
  } finally {
    await replicator.stop();
  }
  expected = db.prepare(SQL).all();
  db.close();
  expect(existsSync(join(replicaDir, 'ltxvfs', 'manifest.json'))).toBe(true);
}, 60_000);

afterAll(async () => {
  await tmp?.cleanup();
});

describe('ltxvfs query --no-manifest', () => {
  it('the default opens from the manifest; --no-manifest opens by listing; both print the primary’s rows', async () => {
    const byManifest = await runCli(['query', '--json', '--verbose', replicaDir, SQL]);
    expect(byManifest.code, byManifest.stderr).toBe(0);
    expect(JSON.parse(byManifest.stdout)).toEqual(expected);
    expect(byManifest.stderr).toMatch(/opened .* at TXID \S+ \(\d+ pages\) from /);
    expect(byManifest.stderr).not.toContain('by listing');

    const byListing = await runCli(['query', '--no-manifest', '--json', '--verbose', replicaDir, SQL]);
    expect(byListing.code, byListing.stderr).toBe(0);
    expect(JSON.parse(byListing.stdout)).toEqual(expected);
    expect(byListing.stderr).toMatch(/opened .* at TXID \S+ \(\d+ pages\) by listing/);
  });

  it('is listed in --help', async () => {
    const help = await runCli(['query', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--no-manifest\s+list the replica instead/);
  });
});
