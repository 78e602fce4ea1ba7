/**
 * The connection's fast path on wa-sqlite's synchronous build (issue 14): a plain query of a
 * following connection runs there while every page it reads is local, and the whole call moves
 * to the waiting (Asyncify/JSPI) connection at the first page that is not. Answers are compared
 * with better-sqlite3 on the primary's own file; which path answered is read from the
 * connection's counters (deterministic), never inferred from time.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Replica, ReplicaView } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { formatTxid } from '../src/util/txid.js';
import { createLtx, type Ltx, type LtxDatabase, LtxVfs } from '../vfs/index.js';
import { defined } from './support/defined.js';
import { partlyLocal, wrappedSource } from './support/partial-views.js';
import { TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const ROWS = 20_000;
let tmp: TempDir;
let client: ReplicaClient;
let primary: TestPrimary;
let ltx: Ltx;
let registered = 0;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-sync-build-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
  primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, n INTEGER)');
  const insert = primary.db.prepare('INSERT INTO t VALUES (?, ?, ?)');
  primary.db.transaction(() => {
    for (let id = 1; id <= ROWS; id++) insert.run(id, `name-${id}-${'y'.repeat(id % 41)}`, id * 3);
  })();
  await primary.sync();
  ltx = await createLtx({ instances: 1, cacheSizeKiB: 64 });
}, 120_000);

afterAll(async () => {
  await ltx?.close();
  primary?.close();
  await client?.close();
  await tmp?.cleanup();
});

/** better-sqlite3 on the primary as it is now: the oracle. */
function native<T>(use: (db: Database.Database) => T): T {
  const db = new Database(primary.dbPath, { readonly: true });
  try {
    return use(db);
  } finally {
    db.close();
  }
}

async function warmReplica(): Promise<{ name: string; replica: Replica }> {
  const name = `sync-${++registered}.db`;
  const replica = (await ltx.registerReplica(name, client, {
    pollIntervalMs: 0,
    cacheBytes: 64 << 20,
  })) as Replica;
  return { name, replica };
}

function counts(db: LtxDatabase): { fast: number; notLocal: number } {
  const { fast, notLocal } = db.fastPathCounts;
  return { fast, notLocal };
}

