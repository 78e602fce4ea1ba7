/**
 * What the replicator cannot prove continuous gets a full snapshot-style L0: an external
 * TRUNCATE checkpoint while it was down, a database file replaced under it. Restores stay
 * byte-identical. Also: an external TRUNCATE while it runs cannot restart the WAL (its read
 * transaction blocks that), so nothing is lost and no snapshot is needed.
 */
import { mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from '../src/storage/index.js';
import { Replicator, type ReplicatorOptions, type SyncedEvent } from '../src/writer/index.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import {
  expectedFullPages,
  expectRestoresMatch,
  startNodeApp,
  syncAndRecord,
  verifyL0Files,
} from './support/writer-harness.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-discont-');
});
afterAll(() => tmp.cleanup());

function setup(name: string) {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  const dbPath = join(dir, 'db.sqlite');
  const client = new FileReplicaClient(join(dir, 'replica'));
  const scratch = join(dir, 'scratch');
  const events: SyncedEvent[] = [];
  const images = new Map<number, Buffer>();
  const newReplicator = (options: Partial<ReplicatorOptions> = {}) => {
    const rep = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, ...options });
    rep.on('synced', (e: SyncedEvent) => events.push(e));
    return rep;
  };
  /** Syncs and keeps SQLite's own image of the primary at the new TXID. */
  const sync = (rep: Replicator) => syncAndRecord(rep, dbPath, scratch, images);
  /** Every recorded TXID restores byte-identical to its image. */
  const expectRestores = () => expectRestoresMatch(client, images, join(dir, 'restores'));
  return { dir, dbPath, client, events, newReplicator, sync, expectRestores };
}

/** Every case starts alike: an app process with table t, and a started replicator. */
async function startCase(name: string, options: Partial<ReplicatorOptions> = {}) {
  const s = setup(name);
  const app = await startNodeApp(s.dbPath, 4096);
  await app.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  const rep = s.newReplicator(options);
  await rep.start();
  return { s, app, rep };
}

const insert = (n: number) =>
  `WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ${n}) INSERT INTO t(v) SELECT hex(randomblob(200)) FROM s`;

async function expectSnapshotL0(client: FileReplicaClient, txid: number) {
  const decoded = await verifyL0Files(client);
  const f = defined(decoded.get(txid));
  expect(f.pages.map((p) => p.pgno)).toEqual(expectedFullPages(f.header.commit, f.header.pageSize));
}

