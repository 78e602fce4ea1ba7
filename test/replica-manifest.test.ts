import { spawnSync } from 'node:child_process';
import { cpSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  decodeLtxFile,
  decodeManifest,
  encodeManifest,
  HOT_PAGES_OBJECT,
  MANIFEST_OBJECT,
  type Manifest,
} from '../src/ltx/index.js';
import { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo, ReplicaClient } from '../src/storage/types.js';
import { Replicator } from '../src/writer/index.js';
import { createLtx } from '../vfs/index.js';
import { recordRequests, rounds } from './support/request-rounds.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * The manifest path end to end: the real Replicator writes a 1M-row primary, an L9 snapshot (so
 * hot pages exist) and small L0 files after it; readers open through the real Replica and the
 * ltx VFS. Request counts come from the file backend's counters (the operations S3 would see);
 * rows are checked against better-sqlite3 on the primary.
 */
const ROWS = 1_000_000;
let tmp: TempDir;
let client: ReplicaClient;
let db: Database.Database;
let replicator: Replicator;
let dbPath: string;

async function readManifest(): Promise<{ manifest: Manifest; etag: string }> {
  const object = await client.readObject(MANIFEST_OBJECT);
  if (object === null) throw new Error('no manifest');
  return { manifest: decodeManifest(object.data), etag: object.etag };
}

function logged(): { lines: string[]; logger: (line: string) => void } {
  const lines: string[] = [];
  return { lines, logger: (line) => lines.push(line) };
}

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-manifest-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  dbPath = join(tmp.dir, 'app.db');
  db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  db.exec('CREATE TABLE side (k TEXT PRIMARY KEY, n INTEGER)');
  replicator = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, lease: false });
  await replicator.start();
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= ROWS; id++) insert.run(id, `v${id}`);
  })();
  await replicator.sync();
  // Hot pages come from a snapshot above TXID 1 (a TXID 1 file must hold every page).
  db.prepare('INSERT INTO side (k, n) VALUES (?, ?)').run('first', 1);
  await replicator.sync();
  await replicator.takeSnapshot();
  // Changes after the snapshot, including interior pages (a split-heavy batch at the end).
  db.prepare('UPDATE t SET v = ? WHERE id = ?').run('changed', 500_000);
  await replicator.sync();
}, 180_000);

afterAll(async () => {
  await replicator?.stop();
  db?.close();
  await client?.close();
  await tmp?.cleanup();
});

describe('manifest written by the Replicator', () => {
  it('names every file that exists, the newest TXID, and hot pages from the snapshot', async () => {
    const { manifest } = await readManifest();
    const listed = await client.listAll();
    expect(manifest.files.map((f) => [f.level, f.minTxid, f.maxTxid, f.size])).toEqual(
      listed.map((f) => [f.level, f.minTxid, f.maxTxid, f.size]),
    );
    expect(manifest.txid).toBe(Math.max(...listed.map((f) => f.maxTxid)));
    const snapshot = listed.find((f) => f.level === 9);
    expect(manifest.hot?.txid).toBe(snapshot?.maxTxid);
    const hot = await client.readObject(HOT_PAGES_OBJECT);
    if (hot === null) throw new Error('no hot pages');
    const decoded = decodeLtxFile(hot.data);
    expect(decoded.header.maxTxid).toBe(snapshot?.maxTxid);
    // Page 1 plus the interior pages of a 1M-row table: dozens, not thousands.
    expect(decoded.pages[0]?.pgno).toBe(1);
    expect(decoded.pages.length).toBeGreaterThan(5);
    expect(decoded.pages.length).toBeLessThan(200);
  });
});

