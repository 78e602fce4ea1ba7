import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { restore } from '../src/replica/restore.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient, RequestStats } from '../src/storage/types.js';
import { Replicator } from '../src/writer/replicator.js';
import { createLtx, type SqlValue } from '../vfs/index.js';
import type { BenchContext } from './context.js';
import type { Dataset } from './datasets.js';
import { type BenchSection, type Cell, type ColdPoint, formatBytes } from './report.js';
import {
  formatSpans,
  sequentialNetworkRoundTrips,
  sequentialRequests,
  sequentialRoundTrips,
  timeRequests,
} from './request-timing.js';
import { removeScratch } from './scratch.js';
import { median } from './support/stats.js';
import { measureWarmReads, WARM_COLUMNS, WARM_SCAN_SQL } from './warm-reads.js';

/** Timed point lookups per warm case, in both modes: fewer measure the JIT warming up. */
const WARM_LOOKUPS = 20_000;
const WARM_WARMUP = 20_000;

/**
 * The read paths a newcomer would compare, all against the same replica in S3 behind the same
 * latency proxy, in the same run:
 * - cold open -> first row (point lookup, range query) and cold full scan, for ltxvfs, for one
 *   range request per page with no coalescing or read-ahead (what Litestream's VFS does), and for
 *   restoring the whole database then querying it with better-sqlite3;
 * - hydration to a fully local file against a full restore;
 * - warm and hydrated reads against better-sqlite3 on a local copy.
 */
const APPROACH = {
  ltxvfs: 'ltxvfs (manifest)',
  listPath: 'ltxvfs (LIST path)',
  listKnown: 'ltxvfs (LIST path, manifest: false)',
  perPage: 'per-page (like Litestream VFS)',
  restore: 'full restore + query',
} as const;

interface Query {
  id: 'point' | 'range' | 'scan';
  label: string;
  /** For the chart. */
  short: string;
  sql: string;
  params: (ds: Dataset, random: () => number) => SqlValue[];
}

const QUERIES: readonly [point: Query, range: Query, scan: Query] = [
  {
    id: 'point',
    label: 'point lookup',
    short: 'point',
    sql: 'SELECT * FROM reviews WHERE id = ?',
    params: (ds, random) => [1 + Math.floor(random() * ds.rows)],
  },
  {
    id: 'range',
    label: 'range query (1,000 rows)',
    short: 'range',
    sql: 'SELECT id, sandwich, rating, length(body) AS len FROM reviews WHERE id BETWEEN ? AND ? ORDER BY id',
    params: (ds, random) => {
      const from = 1 + Math.floor(random() * Math.max(1, ds.rows - 1000));
      return [from, from + 999];
    },
  },
  {
    id: 'scan',
    label: 'full scan',
    short: 'full scan',
    sql: 'SELECT count(*) AS n, sum(length(body)) AS chars, avg(rating) AS avg_rating FROM reviews',
    params: () => [],
  },
];

function requestsOf(s: RequestStats): number {
  return s.list + s.get + s.head;
}

interface Measurement {
  /** Longest chain of requests one after another, in network round trips (sequentialNetworkRoundTrips). */
  netRts: number;
  /** The same chain, each request counted as its duration in round trips (sequentialRoundTrips). */
  rts: number;
  /** The same chain counting one per request (what an idle machine would show). */
  chain: number;
  ms: number;
  requests: number;
  bytes: number;
  rows: number;
}

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

