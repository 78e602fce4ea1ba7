/**
 * Promises of the README's Node API section that no other suite held: `query()` with its
 * `{ columns, rows }` shape and `:name` / `@name` / `$name` parameters, the `litestream_*` PRAGMA
 * aliases (read and move), connections on different wa-sqlite instances really running in
 * parallel (and those sharing one never overlapping), and the page cache staying within
 * `cacheBytes` through scans far larger than it. Every expected row comes from better-sqlite3 on
 * the same database bytes; the TXIDs and times from what the test pushed into the replica.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Replica } from '../src/replica/replica.js';
import { FileReplicaClient } from '../src/storage/index.js';
import type { LtxFileRef } from '../src/storage/types.js';
import type { Txid } from '../src/util/txid.js';
import { Replicator } from '../src/writer/index.js';
import { createLtx, type Ltx } from '../vfs/index.js';
import type { ReplicaView } from '../vfs/replica-port.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import { MemoryReplica } from './support/vfs-memory-replica.js';

/** A memory replica that counts page reads in flight at once, over every view it handed out. */
class CountingReplica extends MemoryReplica {
  inFlight = 0;
  maxInFlight = 0;

  private counted(view: ReplicaView): ReplicaView {
    return {
      ...view,
      readPage: async (pgno: number) => {
        this.inFlight++;
        this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
        try {
          return await view.readPage(pgno);
        } finally {
          this.inFlight--;
        }
      },
    };
  }

  override acquireLatest(): ReplicaView {
    return this.counted(super.acquireLatest());
  }

  override async acquireAt(target: { txid?: Txid; timestamp?: Date }): Promise<ReplicaView> {
    return this.counted(await super.acquireAt(target));
  }
}

const T0 = Date.parse('2026-05-01T10:00:00.000Z');

