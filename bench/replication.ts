import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { Replicator, type ReplicatorOptions, type SyncedEvent } from '../src/writer/index.js';
import { projectRoot } from './s3-server.js';
import { median, percentile } from './support/stats.js';

/**
 * Replication lag (a commit on the primary until the L0 file holding it is durable in the
 * replica) with the file backend and with S3, and the primary's write throughput with and
 * without the replicator beside it (the application in its own process, as in production).
 */
export interface ReplicationBenchOptions {
  quick?: boolean;
  /** S3 replica URL (a fresh prefix); without it only the file backend is measured. */
  s3Url?: string;
  log?: (line: string) => void;
  writeJson?: boolean;
  /** Seconds of steady writes per lag measurement (default 10, quick 4). */
  lagSeconds?: number;
  /** Seconds of each throughput run (default 8, quick 3). */
  throughputSeconds?: number;
}

export interface LagRow {
  backend: string;
  syncInterval: string;
  commits: number;
  l0Files: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ThroughputRow {
  run: string;
  transactions: number;
  txPerSec: number;
  keptPercent: number | null;
}

export interface ReplicationBenchResult {
  lag: LagRow[];
  throughput: ThroughputRow[];
}

async function measureLag(opts: {
  backend: string;
  replica: ReplicaClient;
  syncIntervalMs: number;
  seconds: number;
  commitsPerSecond: number;
  dir: string;
}): Promise<LagRow> {
  const dbPath = join(opts.dir, `lag-${opts.backend}-${opts.syncIntervalMs}.db`);
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  const rep = new Replicator({
    dbPath,
    replica: opts.replica,
    syncIntervalMs: opts.syncIntervalMs,
    lease: false,
  });
  const pending: number[] = []; // commit times not yet in a staged L0
  const byTxid = new Map<number, number[]>();
  const lags: number[] = [];
  let files = 0;
  rep.on('synced', (e: SyncedEvent) => {
    // staging is synchronous on this thread: every commit made before it is in this file
    byTxid.set(e.txid, pending.splice(0));
    files++;
  });
  rep.on('uploaded', (e: { txid: number }) => {
    const now = performance.now();
    for (const t of byTxid.get(e.txid) ?? []) lags.push(now - t);
    byTxid.delete(e.txid);
  });
  await rep.start();
  await rep.sync();
  const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
  const end = performance.now() + opts.seconds * 1000;
  const gap = 1000 / opts.commitsPerSecond;
  let commits = 0;
  while (performance.now() < end) {
    insert.run('x'.repeat(100 + (commits % 400)));
    pending.push(performance.now());
    commits++;
    await new Promise((r) => setTimeout(r, gap));
  }
  await rep.sync();
  await rep.stop();
  db.close();
  lags.sort((a, b) => a - b);
  return {
    backend: opts.backend,
    syncInterval: `${opts.syncIntervalMs} ms`,
    commits,
    l0Files: files,
    p50Ms: Math.round(percentile(lags, 50)),
    p99Ms: Math.round(percentile(lags, 99)),
    maxMs: Math.round(lags.at(-1) ?? Number.NaN),
  };
}

const WRITER_SCRIPT = `
import { createRequire } from 'node:module';
const Database = createRequire(process.env.LTXVFS_ROOT + '/package.json')('better-sqlite3');
const [dbPath, seconds, autocheckpoint] = process.argv.slice(2);
const db = new Database(dbPath);
db.pragma('busy_timeout = 5000');
db.pragma('journal_mode = WAL');
if (autocheckpoint !== 'default') db.pragma('wal_autocheckpoint = ' + Number(autocheckpoint));
db.exec('CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)');
const insert = db.prepare('INSERT INTO t(v, n) VALUES (?, ?)');
const tx = db.transaction((i) => { for (let k = 0; k < 5; k++) insert.run('v'.repeat(200 + (i % 300)), i); });
const end = Date.now() + Number(seconds) * 1000;
let n = 0;
while (Date.now() < end) tx(n++);
db.close();
process.stdout.write(String(n));
`;

async function runWriter(
  dir: string,
  dbPath: string,
  seconds: number,
  appAutocheckpoint: number | undefined,
): Promise<number> {
  const script = join(dir, 'writer.mjs');
  writeFileSync(script, WRITER_SCRIPT);
  const autocheckpoint = appAutocheckpoint === undefined ? 'default' : String(appAutocheckpoint);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, dbPath, String(seconds), autocheckpoint], {
      env: { ...process.env, LTXVFS_ROOT: projectRoot() },
      stdio: ['ignore', 'pipe', 'inherit'],
      cwd: projectRoot(),
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(Number(out)) : reject(new Error(`writer exited ${code}`)),
    );
  });
}

