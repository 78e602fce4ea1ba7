import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLtxFile } from '../src/ltx/index.js';
import type { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { formatTxid } from '../src/util/txid.js';
import { Replicator } from '../src/writer/index.js';
import { createLtx, type Ltx, type SqlParams } from '../vfs/index.js';
import { defined } from './support/defined.js';
import { TestPrimary } from './support/replica-fixture.js';
import { createTestBucket, describeS3, s3Env } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

// End to end: a database written by better-sqlite3, replicated as LTX files (LTX encoder via the
// replica test fixture), read through the real Replica and the ltx VFS. The oracle is
// better-sqlite3 on the database image of the same TXID.

const QUERIES: Array<[string, string, SqlParams?]> = [
  ['point lookup', 'SELECT * FROM t WHERE id = ?', [777]],
  ['index lookup', 'SELECT id, v FROM t WHERE k = ? ORDER BY id', [42]],
  ['range scan', 'SELECT id, k FROM t WHERE id BETWEEN ? AND ? ORDER BY id', [300, 900]],
  ['join', 'SELECT u.id, t.v FROM u JOIN t ON t.id = u.t_id ORDER BY u.id'],
  ['aggregate', 'SELECT k % 7 AS g, count(*) AS n, sum(id) AS s, min(v) AS m FROM t GROUP BY g ORDER BY g'],
  ['order by', 'SELECT id, v FROM t ORDER BY v, id'],
  ['count distinct', 'SELECT count(DISTINCT v) AS d FROM t'],
  [
    'temp table',
    'CREATE TEMP TABLE IF NOT EXISTS big AS SELECT * FROM t WHERE k < 50; SELECT count(*) AS n FROM big',
  ],
];

const CLI = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
const cliSkip = existsSync(CLI) ? undefined : `${CLI} is missing (npm test builds it; or run npm run build)`;
if (cliSkip) console.warn(`[ltxvfs query CLI tests skipped] ${cliSkip}`);

function mkdirp(dir: string): string {
  mkdirSync(dir, { recursive: true });
  return dir;
}

function rand(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    return s;
  };
}

