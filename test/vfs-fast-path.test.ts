/**
 * The VFS's fast read path (issue 14) on real wa-sqlite over a real file replica: a page the
 * replica holds in memory goes straight into wasm memory without entering jRead (FacadeVFS's
 * proxy-building path), and a statement that meets a page the cache no longer holds falls back to
 * the async path in the middle and still returns exactly what better-sqlite3 returns on the same
 * database. Calls are counted with spies and the storage client's counters, never timed.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { createLtx, type Ltx, LtxVfs } from '../vfs/index.js';
import { partlyLocal, wrappedSource } from './support/partial-views.js';
import { TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const ROWS = 30_000;
let tmp: TempDir;
let client: ReplicaClient;
let primary: TestPrimary;
let ltx: Ltx;
let reference: Database.Database;
let registered = 0;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-fast-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
  primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)');
  const insert = primary.db.prepare('INSERT INTO t VALUES (?, ?, ?)');
  primary.db.transaction(() => {
    for (let id = 1; id <= ROWS; id++) insert.run(id, `name-${id}-${'x'.repeat(id % 53)}`, id * 7);
  })();
  primary.db.exec(`CREATE TABLE vals (id INTEGER PRIMARY KEY, v);
    INSERT INTO vals (v) VALUES (-1), (-2147483648), (2147483648), (4294967295), (9007199254740991),
      (-9007199254740991), (9007199254740992), (-9223372036854775808), (9223372036854775807), (0.5),
      (-1e300), (''), ('a' || char(0) || 'b'), ('zwölf €'), (x''), (x'00ff'), (NULL)`);
  await primary.sync();
  reference = new Database(primary.dbPath, { readonly: true });
  // The smallest SQLite page cache the Node API allows: most page reads reach the VFS.
  ltx = await createLtx({ instances: 1, cacheSizeKiB: 64 });
}, 120_000);

afterAll(async () => {
  reference?.close();
  await ltx?.close();
  primary?.close();
  await client?.close();
  await tmp?.cleanup();
});

afterEach(() => {
  vi.restoreAllMocks();
});

async function register(options: { cacheBytes: number }): Promise<{ name: string; replica: Replica }> {
  const name = `fast-${++registered}.db`;
  const replica = (await ltx.registerReplica(name, client, { pollIntervalMs: 0, ...options })) as Replica;
  return { name, replica };
}

function seededIds(count: number): number[] {
  let state = 12345;
  return Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return 1 + (state % ROWS);
  });
}

describe('the fast read path', () => {
  it('serves cached pages straight into wasm memory: point lookups never enter jRead', async () => {
    const { name } = await register({ cacheBytes: 64 << 20 });
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    // Every page into the replica's cache.
    expect(await db.get('SELECT count(*) AS n, sum(length(name)) AS c FROM t')).toEqual(
      reference.prepare('SELECT count(*) AS n, sum(length(name)) AS c FROM t').get(),
    );
    const stmt = await db.prepare('SELECT * FROM t WHERE id = ?');
    const native = reference.prepare('SELECT * FROM t WHERE id = ?');
    const jRead = vi.spyOn(LtxVfs.prototype, 'jRead');
    const xRead = vi.spyOn(LtxVfs.prototype, 'xRead');
    client.resetStats();
    for (const id of seededIds(400)) expect(await stmt.get(id)).toEqual(native.get(id));
    for (const id of seededIds(100))
      expect(await db.get('SELECT * FROM t WHERE id = ?', [id])).toEqual(native.get(id));
    // 500 transactions, each reading at least the change counter: all answered without jRead.
    expect(xRead.mock.calls.length).toBeGreaterThanOrEqual(500);
    expect(jRead).not.toHaveBeenCalled();
    expect(client.stats().get).toBe(0);
    await stmt.finalize();
    await db.close();
    await ltx.unregisterReplica(name);
  });

  it('a connection pinned to a past TXID pins it at each lock without waiting: its lookups never enter jRead', async () => {
    // TXID 2 (the latest) adds a table that TXID 1 does not have.
    if (primary.txid === 1) {
      primary.db.exec('CREATE TABLE later (x)');
      await primary.sync();
    }
    const { name, replica } = await register({ cacheBytes: 64 << 20 });
    const latest = replica.acquireLatest();
    expect(latest.txid).toBe(2);
    latest.release();
    const db = await ltx.open(`file:${name}?vfs=ltx&txid=1`);
    expect(await db.get("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'later'")).toEqual({ n: 0 });
    const stmt = await db.prepare('SELECT * FROM t WHERE id = ?');
    const native = reference.prepare('SELECT * FROM t WHERE id = ?');
    // The pages of these rows into the cache (TXID 1's objects were not read at open).
    for (const id of seededIds(300)) expect(await stmt.get(id)).toEqual(native.get(id));
    const jRead = vi.spyOn(LtxVfs.prototype, 'jRead');
    for (const id of seededIds(300)) expect(await stmt.get(id)).toEqual(native.get(id));
    expect(jRead).not.toHaveBeenCalled();
    expect(await db.pragma('ltx_txid')).toBe('0000000000000001');
    await stmt.finalize();
    await db.close();
    await ltx.unregisterReplica(name);
  });

  it('reads a hydrated page with one pread straight into wasm memory, neither through jRead nor through the cache', async () => {
    const name = `fast-${++registered}.db`;
    const replica = (await ltx.registerReplica(name, client, {
      pollIntervalMs: 0,
      hydratePath: join(tmp.dir, 'hydrated.db'),
    })) as Replica;
    for (let turn = 0; replica.hydration().state !== 'done'; turn++) {
      if (replica.hydration().state === 'error') throw new Error(replica.hydration().error);
      if (turn > 2000) throw new Error('hydration did not finish');
      await new Promise((r) => setTimeout(r, 5));
    }
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    const stmt = await db.prepare('SELECT * FROM t WHERE id = ?');
    const native = reference.prepare('SELECT * FROM t WHERE id = ?');
    expect(await stmt.get(1)).toEqual(native.get(1));
    const jRead = vi.spyOn(LtxVfs.prototype, 'jRead');
    const cachedBefore = replica.cacheStats().pages;
    client.resetStats();
    for (const id of seededIds(500)) expect(await stmt.get(id)).toEqual(native.get(id));
    expect(jRead).not.toHaveBeenCalled();
    expect(client.stats().get).toBe(0);
    // No page was copied out of the file into the shared cache on the way.
    expect(replica.cacheStats().pages).toBe(cachedBefore);
    await stmt.finalize();
    await db.close();
    await ltx.unregisterReplica(name);
  });

  it('reads every column type as better-sqlite3 does: 64-bit integers (bigint beyond 2^53), reals, text with NUL, blobs, NULL', async () => {
    const { name } = await register({ cacheBytes: 64 << 20 });
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    const native = reference.prepare('SELECT id, v, typeof(v) AS t FROM vals ORDER BY id');
    native.safeIntegers(true);
    const expected = native.all().map((row) => {
      const r = row as { id: bigint; v: unknown; t: string };
      const v =
        typeof r.v === 'bigint' &&
        r.v >= BigInt(Number.MIN_SAFE_INTEGER) &&
        r.v <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(r.v)
          : r.v instanceof Buffer
            ? new Uint8Array(r.v)
            : r.v;
      return { id: Number(r.id), v, t: r.t };
    });
    expect(expected).toHaveLength(17);
    expect(await db.all('SELECT id, v, typeof(v) AS t FROM vals ORDER BY id')).toEqual(expected);
    const stmt = await db.prepare('SELECT id, v, typeof(v) AS t FROM vals ORDER BY id');
    expect(await stmt.all()).toEqual(expected);
    expect(await stmt.get()).toEqual(expected[0]);
    await stmt.finalize();
    await db.close();
    await ltx.unregisterReplica(name);
  });

  it('falls back to the async path in the middle of a statement at pages memory lacks, and back to sync reads after', async () => {
    // A real replica (every page in its cache) behind a source whose views cannot answer every
    // seventh page from memory, as after an eviction or before hydration reached it.
    const inner = await register({ cacheBytes: 64 << 20 });
    const lacking = (pgno: number) => pgno % 7 === 3;
    const source = wrappedSource(inner.replica, (view) => partlyLocal(view, (pgno) => !lacking(pgno)));
    const name = `fast-${++registered}.db`;
    await ltx.registerReplica(name, source);
    const native = reference.prepare('SELECT id, name, n FROM t WHERE id BETWEEN ? AND ? ORDER BY id');
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    const jRead = vi.spyOn(LtxVfs.prototype, 'jRead');
    const xRead = vi.spyOn(LtxVfs.prototype, 'xRead');
    const stmt = await db.prepare('SELECT id, name, n FROM t WHERE id BETWEEN ? AND ? ORDER BY id');
    const rows: unknown[] = [];
    for await (const row of stmt.iterate(1, 6_000)) rows.push(row);
    expect(rows).toEqual(native.all(1, 6_000));
    // In call order: an xRead followed by a jRead went the async way, any other was answered
    // synchronously. Both kinds occur, and synchronous ones again after the first async one.
    const async = new Set(jRead.mock.invocationCallOrder.map((order) => order - 1));
    const reads = xRead.mock.invocationCallOrder;
    const firstAsync = reads.find((order) => async.has(order));
    expect(firstAsync).toBeDefined();
    expect(reads.filter((order) => order > (firstAsync ?? 0) && !async.has(order)).length).toBeGreaterThan(0);
    // The connection goes on serving, synchronously where it can.
    expect(await stmt.get(5, 5)).toEqual(native.get(5, 5));
    await stmt.finalize();
    await db.close();
    await ltx.unregisterReplica(name);
    await ltx.unregisterReplica(inner.name);
  });
});
