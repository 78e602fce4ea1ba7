import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isLtxvfsError } from '../src/util/errors.js';
import { createLtx, type Ltx } from '../vfs/index.js';
import { patchPageOne } from '../vfs/page-one.js';
import { parsePragmaRequest } from '../vfs/pragmas.js';
import { parseTimeTarget } from '../vfs/time-target.js';
import { defined } from './support/defined.js';
import { MemoryReplica } from './support/vfs-memory-replica.js';

// Unit tests of the VFS and the Node API over an in-memory stand-in of the replica: every state
// is the bytes of a real database file written by better-sqlite3, and better-sqlite3 on those
// same bytes is the oracle.

const dir = mkdtempSync(join(tmpdir(), 'ltxvfs-vfs-unit-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const QUERIES: Array<[string, string, unknown[]?]> = [
  ['point lookup', 'SELECT * FROM t WHERE id = ?', [4242]],
  ['index lookup', 'SELECT id, v FROM t WHERE k = ? ORDER BY id', [17]],
  ['range scan', 'SELECT id, k, v FROM t WHERE id BETWEEN ? AND ? ORDER BY id', [1000, 1400]],
  ['join', 'SELECT t.id, u.w FROM u JOIN t ON t.id = u.t_id WHERE u.id % 97 = 0 ORDER BY u.id'],
  ['aggregate', 'SELECT k % 10 AS g, count(*) AS n, sum(id) AS s, max(v) AS m FROM t GROUP BY g ORDER BY g'],
  ['order by (more rows than the cache)', 'SELECT id, v FROM t ORDER BY v DESC, id LIMIT 15000'],
  ['count distinct', 'SELECT count(DISTINCT v) AS d, count(DISTINCT k) AS dk FROM t'],
  ['blobs and big integers', 'SELECT id, b, big FROM t WHERE id % 1000 = 0 ORDER BY id'],
];

interface Snapshot {
  txid: number;
  bytes: Uint8Array;
  path: string;
}

/** Three states of one WAL-mode database (the byte-18/19 = 2 case), each checkpointed into a file. */
function buildSnapshots(): Snapshot[] {
  const path = join(dir, 'primary.db');
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('page_size = 4096');
  db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT, b BLOB, big INTEGER);
           CREATE INDEX t_k ON t(k);
           CREATE TABLE u(id INTEGER PRIMARY KEY, t_id INTEGER, w TEXT);`);
  const insertT = db.prepare('INSERT INTO t VALUES (?, ?, ?, ?, ?)');
  const insertU = db.prepare('INSERT INTO u VALUES (?, ?, ?)');
  let seed = 7;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  db.transaction(() => {
    for (let id = 1; id <= 20000; id++) {
      const big = 2n ** 60n + BigInt(id);
      insertT.run(
        id,
        rand() % 500,
        `v${rand().toString(36)}-${'x'.repeat(rand() % 80)}`,
        Buffer.from([id & 255, 0, 7]),
        big,
      );
      if (id % 3 === 0) insertU.run(id, rand() % 20000, `w${id}`);
    }
  })();
  const snapshots: Snapshot[] = [];
  const take = (txid: number) => {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const bytes = new Uint8Array(readFileSync(path));
    const copy = join(dir, `state-${txid}.db`);
    writeFileSync(copy, bytes);
    snapshots.push({ txid, bytes, path: copy });
  };
  take(1);
  db.exec("UPDATE t SET v = 'changed' WHERE id = 4242; DELETE FROM t WHERE id BETWEEN 1100 AND 1200");
  take(2);
  db.exec(`CREATE TABLE extra(x); INSERT INTO extra VALUES (1), (2); UPDATE t SET k = 17 WHERE id < 50`);
  take(3);
  db.close();
  return snapshots;
}

function oracle(path: string, sql: string, params: unknown[] = []): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    const stmt = db.prepare(sql);
    stmt.safeIntegers(true);
    return normalize(stmt.all(...params));
  } finally {
    db.close();
  }
}

/** Same shape for both sides: bigints that fit become numbers, blobs become hex. */
function normalize(rows: unknown[]): unknown[] {
  return rows.map((row) =>
    Object.fromEntries(
      Object.entries(row as Record<string, unknown>).map(([k, v]) => {
        if (typeof v === 'bigint') return [k, Number.isSafeInteger(Number(v)) ? Number(v) : v];
        if (v instanceof Uint8Array) return [k, Buffer.from(v).toString('hex')];
        return [k, v];
      }),
    ),
  );
}

describe('pure parts', () => {
  it('parses ISO and relative times', () => {
    const now = new Date('2026-03-01T12:00:00Z');
    expect(parseTimeTarget('2026-02-03T04:05:06Z', now).toISOString()).toBe('2026-02-03T04:05:06.000Z');
    expect(parseTimeTarget('2026-02-03T04:05:06.5+01:00', now).toISOString()).toBe(
      '2026-02-03T03:05:06.500Z',
    );
    expect(parseTimeTarget('2026-02-03', now).toISOString()).toBe('2026-02-03T00:00:00.000Z');
    expect(parseTimeTarget('-5 minutes', now).toISOString()).toBe('2026-03-01T11:55:00.000Z');
    expect(parseTimeTarget('5 minutes ago', now).toISOString()).toBe('2026-03-01T11:55:00.000Z');
    expect(parseTimeTarget('-1h30m', now).toISOString()).toBe('2026-03-01T10:30:00.000Z');
    expect(parseTimeTarget('2 hours, 15 mins ago', now).toISOString()).toBe('2026-03-01T09:45:00.000Z');
    expect(parseTimeTarget('1 day ago', now).toISOString()).toBe('2026-02-28T12:00:00.000Z');
    for (const bad of ['yesterday-ish', '5 parsecs ago', '-', '2026-13-45', 'soon']) {
      expect(() => parseTimeTarget(bad, now), bad).toThrow(/invalid time/);
    }
  });

  it('parses pragma requests', () => {
    expect(parsePragmaRequest('ltx_txid', null)).toEqual({ kind: 'read' });
    expect(parsePragmaRequest('ltx_txid', 'LATEST')).toEqual({ kind: 'latest' });
    expect(parsePragmaRequest('litestream_txid', '0x10')).toEqual({ kind: 'txid', txid: 16 });
    expect(parsePragmaRequest('ltx_txid', '0000000000000011')).toEqual({ kind: 'txid', txid: 17 });
    expect(parsePragmaRequest('ltx_txid', '12')).toEqual({ kind: 'txid', txid: 12 });
    expect(() => parsePragmaRequest('ltx_txid', 'twelve')).toThrow(/invalid TXID "twelve"/);
    expect(() => parsePragmaRequest('ltx_lag', '3')).toThrow(/read-only/);
    expect(parsePragmaRequest('ltx_time', '2026-01-01T00:00:00Z')).toEqual({
      kind: 'time',
      at: new Date('2026-01-01T00:00:00Z'),
    });
  });

  it('patches page 1 into rollback mode with a TXID change counter and the view page count', () => {
    const page = new Uint8Array(4096).fill(0xaa);
    page[18] = 2;
    page[19] = 2;
    const out = patchPageOne(page, 0x1_0000_0005, 77);
    const view = new DataView(out.buffer);
    expect([out[18], out[19]]).toEqual([1, 1]);
    expect(view.getUint32(24)).toBe(5);
    expect(view.getUint32(92)).toBe(5);
    expect(view.getUint32(28)).toBe(77);
    expect(out[100]).toBe(0xaa);
    expect(page[18]).toBe(2); // the replica's bytes stay true
  });
});

describe('the ltx VFS over an in-memory replica', () => {
  let snapshots: Snapshot[];
  let replica: MemoryReplica;
  let other: MemoryReplica;
  let ltx: Ltx;

  beforeAll(async () => {
    snapshots = buildSnapshots();
    replica = new MemoryReplica();
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    for (const [i, s] of snapshots.entries()) replica.push(s.txid, s.bytes, new Date(t0 + i * 60_000));
    const otherDb = new Database(join(dir, 'other.db'));
    otherDb.exec(
      "CREATE TABLE names(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO names VALUES (4242, 'answer'), (7, 'seven')",
    );
    otherDb.close();
    other = new MemoryReplica();
    other.push(9, new Uint8Array(readFileSync(join(dir, 'other.db'))));
    ltx = await createLtx({ instances: 3, cacheSizeKiB: 64 });
    await ltx.registerReplica('replica.db', replica);
    await ltx.registerReplica('other', other);
  }, 60_000);

  function snapshotAt(txid: number): Snapshot {
    const snap = snapshots.find((s) => s.txid === txid);
    if (!snap) throw new Error(`no snapshot at TXID ${txid}`);
    return snap;
  }

  afterAll(async () => {
    await ltx?.close();
    expect([...replica.held.values()].every((n) => n === 0)).toBe(true);
  });

  for (const mode of ['cache hits (sync reads)', 'cache misses (async reads)'] as const) {
    it(`answers every query type like SQLite, latest and historical, with ${mode}`, async () => {
      replica.syncHits = mode.startsWith('cache hits');
      for (const snap of snapshots) {
        const db = await ltx.open(`file:replica.db?vfs=ltx&txid=${snap.txid}`);
        for (const [what, sql, params] of QUERIES) {
          expect(normalize(await db.all(sql, params as never)), `${what} @${snap.txid}`).toEqual(
            oracle(snap.path, sql, params),
          );
        }
        await db.close();
      }
      const latest = await ltx.open('file:replica?vfs=ltx');
      const last = defined(snapshots.at(-1));
      for (const [what, sql, params] of QUERIES) {
        expect(normalize(await latest.all(sql, params as never)), what).toEqual(
          oracle(last.path, sql, params),
        );
      }
      expect(await latest.get('SELECT count(*) AS n FROM extra')).toEqual({ n: 2 });
      await latest.close();
      replica.syncHits = true;
    });
  }

  it('returns integers beyond 2^53 as bigint and blobs as bytes', async () => {
    const db = await ltx.open('replica.db');
    const row = await db.get('SELECT big, b, typeof(big) AS ty FROM t WHERE id = ?', [3]);
    expect(row).toEqual({ big: 2n ** 60n + 3n, b: new Uint8Array([3, 0, 7]), ty: 'integer' });
    // a whole number beyond 32 bits binds as INTEGER, not REAL
    expect(await db.get('SELECT id FROM t WHERE big = ?', [2n ** 60n + 9n])).toEqual({ id: 9 });
    expect(await db.get('SELECT typeof(?) AS ty', [2 ** 40])).toEqual({ ty: 'integer' });
    expect(await db.get('SELECT :a + $b AS s', { a: 1, b: 2 })).toEqual({ s: 3 });
    await db.close();
  });

  it('moves with PRAGMA ltx_txid / ltx_time between transactions and reports where it is', async () => {
    const db = await ltx.open('file:replica.db?vfs=ltx');
    expect(await db.pragma('ltx_txid')).toBe('0000000000000003');
    expect(await db.pragma('litestream_txid')).toBe('0000000000000003');
    expect(await db.pragma('ltx_time')).toBe('2026-01-01T00:02:00.000Z');
    await db.pragma('ltx_txid', 1);
    expect(await db.pragma('ltx_txid')).toBe('0000000000000001');
    const atOne = oracle(snapshotAt(1).path, 'SELECT v FROM t WHERE id = 4242');
    expect(atOne).toEqual([{ v: expect.not.stringMatching(/^changed$/) }]);
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).toEqual(atOne[0]);
    await db.exec("PRAGMA ltx_time = '2026-01-01T00:01:30Z'");
    expect(await db.pragma('ltx_txid')).toBe('0000000000000002');
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).toEqual({ v: 'changed' });
    await db.exec("PRAGMA litestream_time = 'latest'");
    expect(await db.pragma('ltx_txid')).toBe('0000000000000003');
    await db.exec('PRAGMA ltx_txid = 0x2');
    expect(await db.get('SELECT count(*) AS n FROM sqlite_schema WHERE name = ?', ['extra'])).toEqual({
      n: 0,
    });
    await db.exec('PRAGMA ltx_txid = latest');
    expect(await db.get('SELECT count(*) AS n FROM sqlite_schema WHERE name = ?', ['extra'])).toEqual({
      n: 1,
    });
    // the same SQL text again on this connection (a cached statement) follows the moves too,
    // including schema differences between TXIDs
    expect(await db.get('SELECT count(*) AS n FROM extra')).toEqual({ n: 2 });
    await db.exec('PRAGMA ltx_txid = 2');
    const gone = await db.get('SELECT count(*) AS n FROM extra').catch((e) => e);
    expect(gone.message).toMatch(/no such table: extra/);
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).toEqual({ v: 'changed' });
    await db.exec('PRAGMA ltx_txid = 1');
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).toEqual(
      oracle(snapshotAt(1).path, 'SELECT v FROM t WHERE id = 4242')[0],
    );
    await db.exec('PRAGMA ltx_txid = latest');
    expect(await db.get('SELECT count(*) AS n FROM extra')).toEqual({ n: 2 });
    expect(Number(await db.pragma('ltx_lag'))).toBe(0.25);
    expect(await db.pragma('ltx_hydration')).toBe('off');
    await db.close();
  });

  it('reports hydration progress as the README shows it, under both names', async () => {
    const db = await ltx.open('replica.db');
    try {
      replica.hydrationStatus = {
        state: 'running',
        txid: 0x12,
        pagesDone: 1234,
        pagesTotal: 2741,
        bytesDownloaded: 1,
      };
      // 1234 / 2741 = 45.02%: the README's own example
      for (const name of ['ltx_hydration', 'litestream_hydration_progress'])
        expect(await db.pragma(name)).toBe('running 45.0% (1234/2741 pages) at TXID 0000000000000012');
      replica.hydrationStatus = { state: 'done', txid: 3, pagesDone: 7, pagesTotal: 7, bytesDownloaded: 1 };
      expect(await db.pragma('ltx_hydration')).toBe('done 100.0% (7/7 pages) at TXID 0000000000000003');
      replica.hydrationStatus = {
        state: 'error',
        txid: 3,
        pagesDone: 1,
        pagesTotal: 8,
        bytesDownloaded: 1,
        error: 'ENOSPC',
      };
      expect(await db.pragma('ltx_hydration')).toBe(
        'error 12.5% (1/8 pages) at TXID 0000000000000003: ENOSPC',
      );
    } finally {
      replica.hydrationStatus = MemoryReplica.hydrationOff;
      await db.close();
    }
  });

  it('keeps one TXID for a whole read transaction and refuses to move inside it', async () => {
    const local = new MemoryReplica();
    local.push(1, defined(snapshots[0]).bytes);
    await ltx.registerReplica('moving', local);
    const db = await ltx.open('file:moving?vfs=ltx');
    await db.exec('BEGIN');
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).not.toEqual({ v: 'changed' });
    local.push(2, defined(snapshots[1]).bytes);
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).not.toEqual({ v: 'changed' });
    expect(await db.pragma('ltx_txid')).toBe('0000000000000001');
    const busy = await db.exec('PRAGMA ltx_txid = 2').catch((e) => e);
    expect(busy.message).toMatch(/inside an open read transaction/);
    await db.exec('COMMIT');
    expect(await db.get('SELECT v FROM t WHERE id = 4242')).toEqual({ v: 'changed' });
    expect(await db.pragma('ltx_txid')).toBe('0000000000000002');
    await db.close();
    expect(local.held.get(1)).toBe(0);
    expect(local.held.get(2)).toBe(0);
    await ltx.unregisterReplica('moving');
  });

  it('queries several replicas together with ATTACH', async () => {
    const db = await ltx.open('file:replica.db?vfs=ltx&txid=2');
    await db.exec("ATTACH 'file:other.db?vfs=ltx' AS other");
    const rows = await db.all(
      'SELECT t.id, t.v, n.name FROM t JOIN other.names n ON n.id = t.id ORDER BY t.id',
    );
    expect(rows).toEqual(
      normalize(
        oracle(defined(snapshots[1]).path, 'SELECT id, v FROM t WHERE id IN (7, 4242) ORDER BY id').map(
          (r, i) => ({
            ...(r as object),
            name: i === 0 ? 'seven' : 'answer',
          }),
        ),
      ),
    );
    expect(await db.pragma('other.ltx_txid')).toBe('0000000000000009');
    expect(await db.pragma('ltx_txid')).toBe('0000000000000002');
    await db.close();
  });

  it('runs parallel queries on several instances and serializes those sharing one', async () => {
    const last = defined(snapshots.at(-1));
    const sql = 'SELECT k, count(*) AS n, sum(length(v)) AS l FROM t GROUP BY k ORDER BY k';
    const expected = oracle(last.path, sql);
    replica.syncHits = false; // every page read suspends: overlapping calls on one instance would crash
    const dbs = await Promise.all(Array.from({ length: 5 }, () => ltx.open('replica.db')));
    const results = await Promise.all(dbs.map((db) => db.all(sql)));
    for (const r of results) expect(normalize(r)).toEqual(expected);
    replica.syncHits = true;
    await Promise.all(dbs.map((db) => db.close()));
    expect(ltx.vfsInstances.length).toBe(3);
  });

  it('gives the clear, typed error for writes, bad URIs, unknown names and TXIDs, and vanished objects', async () => {
    const db = await ltx.open('file:replica.db?vfs=ltx');
    for (const sql of ['INSERT INTO t(id) VALUES (999999)', 'CREATE TABLE z(a)', 'DELETE FROM u']) {
      const err = await db.exec(sql).catch((e) => e);
      expect(isLtxvfsError(err, 'REPLICA_READONLY'), `${sql}: ${err}`).toBe(true);
      expect(err.message).toMatch(/read-only replica/);
    }
    const notAvailable = await db.exec('PRAGMA ltx_txid = 99').catch((e) => e);
    expect(isLtxvfsError(notAvailable, 'TXID_NOT_AVAILABLE')).toBe(true);
    expect(notAvailable.message).toMatch(/0000000000000063.*0000000000000001\.\.0000000000000003/);
    const badTxid = await db.exec("PRAGMA ltx_txid = 'soon'").catch((e) => e);
    expect(isLtxvfsError(badTxid, 'BAD_ARGUMENT')).toBe(true);
    const sqlErr = await db.all('SELECT * FROM nope').catch((e) => e);
    expect(isLtxvfsError(sqlErr, 'SQL_ERROR')).toBe(true);
    expect(sqlErr.message).toMatch(/no such table: nope/);

    // a page whose object vanished: the storage error, not wrong rows or "disk I/O error"
    const lost = 5;
    replica.syncHits = false;
    replica.failPages.add(lost);
    const vanished = await db.all('SELECT count(*), sum(length(v)) FROM t').catch((e) => e);
    replica.failPages.clear();
    replica.syncHits = true;
    expect(isLtxvfsError(vanished, 'STORAGE_NOT_FOUND'), String(vanished)).toBe(true);
    expect(vanished.message).toMatch(/gone\.ltx/);
    await db.close();

    const cases: Array<[string, string, RegExp]> = [
      [
        'file:nosuch.db?vfs=ltx',
        'REPLICA_NOT_REGISTERED',
        /no replica registered as "nosuch.db".*"replica.db", "other"/,
      ],
      ['file:replica.db?vfs=unix', 'BAD_ARGUMENT', /vfs=unix/],
      ['/abs/path.db', 'BAD_ARGUMENT', /bad URI/],
      ['file:replica.db?vfs=ltx&txid=77', 'TXID_NOT_AVAILABLE', /000000000000004d/],
      ['file:replica.db?vfs=ltx&txid=x1', 'BAD_ARGUMENT', /invalid TXID "x1"/],
      ['file:replica.db?vfs=ltx&txid=1&time=-5m', 'BAD_ARGUMENT', /either txid= or time=/],
      ['file:replica.db?vfs=ltx&time=1999-01-01', 'TXID_NOT_AVAILABLE', /1999-01-01/],
    ];
    for (const [uri, code, message] of cases) {
      const err = await ltx.open(uri).catch((e) => e);
      expect(isLtxvfsError(err, code as never), `${uri}: ${err}`).toBe(true);
      expect(err.message, uri).toMatch(message);
    }
  });
});
