import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { INSERT_REVIEW, makeReview, REVIEWS_SCHEMA, seededRandom } from '../src/demo/reviews.js';
import { Replicator } from '../src/writer/replicator.js';
import type { BenchContext } from './context.js';
import type { BenchSection, Cell } from './report.js';
import type { ReaderResult } from './scale-out-reader.js';
import { removeScratch } from './scratch.js';
import { percentile } from './support/stats.js';

/**
 * 1, 4 and 16 reader processes follow one replica in S3 (through the latency proxy) while a
 * primary commits a review every `writeEveryMs`. Reported per round: requests per second that
 * reach the store from all readers together, and each reader's lag (age of the newest row it can
 * see), which a shared poller per process keeps independent of how many queries it runs.
 */
const START_BATCH = 4;
/** The primary commits and the writer syncs this long before the first readers start. */
const WRITER_WARM_UP_MS = 5000;
const READER_SCRIPT = fileURLToPath(new URL('./scale-out-reader.js', import.meta.url));

interface Reader {
  child: ChildProcessWithoutNullStreams;
  ready: Promise<{ openMs: number }>;
  result: Promise<ReaderResult>;
}

/** How a reader follows: the writer's manifest (conditional GET) or listing, as before it. */
type Polling = 'manifest' | 'list';

