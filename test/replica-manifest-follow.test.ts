import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { decodeManifest, MANIFEST_OBJECT, type Manifest } from '../src/ltx/index.js';
import type { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { Replicator } from '../src/writer/index.js';
import { createLtx, type Ltx } from '../vfs/index.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * A reader that follows a replica through its manifest, when the manifest stops telling the
 * truth: the ltxvfs writer stopped, and another writer (as real Litestream does: it never touches
 * `ltxvfs/`) keeps adding L0 files without updating it. Within the staleness bound the reader
 * trusts the manifest (one conditional GET per poll, a 304); past the bound it lists, warns once,
 * and sees the other writer's rows. Time is moved with a faked Date only (no sleeps), so the
 * bound is crossed exactly where the test says. Rows are checked against better-sqlite3.
 */
const STALE_AFTER_MS = 60_000;
let tmp: TempDir;
let client: ReplicaClient;
let db: Database.Database;
let dbPath: string;
let ltx: Ltx | undefined;

async function readManifest(): Promise<{ manifest: Manifest; etag: string }> {
  const object = await client.readObject(MANIFEST_OBJECT);
  if (object === null) throw new Error('no manifest');
  return { manifest: decodeManifest(object.data), etag: object.etag };
}

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-manifest-follow-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  dbPath = join(tmp.dir, 'app.db');
  db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 20_000; id++) insert.run(id, `v${id}`);
  })();
  const writer = new Replicator({
    dbPath,
    replica: client,
    syncIntervalMs: 3_600_000,
    lease: false,
    manifest: { staleAfterMs: STALE_AFTER_MS },
  });
  await writer.start();
  await writer.sync();
  await writer.stop();
}, 60_000);

afterEach(() => {
  vi.useRealTimers();
});

afterAll(async () => {
  await ltx?.close();
  db?.close();
  await client?.close();
  await tmp?.cleanup();
});

describe('a following reader when the manifest goes stale', () => {
  it('trusts it within the bound (1 GET, 0 LIST per poll), then lists, warns and sees the other writer’s rows', async () => {
    const lines: string[] = [];
    ltx = await createLtx({ instances: 1 });
    client.resetStats();
    const replica = (await ltx.registerReplica('app', client, {
      pollIntervalMs: 0,
      logger: (line) => lines.push(line),
    })) as Replica;
    expect(client.stats().list).toBe(0); // opened from the manifest
    const { manifest, etag } = await readManifest();
    expect(manifest.staleAfterMs).toBe(STALE_AFTER_MS);
    const conn = await ltx.open('file:app?vfs=ltx');
    const sql = 'SELECT count(*) AS n, max(id) AS m, sum(length(v)) AS s FROM t';
    const before = db.prepare(sql).get();
    expect(await conn.get(sql)).toEqual(before);

    // Another writer takes over and writes L0 files without touching the manifest.
    const other = new Replicator({
      dbPath,
      replica: client,
      syncIntervalMs: 3_600_000,
      lease: false,
      manifest: false,
    });
    await other.start();
    db.prepare('INSERT INTO t (id, v) VALUES (?, ?)').run(50_000, 'other writer');
    db.prepare('UPDATE t SET v = ? WHERE id = ?').run('changed by the other writer', 7);
    const { txid } = await other.sync();
    await other.stop();
    expect(txid).toBeGreaterThan(manifest.txid);
    expect((await readManifest()).etag).toBe(etag); // the manifest was left as it was

    vi.useFakeTimers({ toFake: ['Date'] });
    // Just inside the bound: the manifest is still believed; the poll is one conditional GET.
    vi.setSystemTime(manifest.writtenAt + STALE_AFTER_MS - 1_000);
    client.resetStats();
    expect(await replica.poll()).toBe(manifest.txid);
    expect(client.stats()).toMatchObject({ get: 1, list: 0, bytesRead: 0 });
    expect(lines.some((l) => /stale/.test(l))).toBe(false);

    // Past the bound: the same poll lists, says why once, and reaches the other writer's TXID.
    vi.setSystemTime(manifest.writtenAt + STALE_AFTER_MS + 1_000);
    client.resetStats();
    expect(await replica.poll()).toBe(txid);
    expect(client.stats().list).toBeGreaterThan(0);
    expect(lines.filter((l) => /warning: .*manifest is stale/.test(l))).toHaveLength(1);
    const after = db.prepare(sql).get();
    expect(after).not.toEqual(before);
    expect(await conn.get(sql)).toEqual(after);
    expect(await conn.get('SELECT v FROM t WHERE id = 7')).toEqual({ v: 'changed by the other writer' });

    // It stays on the LIST path (no second warning) while the manifest stays stale.
    client.resetStats();
    for (let i = 0; i < 3; i++) expect(await replica.poll()).toBe(txid);
    expect(client.stats().list).toBeGreaterThan(0);
    expect(lines.filter((l) => /stale/.test(l))).toHaveLength(1);
    await conn.close();
  });
});
