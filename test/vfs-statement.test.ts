/**
 * The statement API (`db.prepare` -> get/all/iterate/columns/run/finalize) and `db.get`'s
 * first-row-only stepping, on real wa-sqlite over a real file replica. Rows are compared with
 * better-sqlite3 on the same database; page reads are counted on the storage client's counters,
 * which are deterministic.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { createLtx, type Ltx } from '../vfs/index.js';
import { TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const ROWS = 60_000;
let tmp: TempDir;
let client: ReplicaClient;
let primary: TestPrimary;
let ltx: Ltx;
/** better-sqlite3 on the primary's image at TXID 1: the oracle. */
let reference: Database.Database;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-stmt-');
  client = openReplicaClient(join(tmp.dir, 'replica'));
  primary = new TestPrimary(client, tmp.dir);
  primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, tag BLOB)');
  const insert = primary.db.prepare('INSERT INTO t VALUES (?, ?, ?, ?)');
  primary.db.transaction(() => {
    for (let id = 1; id <= ROWS; id++) {
      insert.run(id, `name-${id}-${'n'.repeat(id % 37)}`, id / 7, Buffer.from([id & 0xff, (id >> 8) & 0xff]));
    }
  })();
  await primary.sync();
  reference = new Database(primary.dbPath, { readonly: true });
  ltx = await createLtx({ instances: 1 });
}, 120_000);

afterAll(async () => {
  reference?.close();
  await ltx?.close();
  primary?.close();
  await client?.close();
  await tmp?.cleanup();
});

/** A fresh, cold replica (no cache, no read-ahead: every page read is one counted GET). */
async function coldReplica(name: string, readAhead = false): Promise<Replica> {
  const replica = (await ltx.registerReplica(name, client, {
    pollIntervalMs: 0,
    readAhead,
    coalesce: false,
  })) as Replica;
  return replica;
}

function toPlain(row: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (row === undefined) return undefined;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row))
    out[k] = v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v;
  return out;
}