function startReader(
  url: string,
  measureMs: number,
  sampleMs: number,
  pollMs: number,
  polling: Polling,
): Reader {
  const child = spawn(
    process.execPath,
    [READER_SCRIPT, url, String(measureMs), String(sampleMs), String(pollMs), polling],
    {
      stdio: 'pipe',
      env: process.env,
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const lines = createInterface({ input: child.stdout });
  let onReady: (v: { openMs: number }) => void;
  let onResult: (v: ReaderResult) => void;
  let onError: (e: Error) => void;
  const ready = new Promise<{ openMs: number }>((resolve, reject) => {
    onReady = resolve;
    onError = reject;
  });
  const result = new Promise<ReaderResult>((resolve, reject) => {
    onResult = resolve;
    const prev = onError;
    onError = (e) => {
      prev(e);
      reject(e);
    };
  });
  ready.catch(() => {});
  result.catch(() => {});
  lines.on('line', (line) => {
    const msg = JSON.parse(line) as { ready?: boolean; openMs?: number } & Partial<ReaderResult>;
    if (msg.ready) onReady({ openMs: msg.openMs ?? 0 });
    else onResult(msg as ReaderResult);
  });
  child.on('exit', (code) => {
    if (code !== 0)
      onError(new Error(`reader ${child.pid} exited with ${code}: ${stderr.trim().split('\n').pop()}`));
  });
  return { child, ready, result };
}

/** AWS S3 Standard request prices (us-east-1), USD per request. */
const USD_PER_GET = 0.0004 / 1000;
const USD_PER_LIST = 0.005 / 1000;

function monthlyUsd(perSecond: { list: number; get: number }): number {
  return Math.round((perSecond.list * USD_PER_LIST + perSecond.get * USD_PER_GET) * 30 * 86_400 * 100) / 100;
}

export async function runScaleOutSection(ctx: BenchContext): Promise<BenchSection> {
  const quick = ctx.mode === 'quick';
  const measureMs = quick ? 8000 : 20_000;
  const writeEveryMs = 100;
  const syncIntervalMs = 1000;
  const pollMs = 1000;
  const sampleMs = 200;
  const bucket = `bench-scale-${Date.now().toString(36)}`;
  await ctx.s3.createBucket(bucket);
  const primaryPath = path.join(ctx.workDir, 'scale-out-primary.db');
  await removeScratch(primaryPath);

  const db = new Database(primaryPath);
  db.pragma('journal_mode = WAL');
  db.exec(REVIEWS_SCHEMA);
  const insert = db.prepare(INSERT_REVIEW);
  const random = seededRandom(7);
  db.transaction(() => {
    for (let i = 0; i < 5000; i++) insert.run(makeReview(random, Date.now(), 4));
  })();
  // The writer talks to the store through the same simulated network as the readers.
  const replicator = new Replicator({
    dbPath: primaryPath,
    replica: ctx.replicaUrl(bucket, 'app', true),
    syncIntervalMs,
  });
  await replicator.start();
  await replicator.sync();
  let writer: NodeJS.Timeout | undefined;

  const rows: Array<Record<string, Cell>> = [];
  const raw: unknown[] = [];
  try {
    for (const phase of ['primary writing', 'nothing changing'] as const) {
      if (phase === 'primary writing') {
        writer = setInterval(() => insert.run(makeReview(random, Date.now(), 4)), writeEveryMs);
        // Without this the first arm's first samples measure the writer starting up (the reader's
        // view at open predates the first commits: ~4 s), and with 100 samples per reader those
        // two samples alone set its p99; the later arms start with the writer long running.
        await new Promise((r) => setTimeout(r, WRITER_WARM_UP_MS));
      } else {
        clearInterval(writer);
        await replicator.sync();
      }
      // Both ways of following in the same run, one after the other per reader count, so they
      // meet the same machine load.
      for (const count of ctx.readers)
        for (const polling of ['manifest', 'list'] as const) {
          // Start them a few at a time: 16 Node processes loading wasm at once on a small machine
          // would measure start-up contention, not following.
          const readers: Reader[] = [];
          const opened: Array<{ openMs: number }> = [];
          for (let i = 0; i < count; i += START_BATCH) {
            const batch = Array.from({ length: Math.min(START_BATCH, count - i) }, () =>
              startReader(ctx.replicaUrl(bucket, 'app', true), measureMs, sampleMs, pollMs, polling),
            );
            readers.push(...batch);
            opened.push(...(await Promise.all(batch.map((r) => r.ready))));
          }
          for (const r of readers) r.child.stdin.write('go\n');
          const results = await Promise.all(readers.map((r) => r.result));
          const seconds = measureMs / 1000;
          const requests = results.reduce(
            (a, r) => a + r.requests.list + r.requests.get + r.requests.head + r.requests.put,
            0,
          );
          const total = (kind: 'list' | 'get' | 'head' | 'put'): number =>
            results.reduce((a, r) => a + r.requests[kind], 0);
          const lists = total('list');
          const perReaderPerSecond = (n: number): number => n / seconds / count;
          const perReader = {
            list: perReaderPerSecond(lists),
            get: perReaderPerSecond(total('get') + total('head')),
          };
          const openMs = opened.map((o) => o.openMs);
          const lagP50s = results.map((r) => percentile(r.lagMs, 50));
          const lagP99s = results.map((r) => percentile(r.lagMs, 99));
          const all = results.flatMap((r) => r.lagMs);
          // With the primary idle the newest row only grows older, so its age says nothing about
          // following; the idle phase is there for the request cost alone.
          const lagShown = phase === 'primary writing';
          rows.push({
            phase,
            polling: polling === 'manifest' ? 'manifest (conditional GET)' : 'LIST (no manifest)',
            readers: count,
            'store requests/s (all readers)': requests / seconds,
            'LIST/s': lists / seconds,
            'requests/s per reader': requests / seconds / count,
            'GET/s per reader': perReaderPerSecond(total('get')),
            'HEAD/s per reader': perReaderPerSecond(total('head')),
            'PUT/s per reader': perReaderPerSecond(total('put')),
            'LIST/s per reader': perReader.list,
            'USD/month per reader': monthlyUsd(perReader),
            'lag p50 ms (all samples)': lagShown ? percentile(all, 50) : '-',
            'lag p99 ms (all samples)': lagShown ? percentile(all, 99) : '-',
            'worst reader p50 / p99 ms': lagShown
              ? `${Math.round(Math.max(...lagP50s))} / ${Math.round(Math.max(...lagP99s))}`
              : '-',
            'open ms (median)': Math.round(percentile(openMs, 50)),
            'failed queries': results.reduce((a, r) => a + r.errorCount, 0),
          });
          raw.push({
            phase,
            polling,
            readers: count,
            perReader: results.map((r) => ({
              pid: r.pid,
              openMs: r.openMs,
              samples: r.samples,
              lagP50: percentile(r.lagMs, 50),
              lagP99: percentile(r.lagMs, 99),
              // One sample every sampleMs, in order: shows whether lag is spread or bunched.
              lagMs: r.lagMs.map(Math.round),
              requests: r.requests,
            })),
          });
          ctx.log(
            `scale-out (${phase}, ${polling}) ${count} readers: ${Math.round(requests / seconds)} req/s (${perReader.list.toFixed(2)} LIST/s per reader)` +
              (lagShown
                ? `, lag p50 ${Math.round(percentile(all, 50))} ms p99 ${Math.round(percentile(all, 99))} ms`
                : ''),
          );
        }
    }
  } finally {
    if (writer !== undefined) clearInterval(writer);
    await replicator.stop();
    db.close();
    await removeScratch(primaryPath);
  }
  return {
    id: 'scale-out',
    title: 'Scale-out: reader processes following one replica',
    note: `Each reader is its own Node process with the ltx VFS, polling the replica every ${pollMs} ms through the proxy (RTT ${ctx.rttMs} ms) and asking for the newest row every ${sampleMs} ms for ${measureMs / 1000} s. The primary commits a review every ${writeEveryMs} ms; the replicator syncs every ${syncIntervalMs} ms; both run ${WRITER_WARM_UP_MS / 1000} s before the first readers start. Lag = age of the newest row a reader sees (commit time on the primary to visible on the reader, including the sync and poll intervals). Then the same with the primary idle (nothing changing), where only the request cost is reported (the newest row just grows older, so its age is not a lag). Each reader count runs twice in a row: readers following the writer's manifest (one conditional GET per poll) and readers following by LIST (\`manifest: false\`, as on a replica Litestream wrote). Cost at AWS S3 Standard list prices (us-east-1): GET/HEAD $0.0004 and LIST $0.005 per 1,000 requests, 30-day month.`,
    columns: Object.keys(rows[0] ?? {}),
    rows,
    raw,
  };
}