/** Seven TXIDs of randomized inserts, updates, deletes and DDL. */
async function writeWorkload(primary: TestPrimary, seed: number): Promise<void> {
  const r = rand(seed);
  const db = primary.db;
  db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT, b BLOB);
           CREATE TABLE u(id INTEGER PRIMARY KEY, t_id INTEGER, w TEXT);`);
  const insert = db.prepare('INSERT OR REPLACE INTO t VALUES (?, ?, ?, ?)');
  const fill = (from: number, to: number) =>
    db.transaction(() => {
      for (let id = from; id <= to; id++) {
        insert.run(
          id,
          r() % 300,
          `v${(r() % 5000).toString(36)}${'-'.repeat(r() % 120)}`,
          Buffer.from([id & 255, r() & 255]),
        );
      }
    })();
  fill(1, 3000);
  await primary.sync();
  db.exec('CREATE INDEX t_k ON t(k)');
  db.prepare('INSERT INTO u(t_id, w) SELECT id, v FROM t WHERE id % 11 = 0').run();
  await primary.sync();
  fill(3001, 4500);
  await primary.sync();
  db.exec(`UPDATE t SET v = 'upd-' || id WHERE id % ${3 + (r() % 5)} = 0`);
  await primary.sync();
  db.exec(`DELETE FROM t WHERE id BETWEEN ${100 + (r() % 100)} AND ${1500 + (r() % 100)}`);
  await primary.sync();
  db.exec('VACUUM');
  await primary.sync();
  fill(4501, 4700);
  await primary.sync();
}

function imageFile(dir: string, primary: TestPrimary, txid: number): string {
  const path = join(dir, `image-${txid}.db`);
  if (!existsSync(path)) writeFileSync(path, defined(primary.images.get(txid)));
  return path;
}

function oracle(path: string, sql: string, params: SqlParams = []): unknown[] {
  const db = new Database(path, { readonly: true });
  try {
    const statements = sql.split(';').filter((s) => s.trim());
    const last = defined(statements.pop());
    // temp tables need a writable connection on a scratch copy; run everything in memory instead
    if (statements.length > 0) {
      const mem = new Database(readFileSync(path));
      try {
        for (const s of statements) mem.exec(s);
        return normalize(mem.prepare(last).all(...(params as unknown[])));
      } finally {
        mem.close();
      }
    }
    return normalize(db.prepare(last).all(...(params as unknown[])));
  } finally {
    db.close();
  }
}

function normalize(rows: unknown[]): unknown[] {
  return rows.map((row) =>
    Object.fromEntries(
      Object.entries(row as Record<string, unknown>).map(([k, v]) => [
        k,
        v instanceof Uint8Array ? Buffer.from(v).toString('hex') : typeof v === 'bigint' ? Number(v) : v,
      ]),
    ),
  );
}

async function expectSameAsSqlite(ltx: Ltx, uri: string, imagePath: string): Promise<void> {
  const db = await ltx.open(uri);
  try {
    for (const [what, sql, params] of QUERIES) {
      expect(normalize(await db.all(sql, params)), `${what} via ${uri}`).toEqual(
        oracle(imagePath, sql, params),
      );
    }
  } finally {
    await db.close();
  }
}

async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function runCli(
  args: string[],
  env: Record<string, string> = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the ltx VFS on a file replica', () => {
  let tmp: TempDir;
  let client: ReplicaClient;
  let primary: TestPrimary;
  let replicaDir: string;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-vfs-');
    replicaDir = join(tmp.dir, 'replica');
    client = openReplicaClient(replicaDir);
    primary = new TestPrimary(client, tmp.dir);
    await writeWorkload(primary, 11);
  });

  afterAll(async () => {
    primary?.close();
    await client?.close();
    await tmp?.cleanup();
  });

  it('answers every query type like SQLite at the latest and every historical TXID, cold', async () => {
    const ltx = await createLtx({ instances: 2, cacheSizeKiB: 64 });
    try {
      await ltx.registerReplica('app.db', replicaDir, { pollIntervalMs: 0, cacheBytes: 256 * 1024 });
      for (let txid = 1; txid <= primary.txid; txid++) {
        await expectSameAsSqlite(ltx, `file:app.db?vfs=ltx&txid=${txid}`, imageFile(tmp.dir, primary, txid));
      }
      await expectSameAsSqlite(ltx, 'file:app.db?vfs=ltx', imageFile(tmp.dir, primary, primary.txid));
      // by time: header timestamps are one second apart (fixture clock)
      const at3 = new Date(primary.clock + 3 * 1000 + 500).toISOString();
      await expectSameAsSqlite(ltx, `file:app?vfs=ltx&time=${at3}`, imageFile(tmp.dir, primary, 3));
    } finally {
      await ltx.close();
    }
  });

  it('answers the same once hydrated, with zero requests, and reports progress', async () => {
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = (await ltx.registerReplica('app', openReplicaClient(replicaDir), {
        pollIntervalMs: 0,
        hydratePath: join(tmp.dir, 'hydrated.db'),
      })) as Replica;
      await waitFor('hydration', () => replica.hydration().state === 'done');
      const db = await ltx.open('file:app?vfs=ltx');
      expect(await db.pragma('ltx_hydration')).toMatch(
        /^done 100\.0% \(\d+\/\d+ pages\) at TXID 0000000000000007$/,
      );
      await db.close();
      replica.client.resetStats();
      await expectSameAsSqlite(ltx, 'file:app?vfs=ltx', imageFile(tmp.dir, primary, primary.txid));
      expect(replica.client.stats().get).toBe(0);
      // history next to a hydrated file: pages that changed later come from the LTX objects
      await expectSameAsSqlite(ltx, 'file:app?vfs=ltx&txid=4', imageFile(tmp.dir, primary, 4));
    } finally {
      await ltx.close();
    }
  });

  it('follows new commits between transactions and keeps a long read transaction on its TXID', async () => {
    const dir = join(tmp.dir, 'follow');
    const followClient = openReplicaClient(join(dir, 'replica'));
    const writer = new TestPrimary(followClient, mkdirp(dir));
    const ltx = await createLtx({ instances: 2 });
    try {
      writer.db.exec('CREATE TABLE c(n INTEGER); INSERT INTO c VALUES (1)');
      await writer.sync();
      const live = (await ltx.registerReplica('live', join(dir, 'replica'), {
        pollIntervalMs: 50,
      })) as Replica;
      // LISTs made when each TXID became visible (counts, not milliseconds: a loaded machine
      // makes every poll late, never more of them needed).
      const listsAtUpdate = new Map<number, number>();
      live.on('update', (txid: number) => listsAtUpdate.set(txid, live.client.stats().list));
      const reader = await ltx.open('live');
      const follower = await ltx.open('live');
      await reader.exec('BEGIN');
      expect(await reader.get('SELECT sum(n) AS s FROM c')).toEqual({ s: 1 });
      let lastSyncAt = 0;
      for (let i = 2; i <= 4; i++) {
        writer.db.prepare('INSERT INTO c VALUES (?)').run(i);
        lastSyncAt = Date.now();
        await writer.sync();
        const expected = (i * (i + 1)) / 2;
        const listsBefore = live.client.stats().list;
        await waitFor(
          `TXID ${i}`,
          async () => defined(await follower.get('SELECT sum(n) AS s FROM c')).s === expected,
          30_000,
        );
        // Seen by the first poll that started after the sync (one may have been in flight).
        expect(defined(listsAtUpdate.get(i)) - listsBefore).toBeLessThanOrEqual(2);
        expect(await reader.get('SELECT sum(n) AS s FROM c')).toEqual({ s: 1 });
        expect(await reader.pragma('ltx_txid')).toBe('0000000000000001');
      }
      // ltx_lag: seconds since the replica last saw its tip; it has polled since the last sync.
      const sinceLastSync = (Date.now() - lastSyncAt) / 1000;
      const lag = Number(await follower.pragma('ltx_lag'));
      expect(lag).toBeGreaterThanOrEqual(0);
      expect(lag).toBeLessThanOrEqual(sinceLastSync);
      await reader.exec('COMMIT');
      expect(await reader.get('SELECT sum(n) AS s FROM c')).toEqual({ s: 10 });
      expect(await reader.pragma('ltx_txid')).toBe('0000000000000004');
    } finally {
      await ltx.close();
      writer.close();
      await followClient.close();
    }
  });

  it('polls on schedule while one connection runs queries back to back (no yield between them)', async () => {
    const dir = join(tmp.dir, 'tight-loop');
    const loopClient = openReplicaClient(join(dir, 'replica'));
    const writer = new TestPrimary(loopClient, mkdirp(dir));
    const ltx = await createLtx({ instances: 1 });
    const intervalMs = 100;
    try {
      writer.db.exec('CREATE TABLE c(n INTEGER); INSERT INTO c VALUES (1)');
      await writer.sync();
      const busy = (await ltx.registerReplica('busy', join(dir, 'replica'), {
        pollIntervalMs: intervalMs,
      })) as Replica;
      let listsAtUpdate: number | undefined;
      busy.on('update', () => {
        listsAtUpdate ??= busy.client.stats().list;
      });
      const db = await ltx.open('busy');
      expect(await db.get('SELECT sum(n) AS s FROM c')).toEqual({ s: 1 });
      const listsBefore = busy.client.stats().list;
      writer.db.exec('INSERT INTO c VALUES (2)');
      await writer.sync();
      // Every page is cached, so each query completes in microtasks only: without a turn of the
      // event loop the poll timer never fires and the TXID stays put however long this runs
      // (the starved poller: 74,851 queries in 3 s and not one LIST). The loop ends when the
      // commit is seen, or gives up after 30 s; how soon is the poller's business (counted below).
      const started = Date.now();
      let queries = 0;
      let seen = false;
      while (!seen && Date.now() - started < 30_000) {
        const row = await db.get('SELECT sum(n) AS s FROM c');
        queries++;
        seen = row?.s === 3;
      }
      expect(seen, `the new commit was not seen in 30 s of back-to-back queries (${queries})`).toBe(true);
      expect(queries).toBeGreaterThan(1);
      // The first poll that started after the sync saw it (one may have been in flight before).
      expect(defined(listsAtUpdate) - listsBefore).toBeLessThanOrEqual(2);
      expect(await db.pragma('ltx_txid')).toBe('0000000000000002');
    } finally {
      await ltx.close();
      writer.close();
      await loopClient.close();
    }
  });

  it('ten connections cause no LIST requests of their own', async () => {
    const ltx = await createLtx({ instances: 4 });
    try {
      const replica = (await ltx.registerReplica('app', replicaDir, { pollIntervalMs: 0 })) as Replica;
      const afterOpen = replica.client.stats().list;
      const dbs = await Promise.all(Array.from({ length: 10 }, () => ltx.open('app')));
      const [expected] = oracle(imageFile(tmp.dir, primary, primary.txid), 'SELECT count(*) AS n FROM u');
      expect(expected).toEqual({ n: expect.any(Number) });
      for (const db of dbs) expect(await db.get('SELECT count(*) AS n FROM u')).toEqual(expected);
      expect(replica.client.stats().list).toBe(afterOpen);
      await replica.poll();
      // Nothing new: one poll is one LIST of L0 from the position on, whatever the connections.
      expect(replica.client.stats().list - afterOpen).toBe(1);
    } finally {
      await ltx.close();
    }
  });

  it('names the object when it vanished or is corrupt, never returning rows', async () => {
    const dir = join(tmp.dir, 'broken');
    const brokenClient = openReplicaClient(join(dir, 'replica'));
    const writer = new TestPrimary(brokenClient, mkdirp(dir));
    const ltx = await createLtx({ instances: 1 });
    try {
      writer.db.exec(`CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
        WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 400)
        INSERT INTO t SELECT x, hex(randomblob(250)) FROM s;`);
      await writer.sync();
      const [name] = readdirSync(join(dir, 'replica', 'ltx', '0'));
      const only = join(dir, 'replica', 'ltx', '0', defined(name));
      const original = readFileSync(only);
      const victim = defined(decodeLtxFile(original).pages.find((p) => p.pgno === 10));

      await ltx.registerReplica('broken', join(dir, 'replica'), { pollIntervalMs: 0, cacheBytes: 1 });
      const db = await ltx.open('broken');
      // corrupt one page frame (its page number); header and index stay intact
      const corrupt = Buffer.from(original);
      for (let i = victim.offset; i < victim.offset + 4; i++) corrupt[i] = defined(corrupt[i]) ^ 0x5a;
      writeFileSync(only, corrupt);
      const bad = await db.all('SELECT count(*), sum(length(v)) FROM t').catch((e) => e);
      expect(isLtxvfsError(bad, 'REPLICA_CORRUPT'), String(bad)).toBe(true);
      expect(bad.message).toMatch(/page 10 in object L0\/0000000000000001-0000000000000001/);

      writeFileSync(only, original);
      await db.close();
      const fresh = await ltx.open('broken');
      expect(await fresh.get('SELECT count(*) AS n FROM t')).toEqual({ n: 400 });
      await fresh.close();
      await ltx.unregisterReplica('broken');

      await ltx.registerReplica('gone', join(dir, 'replica'), { pollIntervalMs: 0, cacheBytes: 1 });
      const db2 = await ltx.open('gone');
      await brokenClient.deleteFiles([{ level: 0, minTxid: 1, maxTxid: 1 }]);
      const vanished = await db2.all('SELECT * FROM t').catch((e) => e);
      expect(isLtxvfsError(vanished, 'STORAGE_NOT_FOUND'), String(vanished)).toBe(true);
      expect(vanished.message).toMatch(/0000000000000001-0000000000000001\.ltx/);
    } finally {
      await ltx.close();
      writer.close();
      await brokenClient.close();
    }
  });

  describe.skipIf(cliSkip !== undefined)('ltxvfs query', () => {
    it('prints JSON rows, a table, history by --txid / --timestamp, and one-line errors', () => {
      const url = `file://${replicaDir}`;
      const image = imageFile(tmp.dir, primary, primary.txid);
      const json = runCli([
        'query',
        url,
        'SELECT id, k, v, b, 9007199254740993 AS big FROM t WHERE id <= 3 ORDER BY id',
        '--json',
      ]);
      expect(json.stderr).toBe('');
      expect(json.status).toBe(0);
      const expected = oracle(image, 'SELECT id, k, v, b FROM t WHERE id <= 3 ORDER BY id').map((r) => ({
        ...(r as object),
        big: '9007199254740993',
      }));
      expect(JSON.parse(json.stdout)).toEqual(expected);

      const old = runCli([
        'query',
        replicaDir,
        'SELECT count(*) AS n FROM t',
        '--json',
        '--txid',
        '0000000000000001',
      ]);
      expect(JSON.parse(old.stdout)).toEqual(
        oracle(imageFile(tmp.dir, primary, 1), 'SELECT count(*) AS n FROM t'),
      );
      const byTime = runCli([
        'query',
        replicaDir,
        'SELECT count(*) AS n FROM t',
        '--json',
        '--timestamp',
        new Date(primary.clock + 2500).toISOString(),
      ]);
      expect(JSON.parse(byTime.stdout)).toEqual(
        oracle(imageFile(tmp.dir, primary, 2), 'SELECT count(*) AS n FROM t'),
      );

      const table = runCli(['query', replicaDir, 'SELECT id, v FROM t ORDER BY id LIMIT 2']);
      expect(table.status).toBe(0);
      const lines = table.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^id \| v$/);
      expect(lines.at(-1)).toBe('(2 rows)');

      for (const [args, pattern] of [
        [['query', replicaDir, 'DELETE FROM t'], /REPLICA_READONLY/],
        [['query', replicaDir, 'SELECT 1', '--txid', '99'], /TXID_NOT_AVAILABLE.*0000000000000063/],
        [['query', replicaDir, 'SELECT * FROM nope'], /SQL_ERROR: no such table: nope/],
        [
          ['query', replicaDir, 'SELECT 1', '--timestamp', 'whenever'],
          /BAD_ARGUMENT: invalid time "whenever"/,
        ],
      ] as const) {
        const r = runCli([...args]);
        expect(r.status, args.join(' ')).toBe(1);
        expect(r.stdout).toBe('');
        expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(r.stderr).toMatch(pattern);
      }
    });
  });
});