async function measureThroughput(opts: {
  run: string;
  dir: string;
  seconds: number;
  replica?: ReplicaClient;
  replicatorOptions?: Partial<ReplicatorOptions>;
  appAutocheckpoint?: number;
}): Promise<{ run: string; transactions: number; txPerSec: number }> {
  const dbPath = join(
    opts.dir,
    `tp-${opts.run.replace(/\W+/g, '-')}-${Math.random().toString(36).slice(2)}.db`,
  );
  const init = new Database(dbPath);
  init.pragma('journal_mode = WAL');
  init.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, n INTEGER)');
  init.close();
  let rep: Replicator | undefined;
  if (opts.replica) {
    rep = new Replicator({ dbPath, replica: opts.replica, lease: false, ...opts.replicatorOptions });
    await rep.start();
  }
  const transactions = await runWriter(opts.dir, dbPath, opts.seconds, opts.appAutocheckpoint);
  if (rep) {
    await rep.sync();
    await rep.stop();
  }
  return { run: opts.run, transactions, txPerSec: Math.round(transactions / opts.seconds) };
}

export interface ThroughputComparisonOptions {
  /** Alone / with-replicator pairs, interleaved (default 5). */
  rounds?: number;
  seconds?: number;
  /** The application's wal_autocheckpoint (default: SQLite's, 1000 pages). */
  appAutocheckpoint?: number;
  replicatorOptions?: Partial<ReplicatorOptions>;
  log?: (line: string) => void;
}

export interface ThroughputComparison {
  aloneTxPerSec: number[];
  withTxPerSec: number[];
  medianAlone: number;
  medianWith: number;
  /** median(with) / median(alone), percent. */
  keptPercent: number;
  loadAverage: number[];
}

/**
 * The primary's throughput alone and with the replicator (file backend), run alternately so a
 * shared machine's changing load hits both about equally; medians of the rounds.
 */