describe('discontinuities', () => {
  it('external wal_checkpoint(TRUNCATE) while the replicator is down: detected, snapshot L0 follows', async () => {
    const c = await startCase('truncate-down');
    const { s, app } = c;
    let rep = c.rep;
    await app.exec(insert(50));
    await s.sync(rep);
    await app.exec(insert(10));
    await s.sync(rep);
    await rep.stop();
    // the app is the only connection now: TRUNCATE succeeds and restarts the WAL
    await app.exec('PRAGMA wal_checkpoint(TRUNCATE)');
    await app.exec(insert(5));
    rep = s.newReplicator();
    await rep.start();
    const before = s.events.length;
    const txid = await s.sync(rep);
    expect(defined(s.events[before]).snapshot).toBe(true);
    expect(defined(s.events[before]).reason).toMatch(/WAL/);
    await app.exec(insert(7));
    await s.sync(rep);
    expect(defined(s.events.at(-1)).snapshot).toBe(false);
    await rep.stop();
    await app.close();
    await expectSnapshotL0(s.client, txid);
    await s.expectRestores();
  }, 60_000);

  it('external wal_checkpoint(TRUNCATE) while the replicator runs: refused (busy), nothing lost, no snapshot', async () => {
    const { s, app, rep } = await startCase('truncate-running');
    await s.sync(rep);
    for (let i = 0; i < 4; i++) {
      await app.exec(insert(30));
      await app.exec('PRAGMA busy_timeout = 50; PRAGMA wal_checkpoint(TRUNCATE); PRAGMA busy_timeout = 5000');
      await app.exec(insert(3));
      await s.sync(rep);
    }
    await rep.stop();
    await app.close();
    expect(s.events.filter((e) => e.snapshot).map((e) => e.txid)).toEqual([1]);
    await s.expectRestores();
  }, 60_000);

  it('after its own PASSIVE checkpoint, the one WAL restart is continuous (no snapshot)', async () => {
    const { s, app, rep } = await startCase('own-checkpoint');
    await app.exec(insert(100));
    await s.sync(rep);
    const salt1 = () => readFileSync(`${s.dbPath}-wal`).readUInt32BE(16);
    for (let i = 0; i < 3; i++) {
      const before = salt1();
      await rep.checkpoint('PASSIVE');
      await app.exec(insert(20));
      expect(salt1()).toBe((before + 1) >>> 0); // the WAL really restarted
      await s.sync(rep);
    }
    await rep.stop();
    await app.close();
    expect(s.events.filter((e) => e.snapshot).map((e) => e.txid)).toEqual([1]);
    expect(rep.stats().checkpoints).toBe(3);
    await s.expectRestores();
  }, 60_000);

  it('after the restart that follows its checkpoint, the read transaction leaves the file-only slot', async () => {
    // A read transaction begun when the WAL was fully backfilled sits in SQLite's "read only the
    // database file" slot: it lets the next writer restart the WAL but blocks every later
    // backfill, so the application's autocheckpoint would re-sort the WAL index after every
    // commit and give up. The replicator must move onto the restarted WAL by itself.
    const { s, app, rep } = await startCase('leave-slot-0');
    await app.exec(insert(100));
    await s.sync(rep);
    const other = new Database(s.dbPath);
    other.pragma('wal_autocheckpoint = 0');
    const passive = () =>
      defined((other.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number; checkpointed: number }>)[0]);
    const salt1 = () => readFileSync(`${s.dbPath}-wal`).readUInt32BE(16);
    for (let round = 0; round < 2; round++) {
      const before = salt1();
      await rep.checkpoint('PASSIVE');
      await app.exec(insert(300)); // restarts the WAL, then well over refreshFrames frames
      expect(salt1()).toBe((before + 1) >>> 0);
      let r = passive();
      for (let i = 0; i < 100 && r.checkpointed === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
        r = passive();
      }
      expect(r.log).toBeGreaterThan(16);
      expect(r.checkpointed).toBeGreaterThan(0); // backfill works again: our mark is on the new WAL
      await app.exec(insert(30)); // appended: our read mark keeps the WAL from restarting
      expect(salt1()).toBe((before + 1) >>> 0);
      await s.sync(rep);
    }
    other.close();
    await rep.stop();
    await app.close();
    expect(s.events.filter((e) => e.snapshot).map((e) => e.txid)).toEqual([1]);
    await s.expectRestores();
  }, 60_000);

  it('syncing every 20 ms under steady writes with the default autocheckpoint: no snapshot, nothing lost', async () => {
    // Exercises the read-transaction handoff after each sync, the replicator's own checkpoints by
    // WAL size and the application's autocheckpoint all at once.
    const { s, app, rep } = await startCase('steady', { syncIntervalMs: 20, minCheckpointPages: 200 });
    const salts = new Set<number>();
    // Driven by what happened, not by the clock: write until the WAL restarted at least three
    // times and the replicator checkpointed twice (a loaded machine just takes longer), with a
    // bound on the number of transactions so a replicator that never checkpoints still fails.
    for (let i = 0; salts.size <= 3 || rep.stats().checkpoints < 2; i++) {
      if (i >= 20_000) break;
      await app.exec(insert(1 + (i % 40)));
      salts.add(readFileSync(`${s.dbPath}-wal`).readUInt32BE(16));
      if (i % 60 === 59) await s.sync(rep);
    }
    await s.sync(rep);
    await rep.stop();
    await app.close();
    expect(salts.size).toBeGreaterThan(2); // the WAL restarted several times
    expect(rep.stats().checkpoints).toBeGreaterThan(1);
    expect(s.events.filter((e) => e.snapshot).map((e) => e.txid)).toEqual([1]);
    await verifyL0Files(s.client);
    await s.expectRestores();
  }, 90_000);

  it('database file replaced under a running replicator: detected, snapshot L0 of the new file', async () => {
    const c = await startCase('replaced');
    const { s, rep } = c;
    let app = c.app;
    await app.exec(insert(80));
    await s.sync(rep);
    await app.close();
    // another database, built elsewhere, moved over the primary's path
    const other = join(s.dir, 'other.sqlite');
    const o = new Database(other);
    o.pragma('journal_mode = WAL');
    o.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE extra(x)');
    o.exec(insert(20));
    o.close();
    rmSync(`${s.dbPath}-wal`, { force: true });
    rmSync(`${s.dbPath}-shm`, { force: true });
    renameSync(other, s.dbPath);
    app = await startNodeApp(s.dbPath);
    await app.exec(insert(3));
    const before = s.events.length;
    const txid = await s.sync(rep);
    expect(defined(s.events[before]).snapshot).toBe(true);
    expect(defined(s.events[before]).reason).toMatch(/replaced/);
    await app.exec(insert(4));
    await s.sync(rep);
    await rep.stop();
    await app.close();
    await expectSnapshotL0(s.client, txid);
    await s.expectRestores();
  }, 60_000);
});