describe('LtxStatement', () => {
  it('get, all and iterate equal better-sqlite3, with positional and named parameters', async () => {
    await coldReplica('rows.db', true);
    const db = await ltx.open('file:rows.db?vfs=ltx');
    try {
      const byId = await db.prepare('SELECT * FROM t WHERE id = ?');
      for (const id of [1, 777, 31_337, ROWS]) {
        expect(toPlain(await byId.get(id))).toEqual(
          toPlain(reference.prepare('SELECT * FROM t WHERE id = ?').get(id) as Record<string, unknown>),
        );
      }
      expect(await byId.get(ROWS + 1)).toBeUndefined();
      expect(byId.columns().map((c) => c.name)).toEqual(['id', 'name', 'score', 'tag']);

      const range = await db.prepare('SELECT id, name FROM t WHERE id BETWEEN :lo AND @hi ORDER BY id');
      const expected = reference
        .prepare('SELECT id, name FROM t WHERE id BETWEEN ? AND ? ORDER BY id')
        .all(100, 350);
      expect(await range.all({ lo: 100, hi: 350 })).toEqual(expected);
      expect(await range.all({ ':lo': 100, '@hi': 350 })).toEqual(expected);
      const iterated: unknown[] = [];
      for await (const row of range.iterate({ lo: 100, hi: 350 })) iterated.push(row);
      expect(iterated).toEqual(expected);

      const two = await db.prepare('SELECT ? + ? AS s');
      expect(await two.get(2, 3)).toEqual({ s: 5 });
      expect(await two.get([4, 5])).toEqual({ s: 9 });
      await byId.finalize();
      await range.finalize();
      await two.finalize();
    } finally {
      await db.close();
      await ltx.unregisterReplica('rows.db');
    }
  });

  it('a get or an iterate that stops early reads only the pages of the rows taken', async () => {
    await coldReplica('cold.db');
    const db = await ltx.open('file:cold.db?vfs=ltx');
    try {
      // Warm the schema and the root page so the counts below are the scan's own pages.
      await db.get('SELECT count(*) AS n FROM sqlite_schema');
      client.resetStats();
      const scan = await db.prepare('SELECT id, name FROM t');
      const first = await scan.get();
      expect(first).toEqual(reference.prepare('SELECT id, name FROM t').get());
      const afterGet = client.stats().get;
      // The root page of t and its leftmost leaf (a 60k-row table is 2-3 levels deep).
      expect(afterGet).toBeGreaterThanOrEqual(1);
      expect(afterGet).toBeLessThanOrEqual(3);

      client.resetStats();
      let taken = 0;
      for await (const row of scan.iterate()) {
        expect(row.id).toBe(++taken);
        if (taken === 5) break;
      }
      // The same first leaf again: it is in the page cache, so no request at all.
      expect(client.stats().get).toBe(0);

      // db.get with LIMIT-less SQL steps one row too.
      client.resetStats();
      expect(await db.get('SELECT id FROM t WHERE id > 20000')).toEqual({ id: 20_001 });
      const getReads = client.stats().get;
      expect(getReads).toBeLessThanOrEqual(3);

      // Control: reading the whole result costs far more pages.
      client.resetStats();
      const all = await scan.all();
      expect(all).toHaveLength(ROWS);
      expect(client.stats().get).toBeGreaterThan(100);
      await scan.finalize();
    } finally {
      await db.close();
      await ltx.unregisterReplica('cold.db');
    }
  });

  it('after break the connection and the statement stay usable; a busy statement is refused', async () => {
    await coldReplica('brk.db', true);
    const db = await ltx.open('file:brk.db?vfs=ltx');
    try {
      const stmt = await db.prepare('SELECT id FROM t WHERE id <= ? ORDER BY id');
      const iterator = stmt.iterate(10);
      expect((await iterator.next()).value).toEqual({ id: 1 });
      await expect(stmt.get(3)).rejects.toMatchObject({
        code: 'BAD_ARGUMENT',
        message: expect.stringContaining('busy'),
      });
      await iterator.return(undefined);
      expect(await stmt.all(3)).toEqual([{ id: 1 }, { id: 2 }, { id: 3 }]);
      for await (const row of stmt.iterate(100)) if (row.id === 2) break;
      expect(await db.get('SELECT count(*) AS n FROM t')).toEqual({ n: ROWS });
      await stmt.finalize();
    } finally {
      await db.close();
      await ltx.unregisterReplica('brk.db');
    }
  });

  it('run is REPLICA_READONLY; finalized statements, several statements and bad SQL are named errors', async () => {
    await coldReplica('err.db', true);
    const db = await ltx.open('file:err.db?vfs=ltx');
    try {
      const insert = await db.prepare("INSERT INTO t (id, name) VALUES (0, 'x')");
      await expect(insert.run()).rejects.toMatchObject({ code: 'REPLICA_READONLY' });
      await expect(insert.all()).rejects.toMatchObject({ code: 'REPLICA_READONLY' });
      const stmt = await db.prepare('SELECT 1 AS one');
      await stmt.finalize();
      await stmt.finalize();
      await expect(stmt.get()).rejects.toMatchObject({
        code: 'BAD_ARGUMENT',
        message: expect.stringContaining('finalized'),
      });
      expect(() => stmt.columns()).toThrow(/finalized/);
      await expect(db.prepare('SELECT 1; SELECT 2')).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
      await expect(db.prepare('SELECT 1; -- trailing comment')).resolves.toBeDefined();
      await expect(db.prepare('SELECT nope FROM t')).rejects.toMatchObject({ code: 'SQL_ERROR' });
      const open = await db.prepare('SELECT id FROM t WHERE id = 1');
      await db.close();
      expect(open.isFinalized).toBe(true);
      await expect(open.get()).rejects.toMatchObject({ code: 'BAD_ARGUMENT' });
    } finally {
      await db.close();
      await ltx.unregisterReplica('err.db');
    }
  });

  it('a statement of a following connection sees the newer TXID once the replica moved', async () => {
    const replica = await coldReplica('follow.db', true);
    const db = await ltx.open('file:follow.db?vfs=ltx');
    try {
      const stmt = await db.prepare('SELECT name FROM t WHERE id = ?');
      expect(await stmt.get(5)).toEqual({ name: `name-5-${'n'.repeat(5)}` });
      expect(await db.get('SELECT name FROM t WHERE id = 5')).toEqual({ name: `name-5-${'n'.repeat(5)}` });
      primary.db.prepare('UPDATE t SET name = ? WHERE id = 5').run('renamed at TXID 2');
      await primary.sync();
      await replica.poll();
      expect(await stmt.get(5)).toEqual({ name: 'renamed at TXID 2' });
      // The cached statement behind db.get moves too.
      expect(await db.get('SELECT name FROM t WHERE id = 5')).toEqual({ name: 'renamed at TXID 2' });
      await stmt.finalize();
    } finally {
      await db.close();
      await ltx.unregisterReplica('follow.db');
    }
  });
});