describe('tools that list ignore the manifest prefix', () => {
  const CLI = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

  it('ltxvfs ls, verify and restore see only the level files; the level layout is unchanged', async () => {
    const replicaDir = join(tmp.dir, 'replica');
    expect(readdirSync(replicaDir).sort()).toEqual(['ltx', 'ltxvfs']);
    expect(readdirSync(join(replicaDir, 'ltxvfs')).sort()).toEqual(['digests', 'hot.ltx', 'manifest.json']);
    const ls = run('ls', replicaDir);
    expect(ls.status, ls.stderr).toBe(0);
    expect(ls.stdout).not.toMatch(/ltxvfs|manifest|hot/);
    expect(ls.stdout.trim().split('\n').length).toBeGreaterThan((await client.listAll()).length - 1);
    const verify = run('verify', replicaDir);
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
    const out = join(tmp.dir, 'restored.db');
    const restore = run('restore', '-o', out, replicaDir);
    expect(restore.status, restore.stderr).toBe(0);
    const sql = 'SELECT count(*) AS n, sum(length(v)) AS s FROM t';
    const restored = new Database(out, { readonly: true });
    expect(restored.prepare(sql).get()).toEqual(db.prepare(sql).get());
    restored.close();
  });
});

describe('reader on a manifest replica', () => {
  it('opens with 1 GET of the manifest and 1 of the hot pages in one round, then the 1 index the manifest does not carry; no LIST', async () => {
    const { manifest } = await readManifest();
    client.resetStats();
    const rec = recordRequests(client);
    const replica = await Replica.open(rec.client, { pollIntervalMs: 0 });
    const s = client.stats();
    const notCarried = manifest.files.filter((f) => f.index === undefined && f.level === 9).length;
    expect(notCarried).toBe(1);
    expect(s.list).toBe(0);
    expect(s.get).toBe(2 + notCarried);
    expect(rounds(rec.requests)).toEqual([['readObject', 'readObjectIfChanged'], ['readRange']]);
    expect(replica.acquireLatest().txid).toBe(manifest.txid);
    await replica.close();
  });

  it('asks for the index the manifest does not carry as soon as the manifest is in, not after the (bigger) hot pages', async () => {
    // The hot pages' GET is held until an index read starts (or 5 s pass, which the old order needed).
    const events: string[] = [];
    let indexAsked: () => void = () => {};
    const asked = new Promise<void>((resolve) => {
      indexAsked = resolve;
    });
    const held: ReplicaClient = Object.create(client, {
      readObject: {
        value: async (name: string) => {
          if (name === HOT_PAGES_OBJECT) {
            await Promise.race([asked, new Promise((r) => setTimeout(r, 5_000))]);
            events.push('hot pages answered');
          }
          return client.readObject(name);
        },
      },
      readRange: {
        value: (file: LtxFileInfo, offset: number, length: number) => {
          events.push(`readRange L${file.level}`);
          indexAsked();
          return client.readRange(file, offset, length);
        },
      },
    });
    const { lines, logger } = logged();
    const replica = await Replica.open(held, { pollIntervalMs: 0, logger });
    expect(events.slice(0, 2)).toEqual(['readRange L9', 'hot pages answered']);
    expect(lines.some((l) => /from manifest/.test(l))).toBe(true);
    // The hot pages still count: page 1 is served from them, no further read.
    const view = replica.acquireLatest();
    expect(view.readPageSync(1)).toBeDefined();
    view.release();
    await replica.close();
  });

  it('a point lookup on the 1M-row table after open costs 1 GET (the leaf)', async () => {
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = (await ltx.registerReplica('app', client, { pollIntervalMs: 0 })) as Replica;
      const conn = await ltx.open('file:app?vfs=ltx');
      client.resetStats();
      const row = await conn.get('SELECT v FROM t WHERE id = ?', [777_777]);
      expect(row).toEqual({ v: 'v777777' });
      // The leaf, and (once per object, in the same round) the snapshot's page digests.
      expect(client.stats()).toMatchObject({ get: 2, list: 0 });
      client.resetStats();
      // A page changed after the hot pages' TXID comes from the newer file, not the hot copy.
      expect(await conn.get('SELECT v FROM t WHERE id = ?', [500_000])).toEqual({ v: 'changed' });
      await conn.close();
      void replica;
    } finally {
      await ltx.close();
    }
  });

  it('polls with one conditional GET and no LIST when nothing changed', async () => {
    const replica = await Replica.open(client, { pollIntervalMs: 0 });
    client.resetStats();
    for (let i = 0; i < 5; i++) await replica.poll();
    expect(client.stats()).toMatchObject({ get: 5, list: 0, bytesRead: 0 });
    await replica.close();
  });

  it('follows new commits through the manifest (one GET per poll, small indexes carried)', async () => {
    const replica = await Replica.open(client, { pollIntervalMs: 0 });
    db.prepare('INSERT OR REPLACE INTO side (k, n) VALUES (?, ?)').run('a', 1);
    const { txid } = await replicator.sync();
    client.resetStats();
    expect(await replica.poll()).toBe(txid);
    expect(client.stats().list).toBe(0);
    expect(client.stats().get).toBe(1);
    await replica.close();
  });

  it('hot pages older than the view with interior pages changed since: the newer pages win', async () => {
    // Grow the table far enough that its interior pages (root included) change after the snapshot.
    const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    db.transaction(() => {
      for (let id = ROWS + 1; id <= ROWS + 300_000; id++) insert.run(id, `n${id}`);
    })();
    db.prepare('DELETE FROM t WHERE id BETWEEN ? AND ?').run(100_000, 160_000);
    await replicator.sync();
    const { manifest } = await readManifest();
    expect(manifest.hot?.txid).toBeLessThan(manifest.txid);
    const ltx = await createLtx({ instances: 1 });
    try {
      await ltx.registerReplica('app', client, { pollIntervalMs: 0 });
      const conn = await ltx.open('file:app?vfs=ltx');
      for (const sql of [
        'SELECT count(*) AS n, sum(id) AS s FROM t',
        'SELECT v FROM t WHERE id = 1150000',
        'SELECT count(*) AS n FROM t WHERE id BETWEEN 99990 AND 160010',
        'SELECT max(id) AS m FROM t',
      ]) {
        expect(await conn.get(sql), sql).toEqual(db.prepare(sql).get());
      }
      await conn.close();
    } finally {
      await ltx.close();
    }
  });
});

