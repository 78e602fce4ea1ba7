import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeLtxFile,
  decodeManifest,
  HOT_PAGES_OBJECT,
  MANIFEST_OBJECT,
  type Manifest,
} from '../src/ltx/index.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { CompactionScheduler } from '../src/writer/compaction/compaction.js';
import { Replicator } from '../src/writer/index.js';
import { ManifestPublisher } from '../src/writer/manifest-publisher.js';
import { createLtx } from '../vfs/index.js';
import { ltxFileBytes } from './support/ltx-spec.js';
import { recordRequests, rounds } from './support/request-rounds.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * The writer's side of the manifest: what it costs per sync (request counts of the file backend,
 * the operations S3 would see), and hot pages that follow compactions. The oracle for hot pages
 * is SQLite itself: dbstat on the primary's image at the same TXID (db.serialize()) says which
 * pages are page 1, the schema's and interior, and the image holds their bytes.
 */
let tmp: TempDir;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-writer-manifest-');
});
afterAll(() => tmp?.cleanup());

async function readManifest(client: ReplicaClient): Promise<Manifest> {
  const object = await client.readObject(MANIFEST_OBJECT);
  if (object === null) throw new Error('no manifest');
  return decodeManifest(object.data);
}

/** Page 1, every sqlite_schema page and every interior page, by SQLite's dbstat, with bytes. */
function hotPagesOf(image: Buffer): Map<number, Buffer> {
  // A WAL-mode image (bytes 18-19 = 2) cannot be opened from memory: read a rollback-mode copy.
  const copy = Buffer.from(image);
  copy[18] = 1;
  copy[19] = 1;
  const db = new Database(copy);
  const rows = db.prepare('SELECT name, pageno, pagetype FROM dbstat').all() as Array<{
    name: string;
    pageno: number;
    pagetype: string;
  }>;
  db.close();
  const out = new Map<number, Buffer>();
  for (const r of rows) {
    if (r.pageno === 1 || r.name === 'sqlite_schema' || r.pagetype === 'internal') {
      out.set(r.pageno, image.subarray((r.pageno - 1) * 4096, r.pageno * 4096));
    }
  }
  return out;
}