export async function runThroughputComparison(
  options: ThroughputComparisonOptions = {},
): Promise<ThroughputComparison> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const rounds = options.rounds ?? 5;
  const seconds = options.seconds ?? 4;
  const dir = mkdtempSync(join(tmpdir(), 'ltxvfs-bench-tp-'));
  const alone: number[] = [];
  const withRep: number[] = [];
  const load = loadavg();
  try {
    for (let i = 0; i < rounds; i++) {
      const a = await measureThroughput({
        run: 'alone',
        dir,
        seconds,
        appAutocheckpoint: options.appAutocheckpoint,
      });
      const client = openReplicaClient(join(dir, `replica-${i}`));
      const w = await measureThroughput({
        run: 'with',
        dir,
        seconds,
        replica: client,
        appAutocheckpoint: options.appAutocheckpoint,
        replicatorOptions: options.replicatorOptions,
      });
      await client.close();
      alone.push(a.txPerSec);
      withRep.push(w.txPerSec);
      log(`round ${i + 1}: alone ${a.txPerSec} tx/s, with replicator ${w.txPerSec} tx/s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const medianAlone = median(alone);
  const medianWith = median(withRep);
  return {
    aloneTxPerSec: alone,
    withTxPerSec: withRep,
    medianAlone,
    medianWith,
    keptPercent: Math.round((medianWith / Math.max(1, medianAlone)) * 1000) / 10,
    loadAverage: [...load, ...loadavg()].map((x) => Math.round(x * 100) / 100),
  };
}

export async function runReplicationBench(
  options: ReplicationBenchOptions = {},
): Promise<ReplicationBenchResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const lagSeconds = options.lagSeconds ?? (options.quick ? 4 : 10);
  const tpSeconds = options.throughputSeconds ?? (options.quick ? 3 : 8);
  const dir = mkdtempSync(join(tmpdir(), 'ltxvfs-bench-repl-'));
  const backends: Array<{ name: string; client: () => ReplicaClient }> = [
    {
      name: 'file',
      client: () => openReplicaClient(join(dir, `replica-${Math.random().toString(36).slice(2)}`)),
    },
  ];
  if (options.s3Url) {
    const base = options.s3Url;
    backends.push({
      name: 's3',
      client: () => {
        const u = new URL(base.replace(/^s3:/, 'http:'));
        u.pathname = `${u.pathname.replace(/\/$/, '')}/${Math.random().toString(36).slice(2)}`;
        return openReplicaClient(u.toString().replace(/^http:/, 's3:'));
      },
    });
  }
  const lag: LagRow[] = [];
  const throughput: ThroughputRow[] = [];
  try {
    mkdirSync(dir, { recursive: true });
    for (const b of backends) {
      for (const interval of options.quick ? [1000, 100] : [1000, 100, 20]) {
        const client = b.client();
        const row = await measureLag({
          backend: b.name,
          replica: client,
          syncIntervalMs: interval,
          seconds: lagSeconds,
          commitsPerSecond: 50,
          dir,
        });
        await client.close();
        log(`replication lag ${b.name} @${interval} ms: p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms`);
        lag.push(row);
      }
    }
    const base = await measureThroughput({ run: 'primary alone', dir, seconds: tpSeconds });
    throughput.push({ ...base, keptPercent: 100 });
    for (const b of backends) {
      const client = b.client();
      const r = await measureThroughput({
        run: `with replicator (${b.name}, 1 s)`,
        dir,
        seconds: tpSeconds,
        replica: client,
      });
      await client.close();
      throughput.push({
        ...r,
        keptPercent: Math.round((r.txPerSec / Math.max(1, base.txPerSec)) * 1000) / 10,
      });
    }
    for (const t of throughput)
      log(`primary throughput ${t.run}: ${t.txPerSec} tx/s (${t.keptPercent ?? '-'}%)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const result = { lag, throughput };
  if (options.writeJson !== false) {
    const out = join(projectRoot(), 'bench', 'results');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'replication.json'), `${JSON.stringify(result, null, 2)}\n`);
  }
  return result;
}

function table(rows: Array<Record<string, unknown>>): string {
  const cols = Object.keys(rows[0] ?? {});
  return [
    `| ${cols.join(' | ')} |`,
    `| ${cols.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${cols.map((c) => String(r[c])).join(' | ')} |`),
  ].join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const quick = process.argv.includes('--quick');
  const arg = (name: string) => {
    const i = process.argv.indexOf(name);
    return i < 0 ? undefined : process.argv[i + 1];
  };
  if (process.argv.includes('--throughput')) {
    const ckpt = arg('--app-autocheckpoint');
    const repOpts = arg('--replicator-options');
    runThroughputComparison({
      rounds: Number(arg('--rounds') ?? 5),
      seconds: Number(arg('--seconds') ?? 4),
      appAutocheckpoint: ckpt === undefined ? undefined : Number(ckpt),
      replicatorOptions: repOpts ? (JSON.parse(repOpts) as Partial<ReplicatorOptions>) : undefined,
    }).then(
      (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
      (err) => {
        process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
        process.exitCode = 1;
      },
    );
  } else {
    const s3Url = process.env.LTXVFS_BENCH_S3_URL;
    runReplicationBench({ quick, s3Url }).then(
      (r) => {
        process.stdout.write(
          `\n## Replication lag (commit -> durable in the replica)\n\n${table(r.lag as unknown as Array<Record<string, unknown>>)}\n`,
        );
        process.stdout.write(
          `\n## Primary write throughput (5-row transactions, app in its own process)\n\n${table(r.throughput as unknown as Array<Record<string, unknown>>)}\n`,
        );
      },
      (err) => {
        process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
        process.exitCode = 1;
      },
    );
  }
}