describe('request counts through SQL', () => {
  let tmp: TempDir;
  let client: ReplicaClient;
  let primary: TestPrimary;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-vfs-count-');
    client = openReplicaClient(join(tmp.dir, 'replica'));
    primary = new TestPrimary(client, tmp.dir);
    primary.db.exec(`CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT);
      WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < 1000000)
      INSERT INTO big SELECT x, printf('row-%08d', x) FROM s;`);
    await primary.sync();
  }, 120_000);

  afterAll(async () => {
    primary?.close();
    await client?.close();
    await tmp?.cleanup();
  });

  it('a cold point lookup by primary key in a million-row table costs at most 6 range requests', async () => {
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = (await ltx.registerReplica('big', client, { pollIntervalMs: 0 })) as Replica;
      const db = await ltx.open('big');
      client.resetStats();
      expect(await db.get('SELECT v FROM big WHERE id = ?', [654_321])).toEqual({ v: 'row-00654321' });
      const s = replica.client.stats();
      expect(s.get).toBeLessThanOrEqual(6);
      expect(s.list).toBe(0);
    } finally {
      await ltx.close();
    }
  });

  it('a LIMIT-less stmt.get / iterate over the cold million-row table reads only the pages of the rows taken', async () => {
    const ltx = await createLtx({ instances: 1 });
    try {
      // No read-ahead: every page the statement reads is one counted GET.
      const replica = (await ltx.registerReplica('big', client, {
        pollIntervalMs: 0,
        readAhead: false,
        coalesce: false,
      })) as Replica;
      const db = await ltx.open('big');
      await db.get('SELECT count(*) AS n FROM sqlite_schema');
      const stmt = await db.prepare('SELECT id, v FROM big WHERE id > ?');
      replica.client.resetStats();
      expect(await stmt.get(500_000)).toEqual({ id: 500_001, v: 'row-00500001' });
      // Root, interior pages and one leaf of a 1M-row table (3-4 levels), not the ~3,900 pages
      // of the half of the table the SQL names.
      expect(replica.client.stats().get).toBeLessThanOrEqual(5);
      replica.client.resetStats();
      let taken = 0;
      for await (const row of stmt.iterate(700_000)) {
        expect(row).toEqual({ id: 700_001 + taken, v: `row-${String(700_001 + taken).padStart(8, '0')}` });
        if (++taken === 200) break;
      }
      // 200 rows of ~20 bytes span one or two leaves.
      expect(replica.client.stats().get).toBeLessThanOrEqual(7);
      // The connection and the statement stay usable after break.
      expect(await stmt.get(999_999)).toEqual({ id: 1_000_000, v: 'row-01000000' });
      await stmt.finalize();
    } finally {
      await ltx.close();
    }
  });

  // Through SQLite a table scan is not purely sequential: each interior B-tree page sits far
  // from the leaves it leads to, so the read-ahead must survive such detours.
  it('a cold full scan of one snapshot file costs at most one request per 4 MiB plus a small constant', async () => {
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = (await ltx.registerReplica('big', client, { pollIntervalMs: 0 })) as Replica;
      const db = await ltx.open('big');
      const [file] = await client.listFiles(0);
      client.resetStats();
      expect(await db.get("SELECT count(*) AS n, max(v) AS m FROM big WHERE v LIKE 'row-%'")).toEqual({
        n: 1_000_000,
        m: 'row-01000000',
      });
      const s = replica.client.stats();
      expect(s.get).toBeLessThanOrEqual(Math.ceil(defined(file).size / (4 * 1024 * 1024)) + 8);
    } finally {
      await ltx.close();
    }
  });
});