describe('manifest kept from the writer’s own knowledge', () => {
  it('a sync costs 2 PUTs (the L0 file, the manifest), no LIST and no GET; the manifest names exactly the listing', async () => {
    const dir = join(tmp.dir, 'counts');
    mkdirSync(dir);
    const client = openReplicaClient(join(dir, 'replica'));
    const check = openReplicaClient(join(dir, 'replica'));
    const db = new Database(join(dir, 'app.db'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    const replicator = new Replicator({
      dbPath: join(dir, 'app.db'),
      replica: client,
      syncIntervalMs: 3_600_000,
      lease: false,
    });
    await replicator.start();
    try {
      db.prepare('INSERT INTO t (v) VALUES (?)').run('first');
      await replicator.sync(); // the first manifest lists the replica once
      for (let i = 0; i < 5; i++) {
        db.prepare('INSERT INTO t (v) VALUES (?)').run(`row ${i}`);
        client.resetStats();
        const { txid } = await replicator.sync();
        expect(client.stats(), `sync ${i}`).toMatchObject({ list: 0, get: 0, head: 0, put: 2, delete: 0 });
        const manifest = await readManifest(check);
        expect(manifest.txid).toBe(txid);
        const listed = await check.listAll();
        expect(manifest.files.map((f) => [f.level, f.minTxid, f.maxTxid, f.size])).toEqual(
          listed.map((f) => [f.level, f.minTxid, f.maxTxid, f.size]),
        );
      }
    } finally {
      await replicator.stop();
      db.close();
      await client.close();
      await check.close();
    }
  });

  it('while the writer may not write (its lease expired unrenewed) a publish sends nothing; the next allowed one writes the manifest', async () => {
    const dir = join(tmp.dir, 'may-write');
    mkdirSync(dir);
    const client = openReplicaClient(join(dir, 'replica'));
    try {
      const bytes = ltxFileBytes({ minTxid: 1, pages: [{ pgno: 1 }, { pgno: 2 }] });
      await client.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, bytes, { timestamp: new Date() });
      let allowed = false;
      const publisher = new ManifestPublisher(client, { mayWrite: () => allowed });
      client.resetStats();
      for (let i = 0; i < 3; i++) await publisher.publish();
      expect(client.stats()).toMatchObject({ list: 0, get: 0, head: 0, put: 0, delete: 0 });
      expect(await client.readObject(MANIFEST_OBJECT)).toBeNull();
      allowed = true;
      await publisher.publish();
      const manifest = await readManifest(client);
      expect(manifest.txid).toBe(1);
      expect(manifest.files.map((f) => [f.level, f.minTxid, f.maxTxid, f.size])).toEqual([
        [0, 1, 1, bytes.length],
      ]);
    } finally {
      await client.close();
    }
  });

  it('resyncs with one LIST when asked to every time (resyncMs 0), and drops files deleted through it', async () => {
    const dir = join(tmp.dir, 'resync');
    mkdirSync(dir);
    const client = openReplicaClient(join(dir, 'replica'));
    const db = new Database(join(dir, 'app.db'));
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    const replicator = new Replicator({
      dbPath: join(dir, 'app.db'),
      replica: client,
      syncIntervalMs: 3_600_000,
      lease: false,
      manifest: { resyncMs: 0 },
    });
    await replicator.start();
    try {
      for (let i = 0; i < 3; i++) {
        db.prepare('INSERT INTO t (v) VALUES (?)').run(`row ${i}`);
        await replicator.sync();
      }
      client.resetStats();
      db.prepare('INSERT INTO t (v) VALUES (?)').run('more');
      await replicator.sync();
      expect(client.stats()).toMatchObject({ list: 1, put: 2 });
      // A deletion through the writer's client is dropped from the manifest before it is sent.
      const l0 = (await client.listAll()).filter((f) => f.level === 0);
      const snapshot = await replicator.takeSnapshot();
      expect(snapshot).not.toBeNull();
      await replicator.client.deleteFiles(l0);
      await replicator.sync();
      const manifest = await readManifest(client);
      expect(manifest.files.map((f) => `${f.level}/${f.minTxid}-${f.maxTxid}`)).toEqual([
        `9/1-${snapshot?.maxTxid}`,
      ]);
    } finally {
      await replicator.stop();
      db.close();
      await client.close();
    }
  });
});

describe('hot pages follow compactions', () => {
  it('an L1 compaction output above the hot pages refreshes them (state at its TXID, by dbstat); a cold lookup = manifest + hot pages in one round, then 1 GET', async () => {
    const dir = join(tmp.dir, 'compaction');
    mkdirSync(dir);
    const client = openReplicaClient(join(dir, 'replica'));
    const dbPath = join(dir, 'app.db');
    const db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    db.exec('CREATE INDEX t_v ON t (v)');
    const replicator = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, lease: false });
    await replicator.start();
    const compactor = new CompactionScheduler({
      client: replicator.client,
      config: {
        levels: [3_600_000],
        snapshotIntervalMs: 24 * 3_600_000,
        retentionMs: 24 * 3_600_000,
        l0RetentionMs: 3_600_000,
        retentionEnabled: false,
      },
      takeSnapshot: () => replicator.takeSnapshot(),
      spoolDir: dir,
    });
    const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    const grow = (from: number, to: number): void =>
      db.transaction(() => {
        for (let id = from; id <= to; id++) insert.run(id, `value ${id} ${'x'.repeat(id % 40)}`);
      })();
    try {
      grow(1, 3000);
      await replicator.sync();
      grow(3001, 6000);
      await replicator.sync();
      // L1 1-2 starts at TXID 1, so it holds every page: hot pages are built from it.
      const first = await compactor.compactLevel(1);
      await replicator.sync();
      expect((await readManifest(client)).hot?.txid).toBe(first?.maxTxid);
      const before = Buffer.from(db.serialize());

      // Interior pages change after them: growth at the end, a hole in the middle.
      grow(6001, 9000);
      await replicator.sync();
      db.prepare('DELETE FROM t WHERE id BETWEEN 1000 AND 2500').run();
      await replicator.sync();
      const second = await compactor.compactLevel(1);
      expect(second?.minTxid).toBe((first?.maxTxid ?? 0) + 1);
      client.resetStats();
      await replicator.sync();
      const image = Buffer.from(db.serialize());
      const expected = hotPagesOf(image);
      const old = hotPagesOf(before);
      const changedInterior = [...expected.keys()].filter(
        (p) =>
          old.get(p) === undefined || Buffer.compare(old.get(p) as Buffer, expected.get(p) as Buffer) !== 0,
      );
      expect(changedInterior.length).toBeGreaterThan(3);

      const manifest = await readManifest(client);
      expect(manifest.hot?.txid).toBe(second?.maxTxid);
      const hot = await client.readObject(HOT_PAGES_OBJECT);
      if (hot === null) throw new Error('no hot pages');
      const decoded = decodeLtxFile(hot.data);
      expect(decoded.header.maxTxid).toBe(second?.maxTxid);
      expect(decoded.pages.map((p) => p.pgno)).toEqual([...expected.keys()].sort((a, b) => a - b));
      for (const p of decoded.pages) {
        expect(Buffer.compare(Buffer.from(p.data), expected.get(p.pgno) as Buffer), `page ${p.pgno}`).toBe(0);
      }

      // Cold reader: every index is inside the manifest, so open is one round of two GETs, and a
      // point lookup needs only its leaf.
      const rec = recordRequests(client);
      const ltx = await createLtx({ instances: 1 });
      try {
        await ltx.registerReplica('app', rec.client, { pollIntervalMs: 0 });
        expect(rounds(rec.requests)).toEqual([['readObject', 'readObjectIfChanged']]);
        const conn = await ltx.open('file:app?vfs=ltx');
        rec.reset();
        const sql = 'SELECT v FROM t WHERE id = ?';
        expect(await conn.get(sql, [8_123])).toEqual(db.prepare(sql).get(8_123));
        // The leaf, and in the same round the page digests of the object it is in (a large one).
        expect(rounds(rec.requests)).toEqual([['readObject', 'readRange']]);
        await conn.close();
      } finally {
        await ltx.close();
      }

      // Hot pages older than the view, interior pages changed since: the newer pages win.
      grow(9001, 14000);
      db.prepare('DELETE FROM t WHERE id BETWEEN 4000 AND 5000').run();
      await replicator.sync();
      expect((await readManifest(client)).hot?.txid).toBeLessThan((await readManifest(client)).txid);
      const later = await createLtx({ instances: 1 });
      try {
        await later.registerReplica('app', client, { pollIntervalMs: 0 });
        const conn = await later.open('file:app?vfs=ltx');
        for (const q of [
          'SELECT count(*) AS n, sum(id) AS s FROM t',
          'SELECT v FROM t WHERE id = 13999',
          "SELECT count(*) AS n FROM t WHERE v >= 'value 5' AND v < 'value 6'",
          'SELECT max(id) AS m FROM t',
        ]) {
          expect(await conn.get(q), q).toEqual(db.prepare(q).get());
        }
        await conn.close();
      } finally {
        await later.close();
      }
    } finally {
      await compactor.stop();
      await replicator.stop();
      db.close();
      await client.close();
    }
  });
});