describe('the fast path on the synchronous build', () => {
  it('answers point lookups, ranges and scans there once the pages are local, exactly as SQLite does', async () => {
    const { name } = await warmReplica();
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    try {
      const scan = 'SELECT count(*) AS c, sum(n) AS s, max(length(name)) AS m FROM t';
      // The first scan has to fetch: the waiting path answers it and fills the cache.
      expect(await db.get(scan)).toEqual(native((n) => n.prepare(scan).get()));
      expect(counts(db)).toEqual({ fast: 0, notLocal: 1 });
      // After that miss the statement sits out its next call (its backoff), on the waiting path.
      expect(await db.get(scan)).toEqual(native((n) => n.prepare(scan).get()));
      const before = counts(db);
      expect(before).toEqual({ fast: 0, notLocal: 1 });
      const stmt = await db.prepare('SELECT id, name, n FROM t WHERE id = ?');
      // The waiting connection's VFS (the pool's only instance) takes no lock from here on.
      const waitingLocks = vi.spyOn(defined(ltx.vfsInstances[0]), 'jLock');
      const ids = [1, 2, 777, 10_001, ROWS, ROWS + 1];
      for (const id of ids) {
        expect(await stmt.get(id)).toEqual(
          native((n) => n.prepare('SELECT id, name, n FROM t WHERE id = ?').get(id)),
        );
        expect(await db.get('SELECT id, name, n FROM t WHERE id = ?', [id])).toEqual(
          native((n) => n.prepare('SELECT id, name, n FROM t WHERE id = ?').get(id)),
        );
      }
      const range = 'SELECT id, name FROM t WHERE id BETWEEN ? AND ? ORDER BY id DESC';
      expect(await db.all(range, [100, 1_100])).toEqual(native((n) => n.prepare(range).all(100, 1_100)));
      expect(await stmt.all(5)).toEqual(
        native((n) => n.prepare('SELECT id, name, n FROM t WHERE id = ?').all(5)),
      );
      expect(await db.query(scan)).toEqual({
        columns: ['c', 's', 'm'],
        rows: [Object.values(native((n) => n.prepare(scan).get()) as object)],
      });
      // Every one of those calls was answered on the synchronous build, a lookup that finds no
      // row (ROWS + 1) included, and none ran again on the waiting connection.
      expect(counts(db)).toEqual({ fast: before.fast + ids.length * 2 + 3, notLocal: before.notLocal });
      expect(waitingLocks).not.toHaveBeenCalled();
      waitingLocks.mockRestore();
    } finally {
      await db.close();
      await ltx.unregisterReplica(name);
    }
  });

  it('moves a statement to the waiting path at the first page that is not local, mid-statement, then back once it is', async () => {
    const inner = await warmReplica();
    const warm = await ltx.open(`file:${inner.name}?vfs=ltx`);
    await warm.all('SELECT * FROM t'); // every page into the replica's cache
    await warm.close();
    let lacking = true;
    const half = Math.floor(inner.replica.acquireLatest().pageCount / 2);
    // The second half of the table's pages cannot be read without waiting.
    const local = (pgno: number) => !lacking || pgno < half || pgno % 5 !== 2;
    const source = wrappedSource(inner.replica, (view) => partlyLocal(view, local));
    const name = `sync-${++registered}.db`;
    await ltx.registerReplica(name, source);
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    try {
      const sql = 'SELECT id, name, n FROM t WHERE id > ? ORDER BY id';
      const expected = native((n) => n.prepare(sql).all(0));
      // Page 1, the schema and the first half of the table are local: the statement starts on the
      // synchronous build and meets a page that is not partway through; the waiting path then
      // answers the whole call.
      let before = counts(db);
      expect(await db.all(sql, [0])).toEqual(expected);
      expect(counts(db)).toEqual({ fast: before.fast, notLocal: before.notLocal + 1 });
      lacking = false;
      // After a miss the statement sits out one call (its backoff), then runs fast again.
      before = counts(db);
      expect(await db.all(sql, [0])).toEqual(expected);
      expect(counts(db)).toEqual(before);
      expect(await db.all(sql, [0])).toEqual(expected);
      expect(counts(db)).toEqual({ fast: before.fast + 1, notLocal: before.notLocal });
    } finally {
      await db.close();
      await ltx.unregisterReplica(name);
      await ltx.unregisterReplica(inner.name);
    }
  });

  it("a following connection's cached statements see each new TXID on the synchronous build", async () => {
    const { name, replica } = await warmReplica();
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    try {
      const sql = 'SELECT name, n FROM t WHERE id = ?';
      const stmt = await db.prepare(sql);
      for (let round = 1; round <= 3; round++) {
        primary.db.prepare('UPDATE t SET name = ?, n = n + 1 WHERE id IN (7, 15000)').run(`renamed-${round}`);
        await primary.sync();
        await replica.poll();
        await db.all('SELECT * FROM t WHERE id IN (7, 15000)'); // fetches the changed pages if need be
        const before = counts(db);
        for (const id of [7, 15000, 8]) {
          const want = native((n) => n.prepare(sql).get(id));
          expect(await stmt.get(id)).toEqual(want);
          expect(await db.get(sql, [id])).toEqual(want);
        }
        expect(await db.pragma('ltx_txid')).toBe(formatTxid(primary.txid));
        expect(counts(db).fast).toBe(before.fast + 6);
      }
      await stmt.finalize();
    } finally {
      await db.close();
      await ltx.unregisterReplica(name);
    }
  });

  it('reads page 1 once per TXID, not at every transaction (SQLite reads its change counter each time)', async () => {
    const inner = await warmReplica();
    let pageOneReads = 0;
    const counting = (view: ReplicaView): ReplicaView => ({
      ...partlyLocal(view, () => true),
      readPageSync: (pgno) => {
        const page = view.readPageSync(pgno);
        if (pgno === 1 && page !== undefined) pageOneReads++;
        return page;
      },
    });
    const source = wrappedSource(inner.replica, (view) => counting(view));
    const name = `sync-${++registered}.db`;
    await ltx.registerReplica(name, source);
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    try {
      const sql = 'SELECT n FROM t WHERE id = ?';
      await db.all('SELECT * FROM t');
      await db.all('SELECT * FROM t');
      const before = pageOneReads;
      for (let id = 1; id <= 200; id++) {
        expect(await db.get(sql, [id])).toEqual(native((n) => n.prepare(sql).get(id)));
      }
      expect(counts(db).fast).toBeGreaterThanOrEqual(200);
      expect(pageOneReads).toBe(before);
      primary.db.prepare('UPDATE t SET n = -1 WHERE id = 9').run();
      await primary.sync();
      await inner.replica.poll();
      // At the new TXID each of the connection's two SQLite connections (fast and waiting) makes
      // its page 1 once: the change counter in it moved, so SQLite drops its stale pages.
      const atNew = pageOneReads;
      for (let id = 1; id <= 50; id++)
        expect(await db.get(sql, [id])).toEqual(native((n) => n.prepare(sql).get(id)));
      expect(await db.get(sql, [9])).toEqual({ n: -1 });
      expect(pageOneReads - atNew).toBeGreaterThanOrEqual(1);
      expect(pageOneReads - atNew).toBeLessThanOrEqual(2);
    } finally {
      await db.close();
      await ltx.unregisterReplica(name);
      await ltx.unregisterReplica(inner.name);
    }
  });

  it('leaves connections with a state of their own on the waiting path: moved by PRAGMA, mid-iteration', async () => {
    const { name } = await warmReplica();
    const pinnedTo = primary.txid;
    const sql = 'SELECT name FROM t WHERE id = 7';
    const atPin = native((n) => n.prepare(sql).get());
    primary.db.prepare("UPDATE t SET name = 'after the pin' WHERE id = 7").run();
    await primary.sync();
    const replica = ltx.replica(name) as Replica;
    await replica.poll();
    const warm = await ltx.open(`file:${name}?vfs=ltx`);
    await warm.all('SELECT * FROM t'); // every page of the latest TXID into the replica's cache
    await warm.close();
    const moved = await ltx.open(`file:${name}?vfs=ltx`);
    const iterating = await ltx.open(`file:${name}?vfs=ltx`);
    try {
      expect(await moved.get(sql)).toEqual({ name: 'after the pin' });
      const fastBefore = counts(moved).fast;
      expect(fastBefore).toBe(1);
      await moved.pragma('ltx_txid', pinnedTo);
      expect(await moved.get(sql)).toEqual(atPin);
      expect(await moved.get(sql)).toEqual(atPin);
      expect(counts(moved).fast).toBe(fastBefore);

      // A PRAGMA that only reads, and EXPLAIN, leave the fast path on.
      expect(await iterating.pragma('ltx_txid')).toBe(formatTxid(primary.txid));
      const plan = await iterating.all(`EXPLAIN QUERY PLAN ${sql}`);
      expect(plan.map((row) => row.detail)).toEqual(
        native((n) => n.prepare(`EXPLAIN QUERY PLAN ${sql}`).all()).map(
          (row) => (row as { detail: string }).detail,
        ),
      );
      expect(await iterating.get(sql)).toEqual({ name: 'after the pin' });
      const stmt = await iterating.prepare('SELECT id FROM t WHERE id <= 3 ORDER BY id');
      const seen: unknown[] = [];
      const during = counts(iterating);
      for await (const row of stmt.iterate()) {
        seen.push(row, await iterating.get(sql));
      }
      expect(seen).toEqual([
        { id: 1 },
        { name: 'after the pin' },
        { id: 2 },
        { name: 'after the pin' },
        { id: 3 },
        { name: 'after the pin' },
      ]);
      expect(counts(iterating).fast).toBe(during.fast);
      expect(await iterating.get(sql)).toEqual({ name: 'after the pin' });
      expect(counts(iterating).fast).toBe(during.fast + 1);
      await stmt.finalize();
    } finally {
      await moved.close();
      await iterating.close();
      await ltx.unregisterReplica(name);
    }
  });

  it('a pinned connection answers on an immutable connection: no locks, its TXID after the primary moved, no state held between calls', async () => {
    const name = `sync-${++registered}.db`;
    const hydratePath = join(tmp.dir, `${name}.hydrated`);
    const replica = (await ltx.registerReplica(name, client, { pollIntervalMs: 0, hydratePath })) as Replica;
    const done = async (txid: number) => {
      for (let i = 0; i < 500; i++) {
        const h = replica.hydration();
        if (h.state === 'done' && h.txid === txid) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`hydration did not reach TXID ${txid}: ${JSON.stringify(replica.hydration())}`);
    };
    await done(primary.txid);
    const pinnedTo = primary.txid;
    const image = join(tmp.dir, `${name}-at-${pinnedTo}.db`);
    writeFileSync(image, defined(primary.images.get(pinnedTo)));
    const atPin = new Database(image, { readonly: true });
    const db = await ltx.open(`file:${name}?vfs=ltx&txid=${pinnedTo}`);
    try {
      const sql = 'SELECT id, name, n FROM t WHERE id = ?';
      for (const id of [1, 2, 3]) expect(await db.get(sql, [id])).toEqual(atPin.prepare(sql).get(id));
      const before = counts(db);
      expect(before.fast).toBeGreaterThan(0);
      const jLock = vi.spyOn(LtxVfs.prototype, 'jLock');
      for (let id = 1; id <= 100; id++)
        expect(await db.get(sql, [id * 37])).toEqual(atPin.prepare(sql).get(id * 37));
      // Every one answered on the immutable connection, which took no lock at all.
      expect(counts(db)).toEqual({ fast: before.fast + 100, notLocal: before.notLocal });
      expect(jLock).not.toHaveBeenCalled();
      jLock.mockRestore();
      // The primary moves on; the idle pinned connection holds no state, so the hydrated file
      // follows (a view it kept would stop it at the old TXID).
      primary.db.prepare("UPDATE t SET name = 'moved on' WHERE id = 37").run();
      await primary.sync();
      await replica.poll();
      await done(primary.txid);
      expect(await db.get(sql, [37])).toEqual(atPin.prepare(sql).get(37));
    } finally {
      atPin.close();
      await db.close();
      await ltx.unregisterReplica(name);
    }
  });

  it('a query that failed to prepare (its table not there yet) runs there once the primary creates it', async () => {
    const { name, replica } = await warmReplica();
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    try {
      const sql = 'SELECT count(*) AS c FROM later_table';
      await expect(db.get(sql)).rejects.toMatchObject({ code: 'SQL_ERROR' });
      primary.db.exec('CREATE TABLE later_table (x); INSERT INTO later_table VALUES (1), (2)');
      await primary.sync();
      await replica.poll();
      await db.all('SELECT * FROM sqlite_schema'); // the new schema pages into the cache
      const answers: unknown[] = [];
      for (let call = 0; call < 4; call++) answers.push(await db.get(sql));
      expect(answers).toEqual(Array(4).fill({ c: 2 }));
      // After its backoff the statement is prepared and answered on the synchronous build.
      const before = counts(db).fast;
      expect(await db.get(sql)).toEqual({ c: 2 });
      expect(counts(db).fast).toBe(before + 1);
    } finally {
      await db.close();
      await ltx.unregisterReplica(name);
    }
  });

  it('errors keep their codes, statements that are not plain queries never run there, and fastPath: false turns it off', async () => {
    const { name } = await warmReplica();
    const db = await ltx.open(`file:${name}?vfs=ltx`);
    const off = await createLtx({ instances: 1, fastPath: false });
    try {
      await db.get('SELECT count(*) FROM t');
      await expect(db.get('SELECT * FROM missing_table')).rejects.toMatchObject({ code: 'SQL_ERROR' });
      await expect(db.get('SELECT 1; SELECT 2')).resolves.toEqual({ 2: 2 });
      await expect(db.get('SELECT * FROM t WHERE id = :id', { other: 1 })).rejects.toMatchObject({
        code: 'BAD_ARGUMENT',
      });
      expect(await db.get('SELECT name FROM t WHERE id = :id', { id: 3 })).toEqual(
        native((n) => n.prepare('SELECT name FROM t WHERE id = :id').get({ id: 3 })),
      );
      const before = counts(db).fast;
      await expect(db.exec('CREATE TEMP TABLE scratch AS SELECT 1 AS one')).resolves.toBeUndefined();
      // The temp table lives on this connection only: the waiting path must answer from now on.
      expect(await db.get('SELECT one FROM temp.scratch')).toEqual({ one: 1 });
      expect(await db.get('SELECT count(*) AS c FROM t')).toEqual({ c: ROWS });
      expect(counts(db).fast).toBe(before);

      await off.registerReplica(name, client, { pollIntervalMs: 0 });
      const plain = await off.open(`file:${name}?vfs=ltx`);
      expect(await plain.get('SELECT count(*) AS c FROM t')).toEqual({ c: ROWS });
      expect(await plain.get('SELECT count(*) AS c FROM t')).toEqual({ c: ROWS });
      expect(counts(plain)).toEqual({ fast: 0, notLocal: 0 });
    } finally {
      await db.close();
      await off.close();
      await ltx.unregisterReplica(name);
    }
  });
});