export async function runReadPathSections(
  ctx: BenchContext,
): Promise<{ sections: BenchSection[]; cold: ColdPoint[] }> {
  const bucket = `bench-reads-${Date.now().toString(36)}`;
  await ctx.s3.createBucket(bucket);
  const ltx = await createLtx();
  const coldRows: Array<Record<string, Cell>> = [];
  const hydrationRows: Array<Record<string, Cell>> = [];
  const warmRows: Array<Record<string, Cell>> = [];
  const cold: ColdPoint[] = [];
  const repeats = ctx.mode === 'quick' ? 3 : 5;
  let registered = 0;
  try {
    for (const ds of ctx.datasets) {
      const size = formatBytes(ds.bytes);
      const directUrl = ctx.replicaUrl(bucket, ds.name, false);
      const proxiedUrl = ctx.replicaUrl(bucket, ds.name, true);
      await replicateDataset(ctx, ds, directUrl);

      /** One cold measurement through the VFS: a new Replica (empty cache) per call. */
      const viaVfs = async (
        query: Query,
        params: SqlValue[],
        how: 'manifest' | 'list' | 'list-known' | 'per-page',
      ): Promise<Measurement> => {
        const store = openReplicaClient(proxiedUrl);
        const { client, spans } = timeRequests(how === 'manifest' ? store : withoutLtxvfsObjects(store));
        const name = `bench-${++registered}.db`;
        ctx.proxy.resetStats();
        const begun = performance.now();
        await ltx.registerReplica(name, client, {
          pollIntervalMs: 0,
          // The LIST path as on a replica Litestream wrote: the manifest is looked for (a real 404).
          // 'list-known': a reader told its replica has none (`manifest: false`, `query --no-manifest`).
          manifest: how === 'manifest' || how === 'list',
          ...(how === 'per-page' ? { coalesce: false, readAhead: false } : {}),
        });
        const db = await ltx.open(`file:${name}?vfs=ltx`);
        const rows = await db.all(query.sql, params);
        const ms = performance.now() - begun;
        const stats = client.stats();
        await db.close();
        await ltx.unregisterReplica(name);
        await client.close();
        const netRts = sequentialNetworkRoundTrips(spans, ctx.proxy.connectionTimes(), ctx.rttMs);
        if (process.env.LTXVFS_BENCH_TRACE)
          ctx.log(
            `trace ${ds.name} ${query.id} ${how}: ${Math.round(ms)} ms, ${netRts} RTs (${sequentialRoundTrips(spans, ctx.rttMs)} by time)\n${formatSpans(spans, begun)}`,
          );
        return {
          ms,
          netRts,
          rts: sequentialRoundTrips(spans, ctx.rttMs),
          chain: sequentialRequests(spans),
          requests: requestsOf(stats),
          bytes: stats.bytesRead,
          rows: rows.length,
        };
      };

      /**
       * The restore baseline: the whole database through the proxy once (a restore costs the
       * same whatever the query), then each query on a fresh better-sqlite3 connection to it.
       */
      const restoredPath = path.join(ctx.workDir, `${ds.name}-restored.db`);
      await removeScratch(restoredPath);
      const { client: restoreClient, spans: restoreSpans } = timeRequests(openReplicaClient(proxiedUrl));
      ctx.proxy.resetStats();
      const restoreBegun = performance.now();
      await restore({ client: restoreClient, outPath: restoredPath });
      const restoreMs = performance.now() - restoreBegun;
      const restoreStats = restoreClient.stats();
      await restoreClient.close();
      const restoreOnce = {
        restoreMs,
        netRts: sequentialNetworkRoundTrips(restoreSpans, ctx.proxy.connectionTimes(), ctx.rttMs),
        rts: sequentialRoundTrips(restoreSpans, ctx.rttMs),
        chain: sequentialRequests(restoreSpans),
        requests: requestsOf(restoreStats),
        bytes: restoreStats.bytesRead,
      };
      const viaRestore = (query: Query, params: SqlValue[]): Measurement => {
        const begun = performance.now();
        const db = new Database(restoredPath, { readonly: true });
        const rows = db.prepare(query.sql).all(...params);
        db.close();
        const ms = restoreMs + (performance.now() - begun);
        return {
          ms,
          netRts: restoreOnce.netRts,
          rts: restoreOnce.rts,
          chain: restoreOnce.chain,
          requests: restoreOnce.requests,
          bytes: restoreOnce.bytes,
          rows: rows.length,
        };
      };

      for (const query of QUERIES) {
        const random = seeded(ds.rows + query.id.length);
        const samples: Record<(typeof APPROACH)[keyof typeof APPROACH], Measurement[]> = {
          [APPROACH.ltxvfs]: [],
          [APPROACH.listPath]: [],
          [APPROACH.listKnown]: [],
          [APPROACH.perPage]: [],
          [APPROACH.restore]: [],
        };
        const n = query.id === 'scan' ? 1 : repeats;
        // One range GET per page costs a round trip each: skip what would take minutes, and say so.
        const scanPages = Math.ceil(ds.bytes / ds.pageSize);
        const perPageEstimateS = (scanPages * (ctx.rttMs + 1)) / 1000;
        const perPageTooSlow = query.id === 'scan' && perPageEstimateS > (ctx.mode === 'quick' ? 60 : 300);
        for (let i = 0; i < n; i++) {
          const params = query.params(ds, random);
          samples[APPROACH.ltxvfs].push(await viaVfs(query, params, 'manifest'));
          samples[APPROACH.listPath].push(await viaVfs(query, params, 'list'));
          if (query.id !== 'scan')
            samples[APPROACH.listKnown].push(await viaVfs(query, params, 'list-known'));
          if (!perPageTooSlow) samples[APPROACH.perPage].push(await viaVfs(query, params, 'per-page'));
          samples[APPROACH.restore].push(viaRestore(query, params));
        }
        for (const [approach, list] of Object.entries(samples)) {
          const group = `${query.short}, ${size}`;
          if (list.length === 0 && approach === APPROACH.listKnown) continue; // not asked for scans
          if (list.length === 0) {
            coldRows.push({
              dataset: size,
              query: query.label,
              approach,
              'sequential requests': null,
              'sequential RTs': null,
              'RTs by time': null,
              'ms (median)': null,
              requests: null,
              'bytes read': `not run: ~${scanPages.toLocaleString('en-US')} sequential requests, est. ${Math.round(perPageEstimateS)} s`,
            });
            cold.push({
              group,
              approach,
              ms: 0,
              requests: 0,
              skipped: `not run (~${Math.round(perPageEstimateS)} s)`,
            });
            continue;
          }
          const ms = median(list.map((m) => m.ms));
          const rts = median(list.map((m) => m.rts));
          const netRts = median(list.map((m) => m.netRts));
          const chain = median(list.map((m) => m.chain));
          const requests = median(list.map((m) => m.requests));
          const bytes = median(list.map((m) => m.bytes));
          coldRows.push({
            dataset: size,
            query: query.label,
            approach,
            'sequential requests': chain,
            'sequential RTs': netRts,
            'RTs by time': rts,
            'ms (median)': Math.round(ms),
            requests,
            'bytes read': formatBytes(bytes),
          });
          cold.push({ group, approach, ms, requests });
        }
        ctx.log(
          `reads ${ds.name} ${query.id}: ${coldRows
            .slice(-4)
            .map((r) => `${r.approach}=${r['ms (median)']}ms`)
            .join(' ')}`,
        );
      }

      // Hydration: open cold with a hydrate path and wait until the whole file is local.
      const hydratePath = path.join(ctx.workDir, `${ds.name}-hydrated.db`);
      await removeScratch(hydratePath);
      const client = openReplicaClient(proxiedUrl);
      const name = `bench-${++registered}.db`;
      const begun = performance.now();
      const replica = await ltx.registerReplica(name, client, { pollIntervalMs: 1000, hydratePath });
      await waitForHydration(replica, 600_000);
      const hydrateMs = performance.now() - begun;
      const hstats = client.stats();
      hydrationRows.push({
        dataset: size,
        approach: 'ltxvfs hydration (queries served meanwhile)',
        seconds: hydrateMs / 1000,
        'MB/s': ds.bytes / 1e6 / (hydrateMs / 1000),
        requests: requestsOf(hstats),
        'bytes read': formatBytes(hstats.bytesRead),
      });
      hydrationRows.push({
        dataset: size,
        approach: 'full restore (nothing answerable until done)',
        seconds: restoreOnce.restoreMs / 1000,
        'MB/s': ds.bytes / 1e6 / (restoreOnce.restoreMs / 1000),
        requests: restoreOnce.requests,
        'bytes read': formatBytes(restoreOnce.bytes),
      });

      // Warm reads: the hydrated replica, a warm (cached, not hydrated) one, and better-sqlite3
      // on the restored copy (exactly the replica's database), after a warm-up, in the same run.
      const warmClient = openReplicaClient(proxiedUrl);
      const warmName = `bench-${++registered}.db`;
      await ltx.registerReplica(warmName, warmClient, {
        pollIntervalMs: 0,
        cacheBytes: Math.max(64 << 20, ds.bytes * 2),
      });
      const filler = await ltx.open(`file:${warmName}?vfs=ltx`);
      await filler.all(WARM_SCAN_SQL); // fills the cache
      await filler.close();
      const clients = new Map([
        [name, client],
        [warmName, warmClient],
      ]);
      const warm = await measureWarmReads({
        ltx,
        hydratedName: name,
        warmName,
        nativePath: restoredPath,
        rows: ds.rows,
        lookups: WARM_LOOKUPS,
        warmup: WARM_WARMUP,
        scans: ctx.mode === 'quick' ? 3 : 5,
        requestsOf: (n) => {
          const c = clients.get(n);
          return c ? requestsOf(c.stats()) : 0;
        },
        dataset: size,
      });
      warmRows.push(...warm.rows);
      await ltx.unregisterReplica(name);
      await client.close();
      await ltx.unregisterReplica(warmName);
      await warmClient.close();
      ctx.log(
        `reads ${ds.name}: hydrated in ${(hydrateMs / 1000).toFixed(1)} s; ${warm.lookups
          .map((c) => `${c.approach} ${c.how} ${Math.round(c.lookupsPerSecond)}/s`)
          .join('; ')}`,
      );
      await removeScratch(hydratePath);
      await removeScratch(restoredPath);
      await removeScratch(path.join(ctx.workDir, `${ds.name}-primary.db`));
    }
  } finally {
    await ltx.close();
  }

  const net = `RTT ${ctx.rttMs} ms${ctx.bandwidthBytesPerSec ? `, ${formatBytes(ctx.bandwidthBytesPerSec)}/s` : ', unlimited bandwidth'}`;
  return {
    cold,
    sections: [
      {
        id: 'cold',
        title: 'Cold open to first row',
        note: `Time from opening the replica (nothing cached) until the query's rows are in hand, and what it cost at the store (requests = LIST + GET + HEAD), through the proxy (${net}). Sequential requests: the longest chain of requests each starting after the previous one ended, from request start/end times; sequential RTs: the network round trips of that chain, each request 1 plus 1 when it opened a new connection (the proxy's accept times; the TCP handshake); RTs by time: the same chain with each request counted as its duration in round trips (server and CPU time included, so a busy machine inflates it). ltxvfs (manifest) opens from the writer's manifest and hot pages (the writer's staleness bound set beyond the run, as if it were still running); ltxvfs (LIST path) opens the same replica as one Litestream wrote: every read under ltxvfs/ (manifest, hot pages, page digests) goes to a name that does not exist, so the manifest look is a real 404 before the listing; with manifest: false (a reader told the replica has none: \`query --no-manifest\`) it lists straight away (point and range only: a scan costs the same either way). Baselines in the same run: one range GET per page with no coalescing or read-ahead and no manifest look (what Litestream's VFS does), and restoring the whole database first (once per dataset), then querying it with better-sqlite3 (restore time + query time). Median of ${repeats} (point, range) or 1 (scan) cold runs.`,
        columns: [
          'dataset',
          'query',
          'approach',
          'sequential requests',
          'sequential RTs',
          'RTs by time',
          'ms (median)',
          'requests',
          'bytes read',
        ],
        rows: coldRows,
      },
      {
        id: 'hydration',
        title: 'Hydration vs full restore',
        note: `Time until the whole database is local, through the same proxy (${net}). Hydration runs in the background while queries are already being answered; a restore answers nothing until it is done.`,
        columns: ['dataset', 'approach', 'seconds', 'MB/s', 'requests', 'bytes read'],
        rows: hydrationRows,
      },
      {
        id: 'warm',
        title: 'Warm and hydrated reads vs better-sqlite3',
        note: `Point lookups by primary key, one after another (${WARM_LOOKUPS.toLocaleString('en-US')} random ids after ${WARM_WARMUP.toLocaleString('en-US')} untimed ones, in every case), through db.get(sql, params) and through a prepared statement's get, and a full scan (median of several after one untimed), on a replica that is fully hydrated, on one whose page cache holds the whole database, and with better-sqlite3 on a local copy of the same database, in the same run; "vs better-sqlite3" is throughput against better-sqlite3's prepared get, which runs before and after ltxvfs (the mean of the two), and "(CPU)" the same by process CPU time per lookup, which a shared machine moves less than the wall clock (scans: its time over ours). wa-sqlite runs SQLite as WebAssembly behind a JavaScript VFS (Node ${process.versions.node}), so the gap to native better-sqlite3 is the price of the replica.`,
        columns: WARM_COLUMNS,
        rows: warmRows,
      },
    ],
  };
}