describe('the Node API: query(), named parameters, litestream_* aliases, parallel instances', () => {
  let tmp: TempDir;
  const states: Array<{ txid: number; path: string; bytes: Uint8Array; at: Date }> = [];
  let ltx: Ltx;
  const replica = new CountingReplica();

  const oracle = (txid: number, sql: string, params: Record<string, unknown> | unknown[] = []) => {
    const db = new Database(defined(states.find((s) => s.txid === txid)).path, { readonly: true });
    try {
      const stmt = db.prepare(sql);
      return Array.isArray(params) ? stmt.all(...params) : stmt.all(params);
    } finally {
      db.close();
    }
  };

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-vfs-api-');
    const path = join(tmp.dir, 'primary.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, v TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (id, k, v) VALUES (?, ?, ?)');
    const take = (txid: number) => {
      db.pragma('wal_checkpoint(TRUNCATE)');
      const bytes = new Uint8Array(readFileSync(path));
      const copy = join(tmp.dir, `state-${txid}.db`);
      writeFileSync(copy, bytes);
      const at = new Date(T0 + txid * 10_000);
      states.push({ txid, path: copy, bytes, at });
      replica.push(txid, bytes, at);
    };
    db.transaction(() => {
      for (let id = 1; id <= 6000; id++) insert.run(id, id % 37, `row ${id} ${'y'.repeat(id % 90)}`);
    })();
    take(1);
    db.exec("UPDATE t SET v = 'second' WHERE k = 5");
    take(2);
    db.exec('DELETE FROM t WHERE id > 5000');
    take(3);
    db.close();
    ltx = await createLtx({ instances: 3, cacheSizeKiB: 64 });
    await ltx.registerReplica('app.db', replica);
  });

  afterAll(async () => {
    await ltx?.close();
    await tmp?.cleanup();
  });

  it('query() gives columns in order and rows as arrays, duplicate names kept apart', async () => {
    const db = await ltx.open('file:app.db?vfs=ltx');
    try {
      const sql = 'SELECT id AS a, v AS a, k FROM t WHERE id IN (?, ?) ORDER BY id';
      const result = await db.query(sql, [7, 4000]);
      expect(result.columns).toEqual(['a', 'a', 'k']);
      const reference = new Database(defined(states.at(-1)).path, { readonly: true });
      try {
        expect(result.rows).toEqual(reference.prepare(sql).raw().all(7, 4000));
      } finally {
        reference.close();
      }
    } finally {
      await db.close();
    }
  });

  it('binds :name, @name and $name from one object, in query(), all(), get() and a prepared statement', async () => {
    const db = await ltx.open('file:app.db?vfs=ltx');
    try {
      for (const prefix of [':', '@', '$']) {
        const sql = `SELECT id, k, v FROM t WHERE k = ${prefix}k AND id BETWEEN ${prefix}lo AND ${prefix}hi ORDER BY id`;
        const params = { k: 5, lo: 100, hi: 3000 };
        const expected = oracle(3, sql, params);
        expect(expected.length).toBeGreaterThan(50);
        expect(await db.all(sql, params), prefix).toEqual(expected);
        const { columns, rows } = await db.query(sql, params);
        expect(columns).toEqual(['id', 'k', 'v']);
        expect(rows.map(([id, k, v]) => ({ id, k, v }))).toEqual(expected);
        expect(await db.get(sql, params)).toEqual(expected[0]);
        const stmt = await db.prepare(sql);
        expect(await stmt.all(params)).toEqual(expected);
        await stmt.finalize();
      }
    } finally {
      await db.close();
    }
  });

  it('litestream_txid / _time / _lag read as ltx_txid / _time / _lag, and move the connection alike', async () => {
    const db = await ltx.open('file:app.db?vfs=ltx');
    try {
      const latest = defined(states.at(-1));
      for (const [ours, theirs, expected] of [
        ['ltx_txid', 'litestream_txid', '0000000000000003'],
        ['ltx_time', 'litestream_time', latest.at.toISOString()],
        ['ltx_lag', 'litestream_lag', '0.25'],
      ] as const) {
        expect(await db.pragma(ours)).toEqual(expected);
        expect(await db.pragma(theirs)).toEqual(expected);
      }
      await db.exec('PRAGMA litestream_txid = 1');
      expect(await db.pragma('ltx_txid')).toBe('0000000000000001');
      const sql = "SELECT count(*) AS n, sum(v = 'second') AS s FROM t";
      expect(await db.all(sql)).toEqual(oracle(1, sql));
      // Between TXID 2 (T0 + 20 s) and 3 (T0 + 30 s): the newest at or before it is 2.
      await db.exec(`PRAGMA litestream_time = '${new Date(T0 + 25_000).toISOString()}'`);
      expect(await db.pragma('litestream_txid')).toBe('0000000000000002');
      expect(await db.pragma('ltx_time')).toBe(defined(states[1]).at.toISOString());
      expect(await db.all(sql)).toEqual(oracle(2, sql));
      await db.exec('PRAGMA litestream_txid = latest');
      expect(await db.pragma('ltx_txid')).toBe('0000000000000003');
    } finally {
      await db.close();
    }
  });

  it('connections on different instances read pages at the same time; one instance never overlaps', async () => {
    const sql = 'SELECT k, count(*) AS n, sum(length(v)) AS l FROM t GROUP BY k ORDER BY k';
    const expected = oracle(3, sql);
    replica.syncHits = false; // every page read suspends, so overlap is observable
    try {
      replica.maxInFlight = 0;
      const dbs = await Promise.all(Array.from({ length: 3 }, () => ltx.open('file:app.db?vfs=ltx')));
      expect(ltx.vfsInstances.length).toBe(3);
      const results = await Promise.all(dbs.map((db) => db.all(sql)));
      for (const r of results) expect(r).toEqual(expected);
      await Promise.all(dbs.map((db) => db.close()));
      expect(replica.maxInFlight, 'page reads of two instances in flight at once').toBeGreaterThan(1);

      const single = await createLtx({ instances: 1, cacheSizeKiB: 64 });
      try {
        await single.registerReplica('app.db', replica);
        replica.maxInFlight = 0;
        const shared = await Promise.all(Array.from({ length: 3 }, () => single.open('file:app.db?vfs=ltx')));
        const serial = await Promise.all(shared.map((db) => db.all(sql)));
        for (const r of serial) expect(r).toEqual(expected);
        await Promise.all(shared.map((db) => db.close()));
        expect(replica.maxInFlight, 'one instance runs one call at a time').toBe(1);
      } finally {
        await single.close();
      }
    } finally {
      replica.syncHits = true;
    }
  });
});

describe('the page cache stays within cacheBytes', () => {
  let tmp: TempDir;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-cache-bound-');
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('scans of a database 40 times the cache leave it at or under its byte bound, rows as SQLite reads them', async () => {
    const dbPath = join(tmp.dir, 'app.db');
    const app = new Database(dbPath);
    app.pragma('journal_mode = wal');
    app.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)');
    app.exec(
      'INSERT INTO t(pad) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000) SELECT randomblob(1000) FROM c',
    );
    const replicaDir = join(tmp.dir, 'replica');
    const replicator = new Replicator({ dbPath, replica: replicaDir, syncIntervalMs: 3_600_000 });
    await replicator.start();
    await replicator.sync();
    await replicator.stop();
    const sql = 'SELECT count(*) AS n, sum(length(pad)) AS bytes, hex(max(pad)) AS top FROM t';
    const expected = app.prepare(sql).get();
    const pageSize = app.pragma('page_size', { simple: true }) as number;
    const fileBytes = (app.pragma('page_count', { simple: true }) as number) * pageSize;
    app.close();

    const cacheBytes = 64 * 1024;
    expect(fileBytes).toBeGreaterThan(40 * cacheBytes);
    const ltx = await createLtx({ instances: 1, cacheSizeKiB: 16 });
    try {
      const registered = await ltx.registerReplica('app', new FileReplicaClient(replicaDir), {
        pollIntervalMs: 0,
        cacheBytes,
      });
      const replica = registered as { cacheStats(): { pages: number; bytes: number } };
      const db = await ltx.open('file:app?vfs=ltx');
      try {
        for (let round = 0; round < 3; round++) {
          expect(await db.get(sql)).toEqual(expected);
          const stats = replica.cacheStats();
          expect(stats.bytes, `round ${round}`).toBeLessThanOrEqual(cacheBytes);
          // it is used, not bypassed: the last pages of the scan are in it
          expect(stats.pages, `round ${round}`).toBeGreaterThan(0);
          expect(stats.pages * pageSize).toBeLessThanOrEqual(cacheBytes);
        }
      } finally {
        await db.close();
      }
    } finally {
      await ltx.close();
    }
  });
});