describe('a cold 1M-row table', () => {
  it('a LIMIT-less get or an iterate left early reads only the pages of the rows taken', async () => {
    const bigTmp = await makeTempDir('ltxvfs-stmt-1m-');
    const bigClient = openReplicaClient(join(bigTmp.dir, 'replica'));
    const big = new TestPrimary(bigClient, bigTmp.dir);
    const bigLtx = await createLtx({ instances: 1 });
    try {
      big.db.exec(`CREATE TABLE big (id INTEGER PRIMARY KEY, x INTEGER NOT NULL);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
        INSERT INTO big SELECT i, (i * 7919) % 1000003 FROM n`);
      await big.sync();
      const native = new Database(big.dbPath, { readonly: true });
      expect(native.prepare('SELECT count(*) AS n FROM big').get()).toEqual({ n: 1_000_000 });
      // Every page read of a cold replica is one counted GET (no read-ahead, no coalescing).
      await bigLtx.registerReplica('big.db', bigClient, {
        pollIntervalMs: 0,
        readAhead: false,
        coalesce: false,
      });
      const db = await bigLtx.open('file:big.db?vfs=ltx');
      const pages = native.pragma('page_count', { simple: true }) as number;
      // A 1M-row rowid table is three levels deep: the root, one interior page, one leaf per row.
      const depth = 3;
      try {
        await db.get('SELECT count(*) AS n FROM sqlite_schema'); // page 1 and the schema
        bigClient.resetStats();
        const scan = await db.prepare('SELECT id, x FROM big');
        expect(await scan.get()).toEqual(native.prepare('SELECT id, x FROM big').get());
        expect(bigClient.stats().get).toBeLessThanOrEqual(depth);

        bigClient.resetStats();
        const taken: unknown[] = [];
        for await (const row of scan.iterate()) {
          taken.push(row);
          if (taken.length === 100) break;
        }
        expect(taken).toEqual(native.prepare('SELECT id, x FROM big LIMIT 100').all());
        // 100 rows of 8-byte integers share the first leaf or two: at most one more page.
        expect(bigClient.stats().get).toBeLessThanOrEqual(1);
        // The connection stays usable after the break, and the statement can run again.
        expect(await scan.get()).toEqual({ id: 1, x: 7919 });

        bigClient.resetStats();
        expect(await db.get('SELECT id, x FROM big WHERE id > 654321')).toEqual(
          native.prepare('SELECT id, x FROM big WHERE id > 654321').get(),
        );
        expect(bigClient.stats().get).toBeLessThanOrEqual(depth);
        // Out of thousands of pages.
        expect(pages).toBeGreaterThan(2_000);
        await scan.finalize();
      } finally {
        native.close();
        await db.close();
      }
    } finally {
      await bigLtx.close();
      big.close();
      await bigClient.close();
      await bigTmp.cleanup();
    }
  }, 120_000);
});