describe('falling back to the LIST path', () => {
  it('a stale manifest (writer stopped beyond the bound): warning, new data through listing', async () => {
    await replicator.stop();
    const { manifest, etag } = await readManifest();
    // What real Litestream would leave behind: the ltxvfs writer's last manifest, never updated.
    const stale: Manifest = { ...manifest, writtenAt: Date.now() - manifest.staleAfterMs - 1000 };
    const paused = new Replicator({
      dbPath,
      replica: client,
      syncIntervalMs: 3_600_000,
      lease: false,
      manifest: false,
    });
    await client.writeObject(MANIFEST_OBJECT, encodeManifest(stale), { ifMatch: etag });
    await paused.start();
    try {
      db.prepare('INSERT OR REPLACE INTO side (k, n) VALUES (?, ?)').run('stale', 42);
      const { txid } = await paused.sync();
      expect(txid).toBeGreaterThan(manifest.txid);
      const { lines, logger } = logged();
      const replica = await Replica.open(client, { pollIntervalMs: 0, logger });
      expect(replica.acquireLatest().txid).toBe(txid);
      expect(lines.some((l) => /warning: .*stale/.test(l))).toBe(true);
      await replica.close();
    } finally {
      await paused.stop();
      replicator = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, lease: false });
      await replicator.start();
      await replicator.sync();
    }
  });

  it('a corrupt or truncated manifest: warning, LIST path, correct rows', async () => {
    const good = await client.readObject(MANIFEST_OBJECT);
    if (good === null) throw new Error('no manifest');
    let copies = 0;
    for (const bad of [good.data.subarray(0, good.data.length - 40), flip(good.data, 60)]) {
      // A copy of the replica with no writer behind it: the live one's manifest refresh (every
      // few seconds) would replace the damaged manifest at a moment a loaded machine decides.
      const frozenDir = join(tmp.dir, `frozen-${++copies}`);
      cpSync(join(tmp.dir, 'replica'), frozenDir, { recursive: true });
      const frozen = openReplicaClient(frozenDir);
      const current = await frozen.readObject(MANIFEST_OBJECT);
      await frozen.writeObject(MANIFEST_OBJECT, bad, { ifMatch: current?.etag ?? '' });
      const { lines, logger } = logged();
      frozen.resetStats();
      const ltx = await createLtx({ instances: 1 });
      try {
        await ltx.registerReplica('app', frozen, { pollIntervalMs: 0, logger });
        expect(frozen.stats().list).toBe(1);
        const conn = await ltx.open('file:app?vfs=ltx');
        const sql = 'SELECT count(*) AS n, max(id) AS m FROM t';
        expect(await conn.get(sql)).toEqual(db.prepare(sql).get());
        await conn.close();
      } finally {
        await ltx.close();
        await frozen.close();
      }
      expect(lines.some((l) => /warning: .*manifest.*invalid/.test(l))).toBe(true);
    }
  });

  it('corrupt or truncated hot pages: warning, LIST path, correct rows', async () => {
    const hot = await client.readObject(HOT_PAGES_OBJECT);
    if (hot === null) throw new Error('no hot pages');
    for (const bad of [flip(hot.data, 400), hot.data.subarray(0, Math.floor(hot.data.length / 2))]) {
      const current = await client.readObject(HOT_PAGES_OBJECT);
      await client.writeObject(HOT_PAGES_OBJECT, bad, { ifMatch: current?.etag ?? '' });
      await replicator.sync(); // a fresh manifest still naming the hot pages
      const { lines, logger } = logged();
      client.resetStats();
      const ltx = await createLtx({ instances: 1 });
      try {
        await ltx.registerReplica('app', client, { pollIntervalMs: 0, logger });
        expect(client.stats().list).toBe(1);
        expect(lines.some((l) => /warning: .*hot\.ltx is corrupt/.test(l))).toBe(true);
        const conn = await ltx.open('file:app?vfs=ltx');
        const sql = 'SELECT count(*) AS n, max(id) AS m, sum(length(v)) AS s FROM t';
        expect(await conn.get(sql)).toEqual(db.prepare(sql).get());
        await conn.close();
      } finally {
        await ltx.close();
      }
    }
    const now = await client.readObject(HOT_PAGES_OBJECT);
    await client.writeObject(HOT_PAGES_OBJECT, hot.data, { ifMatch: now?.etag ?? '' });
  });

  it('a manifest naming a deleted file: re-plan from the listing, correct rows', async () => {
    // M1 plans the first snapshot plus the L0 files after it. Then a newer snapshot covers them,
    // the L0 files are deleted (retention), and M1 is what a reader finds (as one written just
    // before that pass would be): the first page read from a deleted file must re-plan.
    const before = await readManifest();
    const firstSnapshot = before.manifest.files.find((f) => f.level === 9);
    if (firstSnapshot === undefined) throw new Error('no snapshot');
    await replicator.takeSnapshot();
    await replicator.sync();
    const now = await readManifest();
    await client.writeObject(
      MANIFEST_OBJECT,
      encodeManifest({ ...before.manifest, writtenAt: Date.now(), generation: now.manifest.generation + 1 }),
      { ifMatch: now.etag },
    );
    const doomed = before.manifest.files.filter((f) => f.level === 0 && f.minTxid > firstSnapshot.maxTxid);
    expect(doomed.length).toBeGreaterThan(0);
    const { lines, logger } = logged();
    const ltx = await createLtx({ instances: 1 });
    try {
      await ltx.registerReplica('app', client, { pollIntervalMs: 0, logger });
      await client.deleteFiles(doomed);
      const conn = await ltx.open('file:app?vfs=ltx');
      const sql = 'SELECT count(*) AS n, sum(id) AS s FROM t';
      expect(await conn.get(sql)).toEqual(db.prepare(sql).get());
      await conn.close();
    } finally {
      await ltx.close();
    }
    expect(lines.some((l) => /re-planned/.test(l))).toBe(true);
  });
});

function flip(data: Uint8Array, at: number): Uint8Array {
  const out = new Uint8Array(data);
  out[at] = (out[at] ?? 0) ^ 0x41;
  return out;
}