/**
 * A file replica where the hydrator's reads of one object wait for release(). The hydrator's
 * reads are told apart by their caller (Hydrator.streamObject on the stack; a rename there makes
 * this test time out, not pass): opening reads the same object (small files whole, at offset 0).
 */
class HoldingClient extends FileReplicaClient {
  holdTxid: number | undefined;
  held = 0;
  private open: () => void = () => {};
  private readonly gate: Promise<void> = new Promise((resolve) => {
    this.open = resolve;
  });

  release(): void {
    this.holdTxid = undefined;
    this.open();
  }

  override async readRange(file: LtxFileRef, offset: number, length: number): Promise<Uint8Array> {
    if (file.level === 0 && file.maxTxid === this.holdTxid && /streamObject/.test(new Error().stack ?? '')) {
      this.held++;
      await this.gate;
    }
    return super.readRange(file, offset, length);
  }
}

describe('PRAGMA ltx_hydration while a real hydration runs', () => {
  let tmp: TempDir;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-hydration-text-');
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('reads "running P% (d/t pages) at TXID 2" with t = SQLite\'s page count and P = d/t, then "done 100.0%"', async () => {
    const dbPath = join(tmp.dir, 'app.db');
    const app = new Database(dbPath);
    app.pragma('journal_mode = wal');
    app.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)');
    app.exec(
      'INSERT INTO t(pad) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400) SELECT randomblob(900) FROM c',
    );
    const replicaDir = join(tmp.dir, 'replica');
    const replicator = new Replicator({ dbPath, replica: replicaDir, syncIntervalMs: 3_600_000 });
    await replicator.start();
    await replicator.sync();
    app.exec('UPDATE t SET pad = randomblob(900) WHERE id % 50 = 0');
    const { txid } = await replicator.sync();
    await replicator.stop();
    expect(txid).toBe(2);
    const pageCount = app.pragma('page_count', { simple: true }) as number;
    const sql = 'SELECT count(*) AS n, hex(max(pad)) AS top FROM t';
    const expected = app.prepare(sql).get();
    app.close();

    const client = new HoldingClient(replicaDir);
    // TXID 1 holds every page; those TXID 2 changed come from its own (smaller) object.
    client.holdTxid = 1;
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = (await ltx.registerReplica('app', client, {
        pollIntervalMs: 0,
        hydratePath: join(tmp.dir, 'hydrated.db'),
      })) as Replica;
      const db = await ltx.open('file:app?vfs=ltx');
      try {
        // Event-driven: the hydrator has asked for the held object, so it cannot be done.
        await waitUntil(() => client.held > 0);
        const text = String(await db.pragma('ltx_hydration'));
        const m = /^running (\d+\.\d)% \((\d+)\/(\d+) pages\) at TXID 0000000000000002$/.exec(text);
        expect(m, text).not.toBeNull();
        const [, percent, done, total] = m ?? [];
        expect(Number(total)).toBe(pageCount);
        expect(Number(done)).toBeLessThan(pageCount);
        expect(percent).toBe(((100 * Number(done)) / pageCount).toFixed(1));
        expect(await db.pragma('litestream_hydration_progress')).toBe(text);
        expect(replica.hydration()).toMatchObject({ state: 'running', pagesDone: Number(done) });
        client.release();
        await waitUntil(() => replica.hydration().state === 'done');
        expect(await db.pragma('ltx_hydration')).toBe(
          `done 100.0% (${pageCount}/${pageCount} pages) at TXID 0000000000000002`,
        );
        expect(await db.get(sql)).toEqual(expected);
      } finally {
        await db.close();
      }
    } finally {
      client.release();
      await ltx.close();
    }
  });
});

/** Waits for a condition that events of the code under test make true (bounded by the test timeout). */
async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
