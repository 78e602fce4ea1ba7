/**
 * Randomized workloads written by another process (better-sqlite3 in a child, and the sqlite3
 * shell), replicated to a file replica; after each step the primary's image (SQLite's own
 * checkpoint of a copy of db + WAL) is recorded, and at the end every TXID is restored and
 * compared byte for byte, with PRAGMA integrity_check.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from '../src/storage/index.js';
import { Replicator, type SyncedEvent } from '../src/writer/index.js';
import { defined } from './support/defined.js';
import { referenceToolMissing } from './support/reference-tools.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import {
  type App,
  expectedFullPages,
  expectRestoresMatch,
  sqliteShellAvailable,
  startNodeApp,
  startShellApp,
  syncAndRecord,
  verifyL0Files,
} from './support/writer-harness.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-workload-');
});
afterAll(() => tmp.cleanup());

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const series = (n: number) =>
  `WITH RECURSIVE s(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM s WHERE x < ${n})`;

type Op = (app: App, rep: Replicator) => Promise<void>;

function workloadOps(rand: () => number, pageSize: number): Array<[string, number, Op]> {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  let tables = 1;
  const table = () => `t${int(0, tables - 1)}`;
  const blobMax = pageSize <= 1024 ? 200_000 : 1_500_000;
  return [
    [
      'insert',
      6,
      (app) =>
        app.exec(
          `${series(int(1, 150))} INSERT INTO ${table()}(v, n) SELECT hex(randomblob(${int(1, 400)})), x FROM s`,
        ),
    ],
    [
      'update',
      4,
      (app) =>
        app.exec(
          `UPDATE ${table()} SET v = hex(randomblob(${int(1, 300)})), n = n + 1 WHERE id % ${int(2, 7)} = 0`,
        ),
    ],
    ['delete', 3, (app) => app.exec(`DELETE FROM ${table()} WHERE id % ${int(2, 5)} = ${int(0, 1)}`)],
    [
      'blob',
      2,
      (app) => app.exec(`INSERT INTO ${table()}(v, b) VALUES ('blob', randomblob(${int(10_000, blobMax)}))`),
    ],
    [
      'schema',
      2,
      async (app) => {
        const k = int(0, 2);
        if (k === 0) {
          await app.exec(`CREATE TABLE t${tables}(id INTEGER PRIMARY KEY, v TEXT, n INTEGER, b BLOB)`);
          tables++;
        } else if (k === 1)
          await app.exec(`CREATE INDEX IF NOT EXISTS i_${table()}_${int(0, 9)} ON ${table()}(n, v)`);
        else if (tables > 1) {
          tables--;
          await app.exec(`DROP TABLE t${tables}`);
        }
      },
    ],
    ['vacuum', 1, (app) => app.exec('VACUUM')],
    [
      'shrink',
      1,
      async (app) => {
        await app.exec(`DELETE FROM ${table()} WHERE id % 10 != 0`);
        await app.exec('UPDATE t0 SET b = NULL');
        await app.exec('VACUUM');
      },
    ],
    [
      'many-commits',
      2,
      async (app) => {
        for (let i = int(2, 6); i > 0; i--) await app.exec(`INSERT INTO ${table()}(v, n) VALUES ('c', ${i})`);
      },
    ],
    [
      'rollback',
      1,
      (app) =>
        app.exec(`BEGIN; ${series(500)} INSERT INTO t0(v) SELECT hex(randomblob(200)) FROM s; ROLLBACK`),
    ],
    ['replicator-checkpoint', 2, async (_app, rep) => rep.checkpoint('PASSIVE')],
    ['app-checkpoint', 1, (app) => app.exec('PRAGMA wal_checkpoint(PASSIVE)')],
    ['replicator-truncate', 1, async (_app, rep) => rep.checkpoint('TRUNCATE')],
  ];
}

function pick<T extends [string, number, Op]>(ops: T[], at: number): T {
  let rest = at;
  for (const op of ops) {
    rest -= op[1];
    if (rest < 0) return op;
  }
  return defined(ops[0]);
}

async function runWorkload(opts: {
  name: string;
  seed: number;
  pageSize: number;
  steps: number;
  shell?: boolean;
}) {
  const dir = join(tmp.dir, opts.name);
  const dbPath = join(dir, 'primary.db');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(dir, { recursive: true });
  const app = opts.shell
    ? await startShellApp(dbPath, opts.pageSize)
    : await startNodeApp(dbPath, opts.pageSize);
  await app.exec('CREATE TABLE t0(id INTEGER PRIMARY KEY, v TEXT, n INTEGER, b BLOB)');
  const client = new FileReplicaClient(join(dir, 'replica'));
  const rep = new Replicator({
    dbPath,
    replica: client,
    syncIntervalMs: 3_600_000,
    encoding: opts.seed % 3 === 2 ? 'lz4-frame' : 'lz4-block',
  });
  const synced: SyncedEvent[] = [];
  rep.on('synced', (e: SyncedEvent) => synced.push(e));
  await rep.start();
  const images = new Map<number, Buffer>();
  const scratch = join(dir, 'scratch');
  const rand = prng(opts.seed);
  const ops = workloadOps(rand, opts.pageSize);
  const weights = ops.reduce((n, [, w]) => n + w, 0);
  const done: string[] = [];
  try {
    await syncAndRecord(rep, dbPath, scratch, images);
    for (let step = 0; step < opts.steps; step++) {
      const op = pick(ops, rand() * weights);
      done.push(op[0]);
      await op[2](app, rep);
      await syncAndRecord(rep, dbPath, scratch, images);
    }
  } finally {
    await rep.stop();
    await app.close();
  }
  const decoded = await verifyL0Files(client);
  // snapshot-style L0 files (first, after TRUNCATE) hold every page
  for (const e of synced.filter((s) => s.snapshot)) {
    const f = defined(decoded.get(e.txid));
    expect(
      f.pages.map((p) => p.pgno),
      `L0 ${e.txid} (${e.reason})`,
    ).toEqual(expectedFullPages(f.header.commit, f.header.pageSize));
  }
  if (done.includes('replicator-truncate')) expect(synced.some((s) => s.snapshot && s.txid > 1)).toBe(true);
  await expectRestoresMatch(client, images, join(dir, 'restores'));
  return { images, synced, done };
}

describe('randomized workloads: every TXID restores byte-identical to the primary', () => {
  const cases = [
    { name: 'node-512', seed: 1, pageSize: 512, steps: 30 },
    { name: 'node-1024', seed: 2, pageSize: 1024, steps: 30 },
    { name: 'node-4096', seed: 3, pageSize: 4096, steps: 40 },
    { name: 'node-16384', seed: 4, pageSize: 16384, steps: 30 },
    { name: 'node-65536', seed: 5, pageSize: 65536, steps: 25 },
  ];
  for (const c of cases) {
    it(`better-sqlite3 in another process, page size ${c.pageSize}`, async () => {
      const { images } = await runWorkload(c);
      expect(images.size).toBeGreaterThan(5);
    }, 120_000);
  }
  const shell = sqliteShellAvailable();
  if (!shell)
    referenceToolMissing('the `sqlite3` shell', 'npm test installs it with apt; or apt-get install sqlite3');
  it.skipIf(!shell)(
    'the sqlite3 shell as the application, page size 4096',
    async () => {
      await runWorkload({ name: 'shell-4096', seed: 11, pageSize: 4096, steps: 30, shell: true });
    },
    120_000,
  );
  it.skipIf(!shell)(
    'the sqlite3 shell as the application, page size 8192',
    async () => {
      await runWorkload({ name: 'shell-8192', seed: 12, pageSize: 8192, steps: 25, shell: true });
    },
    120_000,
  );
});