describeS3('the ltx VFS on S3', () => {
  it('answers like SQLite at the latest and a historical TXID, and `ltxvfs query` reads an s3:// URL', async () => {
    const { url, client } = await createTestBucket('vfs');
    const tmp = await makeTempDir('ltxvfs-vfs-s3-');
    const primary = new TestPrimary(client, tmp.dir);
    const ltx = await createLtx({ instances: 2 });
    try {
      await writeWorkload(primary, 23);
      await ltx.registerReplica('s3app', url, { pollIntervalMs: 0 });
      for (const txid of [2, 5]) {
        await expectSameAsSqlite(ltx, `file:s3app?vfs=ltx&txid=${txid}`, imageFile(tmp.dir, primary, txid));
      }
      await expectSameAsSqlite(ltx, 'file:s3app?vfs=ltx', imageFile(tmp.dir, primary, primary.txid));
      if (!cliSkip) {
        const r = runCli(['query', url, 'SELECT count(*) AS n FROM t', '--json', '--txid', '3'], s3Env());
        expect(r.stderr).toBe('');
        expect(JSON.parse(r.stdout)).toEqual(
          oracle(imageFile(tmp.dir, primary, 3), 'SELECT count(*) AS n FROM t'),
        );
      }
    } finally {
      await ltx.close();
      primary.close();
      await client.close();
      await tmp.cleanup();
    }
  });
});

