#!/usr/bin/env node
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { lockPgno } from '../src/ltx/index.js';
import { Replica, type ReplicaOptions } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileRef, ReplicaClient, RequestStats } from '../src/storage/types.js';
import { present } from '../src/util/invariant.js';
import { startLatencyProxy } from './proxy.js';
import { imagePages, writeLtxFile } from './support/ltx-images.js';

/**
 * The read side below SQLite: open a replica and read pages cold, ltxvfs's fetcher (coalescing +
 * growing read-ahead) against one range GET per page (what Litestream's VFS does), in the same
 * run over the same objects. With `s3Url` the reads go through a latency-injecting TCP proxy to
 * that S3 server; without it a file replica with `rttMs` added to every request stands in.
 * `node dist/bench/cold-read.js [--quick]`; writes bench/results/cold-read.json.
 */
export interface ColdReadBenchOptions {
  quick?: boolean;
  /** Replica URL on an S3 server (a fresh prefix); otherwise a temp file replica. */
  s3Url?: string;
  /** Round trip added to every request (default 20 ms). */
  rttMs?: number;
  /** Database size (default 8 MiB quick, 48 MiB full). */
  databaseBytes?: number;
  log?: (line: string) => void;
  /** Write bench/results/cold-read.json (default true). */
  writeJson?: boolean;
}

export interface ColdReadRow {
  workload: string;
  mode: string;
  ms: number;
  gets: number;
  lists: number;
  bytesRead: number;
  pages: number;
}

export interface ColdReadBenchResult {
  settings: { backend: string; rttMs: number; databaseBytes: number; pageSize: number; pages: number };
  rows: ColdReadRow[];
  markdown: string;
}

const MODES: Array<{ mode: string; options: ReplicaOptions }> = [
  { mode: 'ltxvfs (coalesce + read-ahead)', options: {} },
  { mode: 'one GET per page', options: { coalesce: false, readAhead: false } },
];

/** Pages of the sequential scan both modes do (the per-page mode pays one round trip each). */
const SCAN_PAGES_BOTH = 512;
const RANDOM_READS = 50;

export async function runColdReadBench(options: ColdReadBenchOptions = {}): Promise<ColdReadBenchResult> {
  const log = options.log ?? (() => {});
  const rttMs = options.rttMs ?? 20;
  const databaseBytes = options.databaseBytes ?? (options.quick ? 8 : 48) * 1024 * 1024;
  const work = await mkdtemp(join(tmpdir(), 'ltxvfs-cold-read-'));
  const cleanups: Array<() => Promise<unknown>> = [() => rm(work, { recursive: true, force: true })];
  try {
    log(`cold-read: building a ${Math.round(databaseBytes / 1048576)} MiB database`);
    const image = buildDatabase(join(work, 'bench.db'), databaseBytes);
    const pageSize = 4096;
    const pages = image.length / pageSize;

    let writer: ReplicaClient;
    let reader: () => ReplicaClient;
    let backend: string;
    if (options.s3Url !== undefined) {
      writer = openReplicaClient(options.s3Url);
      const url = new URL(options.s3Url);
      const endpoint = new URL(url.searchParams.get('endpoint') ?? process.env.S3_ENDPOINT ?? '');
      const proxy = await startLatencyProxy({
        target: { host: endpoint.hostname, port: Number(endpoint.port || 80) },
        rttMs,
      });
      cleanups.push(() => proxy.close());
      url.searchParams.set('endpoint', proxy.endpoint);
      const proxied = url.toString();
      reader = () => openReplicaClient(proxied);
      backend = `S3 through a ${rttMs} ms RTT proxy`;
    } else {
      writer = openReplicaClient(join(work, 'replica'));
      reader = () => withLatency(openReplicaClient(join(work, 'replica')), rttMs);
      backend = `file replica + ${rttMs} ms per request`;
    }
    cleanups.push(() => writer.close());
    await writeReplica(writer, image, pageSize);

    const rows: ColdReadRow[] = [];
    for (const { mode, options: modeOptions } of MODES) {
      log(`cold-read: ${mode}`);
      const client = reader();
      const measure = async (workload: string, n: number, fn: () => Promise<unknown>): Promise<void> => {
        client.resetStats();
        const t0 = performance.now();
        await fn();
        const ms = performance.now() - t0;
        rows.push(row(workload, mode, ms, client.stats(), n));
      };
      let opened: Replica | undefined;
      await measure('open (list + page indexes)', 0, async () => {
        opened = await Replica.open(client, { pollIntervalMs: 0, ...modeOptions });
      });
      const r = present(opened, 'replica opened by the measured step');
      const view = r.acquireLatest();
      const random = seededPages(pages, RANDOM_READS, lockPgno(pageSize));
      await measure(`${RANDOM_READS} random pages, one at a time`, RANDOM_READS, async () => {
        for (const p of random) await view.readPage(p);
      });
      await r.close();
      const scanReplica = await Replica.open(client, { pollIntervalMs: 0, ...modeOptions });
      const scanView = scanReplica.acquireLatest();
      const first = Math.min(SCAN_PAGES_BOTH, pages);
      await measure(`sequential scan, first ${first} pages`, first, async () => {
        for (let p = 1; p <= first; p++) await scanView.readPage(p);
      });
      await scanReplica.close();
      if (mode.startsWith('ltxvfs')) {
        const fullReplica = await Replica.open(client, { pollIntervalMs: 0, ...modeOptions });
        const fullView = fullReplica.acquireLatest();
        await measure(`sequential scan, all ${pages} pages`, pages, async () => {
          for (let p = 1; p <= pages; p++) if (p !== lockPgno(pageSize)) await fullView.readPage(p);
        });
        await fullReplica.close();
        const hydratePath = join(work, 'hydrated.db');
        await measure('hydrate the whole database', pages, async () => {
          const h = await Replica.open(client, { pollIntervalMs: 0, hydratePath, ...modeOptions });
          await new Promise<void>((resolve, reject) => {
            const check = (): void => {
              const s = h.hydration();
              if (s.state === 'done') resolve();
              else if (s.state === 'error') reject(new Error(s.error));
              else setTimeout(check, 5);
            };
            check();
          });
          await h.close();
        });
        if (Buffer.compare(readFileSync(hydratePath), image) !== 0)
          throw new Error('hydrated file differs from the database');
      }
      await client.close();
    }
    const result: ColdReadBenchResult = {
      settings: { backend, rttMs, databaseBytes: image.length, pageSize, pages },
      rows,
      markdown: renderMarkdown(backend, image.length, rows),
    };
    if (options.writeJson !== false) {
      const out = join(
        dirname(fileURLToPath(import.meta.url)),
        '..',
        '..',
        'bench',
        'results',
        'cold-read.json',
      );
      mkdirSync(dirname(out), { recursive: true });
      const { markdown: _, ...json } = result;
      writeFileSync(out, `${JSON.stringify(json, null, 2)}\n`);
    }
    return result;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {});
  }
}

