#!/usr/bin/env node
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { INSERT_REVIEW, makeReview } from '../src/demo/reviews.js';
import { type ApplyEvent, follow } from '../src/follow/index.js';
import { restore } from '../src/replica/restore.js';
import { openReplicaClient } from '../src/storage/index.js';
import { seededRandom } from '../src/util/random.js';
import { Replicator } from '../src/writer/index.js';
import { createLtx } from '../vfs/index.js';
import { makeDataset } from './datasets.js';
import { projectRoot } from './s3-server.js';
import { median, percentile } from './support/stats.js';

/**
 * Follow mode: reads with better-sqlite3 on the followed file against better-sqlite3 on a plain
 * local copy (a restore) and against the ltx VFS with the replica hydrated, in the same run on
 * the same replica; then how long each apply holds SQLite's lock while a writer commits 100
 * transactions a second. `node dist/bench/follow.js [--quick]`; writes bench/results/follow.json.
 */
const SCAN = 'SELECT count(*) AS n, sum(length(body)) AS chars, avg(rating) AS r FROM reviews';
const POINT = 'SELECT * FROM reviews WHERE id = ?';

interface ReadRow {
  reader: string;
  'lookups/s': number;
  'full scan ms': number;
  'vs local copy (lookups)': number;
  'vs local copy (scan)': number;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const work = mkdtempSync(join(tmpdir(), 'ltxvfs-bench-follow-'));
  try {
    const ds = await makeDataset(work, 'follow', quick ? 16 << 20 : 64 << 20);
    const primary = join(work, 'primary.db');
    copyFileSync(ds.path, primary);
    const replicaDir = join(work, 'replica');
    const url = pathToFileURL(replicaDir).href;
    const replicator = new Replicator({ dbPath: primary, replica: url, syncIntervalMs: 1000 });
    await replicator.start();
    await replicator.sync();

    // --- reads: same replica, three readers, rounds interleaved so load drifts hit all alike.
    const copy = join(work, 'copy.db');
    const client = openReplicaClient(url);
    await restore({ client, outPath: copy });
    // The same copy in rollback-journal mode, as the followed file is: SQLite then takes a file
    // lock and re-reads the header per read transaction (WAL mode reads the -shm map instead).
    const copyRollback = join(work, 'copy-rollback.db');
    await restore({ client, outPath: copyRollback });
    const conv = new Database(copyRollback);
    conv.pragma('journal_mode = DELETE');
    conv.close();
    await client.close();
    const followed = join(work, 'followed.db');
    const follower = await follow(url, followed, { intervalMs: 1000 });
    const ltx = await createLtx({ instances: 1 });
    const hydratePath = join(work, 'hydrated.db');
    const replica = await ltx.registerReplica('bench.db', url, { pollIntervalMs: 1000, hydratePath });
    while (replica.hydration().state !== 'done') await new Promise((r) => setTimeout(r, 50));
    const vfsDb = await ltx.open('file:bench.db?vfs=ltx');

    const lookups = quick ? 5_000 : 20_000;
    const rounds = quick ? 3 : 5;
    const random = seededRandom(7);
    const ids = Array.from({ length: lookups }, () => 1 + Math.floor(random() * ds.rows));
    const native = (path: string) => {
      const db = new Database(path, { readonly: true });
      const point = db.prepare(POINT);
      const scan = db.prepare(SCAN);
      return {
        lookups: async () => {
          for (const id of ids) point.get(id);
        },
        scan: async () => {
          scan.get();
        },
        close: () => db.close(),
      };
    };
    const readers = {
      'better-sqlite3, plain local copy (WAL, as restored)': native(copy),
      'better-sqlite3, local copy in rollback mode': native(copyRollback),
      'better-sqlite3, followed file': native(followed),
      'ltx VFS (wa-sqlite), hydrated': {
        lookups: async () => {
          for (const id of ids) await vfsDb.get(POINT, [id]);
        },
        scan: async () => {
          await vfsDb.get(SCAN);
        },
        close: () => {},
      },
    };
    const times = new Map<string, { lookups: number[]; scan: number[] }>();
    for (let round = 0; round < rounds; round++) {
      for (const [name, r] of Object.entries(readers)) {
        const t = times.get(name) ?? { lookups: [], scan: [] };
        times.set(name, t);
        let start = performance.now();
        await r.lookups();
        t.lookups.push(performance.now() - start);
        start = performance.now();
        await r.scan();
        t.scan.push(performance.now() - start);
      }
    }
    for (const r of Object.values(readers)) r.close();
    await vfsDb.close();
    await ltx.close();
    const base = times.get('better-sqlite3, plain local copy (WAL, as restored)');
    const baseLookups = base ? lookups / (median(base.lookups) / 1000) : Number.NaN;
    const baseScan = base ? median(base.scan) : Number.NaN;
    const reads: ReadRow[] = [...times].map(([reader, t]) => {
      const perSec = lookups / (median(t.lookups) / 1000);
      const scan = median(t.scan);
      return {
        reader,
        'lookups/s': Math.round(perSec),
        'full scan ms': Math.round(scan * 10) / 10,
        'vs local copy (lookups)': Math.round((perSec / baseLookups) * 100) / 100,
        'vs local copy (scan)': Math.round((baseScan / scan) * 100) / 100,
      };
    });
    log(
      `reads (${ds.name}, ${(ds.bytes / 2 ** 20).toFixed(0)} MiB, ${ds.rows} rows, median of ${rounds} rounds):`,
    );
    console.table(reads);

    // --- lock hold under a writer committing 100 transactions a second.
    const seconds = quick ? 10 : 30;
    const holds: ApplyEvent[] = [];
    follower.on('apply', (e: ApplyEvent) => holds.push(e));
    const app = new Database(primary);
    app.pragma('busy_timeout = 5000');
    const insert = app.prepare(INSERT_REVIEW);
    const update = app.prepare('UPDATE reviews SET rating = ? WHERE id = ?');
    const wrand = seededRandom(11);
    const tx = app.transaction(() => {
      update.run(1 + Math.floor(wrand() * 5), 1 + Math.floor(wrand() * ds.rows));
      insert.run(makeReview(wrand, Date.now(), 4));
    });
    let committed = 0;
    const started = performance.now();
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        // Catch up to 100 per second of wall time (timers on a loaded box fire late).
        const due = Math.floor(((performance.now() - started) / 1000) * 100);
        while (committed < due) {
          tx();
          committed++;
        }
        if (performance.now() - started >= seconds * 1000) {
          clearInterval(timer);
          resolve();
        }
      }, 10);
    });
    await replicator.sync();
    const target = replicator.stats().uploadedTxid;
    while (follower.txid < target) await new Promise((r) => setTimeout(r, 50));
    app.close();
    await follower.close();
    await replicator.stop();
    const hold = holds.map((e) => e.holdMs);
    const wait = holds.map((e) => e.waitMs);
    const lock = {
      writerTxPerSec: Math.round(committed / seconds),
      seconds,
      applies: holds.length,
      pagesPerApplyP50: percentile(
        holds.map((e) => e.pages),
        50,
      ),
      holdMsP50: Math.round(percentile(hold, 50) * 100) / 100,
      holdMsP99: Math.round(percentile(hold, 99) * 100) / 100,
      holdMsMax: Math.round(Math.max(...hold) * 100) / 100,
      waitMsP50: Math.round(percentile(wait, 50) * 100) / 100,
      waitMsP99: Math.round(percentile(wait, 99) * 100) / 100,
    };
    log('lock hold per apply (better-sqlite3 BEGIN EXCLUSIVE, journal + pages + 2 fsyncs):');
    console.table([lock]);

    const out = join(projectRoot(), 'bench', 'results');
    mkdirSync(out, { recursive: true });
    const result = {
      date: new Date().toISOString(),
      mode: quick ? 'quick' : 'full',
      dataset: { bytes: ds.bytes, rows: ds.rows, pageSize: ds.pageSize },
      lookupsPerRound: lookups,
      rounds,
      reads,
      lock,
    };
    writeFileSync(join(out, `follow${quick ? '-quick' : ''}.json`), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