async function waitForHydration(
  replica: { hydration(): { state: string; error?: string } },
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const h = replica.hydration();
    if (h.state === 'done') return;
    if (h.state === 'error') throw new Error(`hydration failed: ${h.error}`);
    if (Date.now() > deadline) throw new Error('hydration did not finish in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The replica as a reader of one Litestream wrote sees it: nothing under `ltxvfs/` (manifest, hot
 * pages, page digests). Each such read goes to a name that does not exist, so it still costs the
 * real request (a 404) it would cost there.
 */
function withoutLtxvfsObjects(client: ReplicaClient): ReplicaClient {
  const absent = (name: string) => (name.startsWith('ltxvfs/') ? `absent-${name}` : name);
  return new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'readObject') return (name: string) => target.readObject(absent(name));
      if (prop === 'readObjectIfChanged')
        return (name: string, etag: string | undefined) => target.readObjectIfChanged(absent(name), etag);
      return Reflect.get(target, prop, receiver);
    },
  });
}

/** The primary's side: copy the dataset, replicate it (snapshot + a few incremental commits). */
async function replicateDataset(ctx: BenchContext, ds: Dataset, url: string): Promise<void> {
  const primary = path.join(ctx.workDir, `${ds.name}-primary.db`);
  await removeScratch(primary);
  await copyFile(ds.path, primary);
  const begun = performance.now();
  // The writer stops before the reads are measured, and a stopped writer's manifest goes stale
  // after its bound (readers then list, as they should). The reads measure a replica whose writer
  // is running, so the bound is set beyond the run instead of keeping an idle writer going.
  const replicator = new Replicator({
    dbPath: primary,
    replica: url,
    syncIntervalMs: 100,
    manifest: { staleAfterMs: 12 * 3600_000 },
  });
  await replicator.start();
  await replicator.sync();
  // A replica in use has incremental files after its first snapshot; add a few.
  const db = new Database(primary);
  const update = db.prepare('UPDATE reviews SET rating = rating % 5 + 1 WHERE id = ?');
  for (let i = 0; i < 5; i++) {
    update.run(1 + ((i * 7919) % ds.rows));
    await replicator.sync();
    // An L9 snapshot above TXID 1 (what compaction writes), so the manifest has hot pages.
    if (i === 1) await replicator.takeSnapshot();
  }
  db.close();
  await replicator.stop();
  ctx.log(
    `replicated ${ds.name} (${formatBytes(ds.bytes)}) in ${((performance.now() - begun) / 1000).toFixed(1)} s`,
  );
}