describe('the ltx VFS following the real writer (WAL-mode primary)', () => {
  it('sees each synced commit within a few poll intervals and every past TXID answers as the primary did', async () => {
    const tmp = await makeTempDir('ltxvfs-vfs-writer-');
    const dbPath = join(tmp.dir, 'primary.db');
    const app = new Database(dbPath);
    app.pragma('journal_mode = WAL');
    app.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v TEXT)');
    const client = openReplicaClient(join(tmp.dir, 'replica'));
    const rep = new Replicator({ dbPath, replica: client, syncIntervalMs: 3_600_000, lease: false });
    const ltx = await createLtx({ instances: 1 });
    const sql = 'SELECT k, count(*) AS n, sum(id) AS s, max(v) AS m FROM t GROUP BY k ORDER BY k';
    const answers = new Map<number, unknown[]>();
    try {
      await rep.start();
      const first = await rep.sync();
      answers.set(first.txid, normalize(app.prepare(sql).all()));
      await ltx.registerReplica('wal', join(tmp.dir, 'replica'), { pollIntervalMs: 50 });
      const follower = await ltx.open('wal');
      const r = rand(5);
      for (let round = 0; round < 6; round++) {
        const insert = app.prepare('INSERT OR REPLACE INTO t VALUES (?, ?, ?)');
        app.transaction(() => {
          for (let i = 0; i < 300; i++) insert.run(r() % 2000, r() % 9, `v${r().toString(36)}`);
        })();
        if (round === 3) app.exec('DELETE FROM t WHERE k = 4');
        const { txid } = await rep.sync();
        const expected = normalize(app.prepare(sql).all());
        answers.set(txid, expected);
        await waitFor(
          `TXID ${txid}`,
          async () => (await follower.pragma('ltx_txid')) === formatTxid(txid),
          5000,
        );
        expect(normalize(await follower.all(sql)), `latest at ${txid}`).toEqual(expected);
      }
      for (const [txid, expected] of answers) {
        const past = await ltx.open(`file:wal?vfs=ltx&txid=${txid}`);
        expect(normalize(await past.all(sql)), `TXID ${txid}`).toEqual(expected);
        await past.close();
      }
    } finally {
      await ltx.close();
      await rep.stop();
      app.close();
      await client.close();
      await tmp.cleanup();
    }
  });
});