function row(workload: string, mode: string, ms: number, s: RequestStats, pages: number): ColdReadRow {
  return {
    workload,
    mode,
    ms: Math.round(ms * 10) / 10,
    gets: s.get,
    lists: s.list,
    bytesRead: s.bytesRead,
    pages,
  };
}

function renderMarkdown(backend: string, bytes: number, rows: ColdReadRow[]): string {
  const lines = [
    `Cold page reads, ${(bytes / 1048576).toFixed(1)} MiB database, ${backend}`,
    '',
    '| workload | mode | ms | GETs | LISTs | bytes read |',
    '|---|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.workload} | ${r.mode} | ${r.ms} | ${r.gets} | ${r.lists} | ${r.bytesRead} |`),
  ];
  return `${lines.join('\n')}\n`;
}

/** A table of text rows with an index, in a rollback-journal database; returns the file's bytes. */
function buildDatabase(path: string, targetBytes: number): Buffer {
  const db = new Database(path);
  db.pragma('page_size = 4096');
  db.pragma('journal_mode = OFF');
  db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, body TEXT, score INTEGER)');
  db.exec('CREATE INDEX items_name ON items (name)');
  const insert = db.prepare('INSERT INTO items (name, body, score) VALUES (?, ?, ?)');
  let seed = 42;
  const next = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];
  const rows = Math.round(targetBytes / 260);
  db.transaction(() => {
    for (let i = 0; i < rows; i++) {
      const body = Array.from({ length: 24 }, () => words[next() % words.length]).join(' ');
      insert.run(`item-${next().toString(36)}`, body, next() % 1000);
    }
  })();
  db.close();
  return readFileSync(path);
}

/** TXID 1: the whole image, as the writer's first L0 file would be. */
async function writeReplica(client: ReplicaClient, image: Buffer, pageSize: number): Promise<void> {
  await writeLtxFile(
    client,
    { level: 0, minTxid: 1, maxTxid: 1 },
    { pageSize, commit: image.length / pageSize, timestamp: Date.now(), pages: imagePages(image, pageSize) },
  );
}

function seededPages(pages: number, n: number, lock: number): number[] {
  const out: number[] = [];
  let seed = 7;
  while (out.length < n) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const p = 1 + (seed % pages);
    // Far from every earlier pick: a short forward skip would rightly count as sequential.
    if (p !== lock && out.every((q) => Math.abs(q - p) > 16)) out.push(p);
  }
  return out;
}

/** Adds a fixed round trip to every request of a client (the file backend has none of its own). */
function withLatency(client: ReplicaClient, rttMs: number): ReplicaClient {
  const delay = <T>(value: Promise<T>): Promise<T> =>
    new Promise((resolve) => setTimeout(resolve, rttMs)).then(() => value);
  return {
    url: client.url,
    levels: () => delay(client.levels()),
    listAll: () => delay(client.listAll()),
    listFiles: (level, o) => delay(client.listFiles(level, o)),
    readRange: (file: LtxFileRef, offset, length) => delay(client.readRange(file, offset, length)),
    readFile: (file) => delay(client.readFile(file)),
    writeFile: (file, data, o) => delay(client.writeFile(file, data, o)),
    writeFileFrom: (file, source, o) => delay(client.writeFileFrom(file, source, o)),
    deleteFiles: (files) => delay(client.deleteFiles(files)),
    readObject: (name) => delay(client.readObject(name)),
    readObjectIfChanged: (name, etag) => delay(client.readObjectIfChanged(name, etag)),
    writeObject: (name, data, c) => delay(client.writeObject(name, data, c)),
    deleteObject: (name, c) => delay(client.deleteObject(name, c)),
    stats: () => client.stats(),
    resetStats: () => client.resetStats(),
    close: () => client.close(),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  runColdReadBench({
    quick,
    s3Url: process.env.LTXVFS_BENCH_S3_URL,
    log: (l) => process.stderr.write(`${l}\n`),
  }).then(
    (r) => process.stdout.write(r.markdown),
    (err) => {
      process.stderr.write(`cold-read: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
