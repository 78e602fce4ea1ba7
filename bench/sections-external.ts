import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { BenchContext } from './context.js';
import type { BenchSection, Cell } from './report.js';

/**
 * The suites other rooms own (LTX codec, replication, compaction, replica page reads) run from
 * their own modules; this file calls them with the run's settings and turns whatever tables
 * their results hold into report sections, so the runner never has to know their shapes.
 */
type ExternalId = 'ltx' | 'replication' | 'compaction' | 'cold-pages';

interface ExternalSuite {
  module: string;
  exportName: string;
  title: string;
  note: string;
  /** Options for the suite, from the run's settings. */
  options(ctx: BenchContext, s3Url: string | undefined): Record<string, unknown>;
  /** Needs a bucket of its own. */
  s3: boolean;
}

const SUITES: Record<ExternalId, ExternalSuite> = {
  ltx: {
    module: 'ltx-codec.js',
    exportName: 'runLtxCodecBench',
    title: 'LTX encode/decode per page encoding',
    note: 'Throughput of page data through the LTX encoder and decoder (pure CPU, no I/O), and the compressed size, per encoding (bench/ltx-codec.ts).',
    options: (ctx) => ({
      outFile: null,
      log: ctx.log,
      ...(ctx.mode === 'quick' ? { rounds: 2, roundMs: 250 } : {}),
    }),
    s3: false,
  },
  replication: {
    module: 'replication.js',
    exportName: 'runReplicationBench',
    title: 'Replication lag and primary write throughput',
    note: 'Lag = a commit on the primary until its LTX file is durable in the replica (file backend, and S3 through the latency proxy); throughput of the primary with and without the replicator beside it (bench/replication.ts).',
    options: (ctx, s3Url) => ({
      quick: ctx.mode === 'quick',
      s3Url: s3Url && proxied(ctx, s3Url),
      log: ctx.log,
      writeJson: false,
    }),
    s3: true,
  },
  compaction: {
    module: 'compaction.js',
    exportName: 'runCompactionBench',
    title: 'Compaction over simulated hours',
    note: 'A steady write load with an injected clock: requests per hour by kind, bytes stored, and how many files a restore of the latest state needs (bench/compaction.ts).',
    options: (ctx) => ({ quick: ctx.mode === 'quick', log: ctx.log, writeJson: false }),
    s3: false,
  },
  'cold-pages': {
    module: 'cold-read.js',
    exportName: 'runColdReadBench',
    title: 'Replica page reads without SQL (coalescing and read-ahead vs one request per page)',
    note: 'The read side alone, below SQLite: opening a replica and reading pages cold, with and without coalescing/read-ahead (bench/cold-read.ts).',
    options: (ctx, s3Url) => ({
      quick: ctx.mode === 'quick',
      s3Url,
      rttMs: ctx.rttMs,
      log: ctx.log,
      writeJson: false,
    }),
    s3: true,
  },
};

/** The same replica URL, but through the latency proxy. */
function proxied(ctx: BenchContext, directUrl: string): string {
  return directUrl.replace(encodeURIComponent(ctx.s3.endpoint), encodeURIComponent(ctx.proxy.endpoint));
}

function isRecordArray(value: unknown): value is Array<Record<string, unknown>> {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((v) => typeof v === 'object' && v !== null && !Array.isArray(v))
  );
}

function toCell(value: unknown): Cell {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value === 'bigint') return value.toString();
  return JSON.stringify(value);
}

/** Every array of flat records found in the result, with the path it was found at. */
export function findTables(
  value: unknown,
  at = '',
): Array<{ at: string; rows: Array<Record<string, Cell>> }> {
  if (isRecordArray(value)) {
    const flat = value.every((row) => Object.values(row).every((v) => typeof v !== 'object' || v === null));
    if (flat)
      return [
        {
          at,
          rows: value.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, toCell(v)]))),
        },
      ];
  }
  if (typeof value !== 'object' || value === null) return [];
  const tables: Array<{ at: string; rows: Array<Record<string, Cell>> }> = [];
  for (const [key, child] of Object.entries(value))
    tables.push(...findTables(child, at ? `${at}.${key}` : key));
  return tables;
}

export async function runExternalSections(ctx: BenchContext, id: ExternalId): Promise<BenchSection[]> {
  const suite = SUITES[id];
  const url = new URL(suite.module, import.meta.url);
  if (!existsSync(fileURLToPath(url))) {
    return [
      {
        id,
        title: suite.title,
        note: suite.note,
        columns: [],
        rows: [],
        skipped: `bench/${suite.module.replace(/\.js$/, '.ts')} is not in this build`,
      },
    ];
  }
  const mod = (await import(url.href)) as Record<string, unknown>;
  const fn = mod[suite.exportName];
  if (typeof fn !== 'function') {
    return [
      {
        id,
        title: suite.title,
        note: suite.note,
        columns: [],
        rows: [],
        skipped: `bench/${suite.module} exports no ${suite.exportName}()`,
      },
    ];
  }
  let s3Url: string | undefined;
  if (suite.s3) {
    const bucket = `bench-${id}-${Date.now().toString(36)}`;
    await ctx.s3.createBucket(bucket);
    s3Url = ctx.replicaUrl(bucket, id, false);
  }
  const result: unknown = await (fn as (o: Record<string, unknown>) => Promise<unknown>)(
    suite.options(ctx, s3Url),
  );
  const tables = findTables(result);
  if (tables.length === 0) {
    return [
      {
        id,
        title: suite.title,
        note: suite.note,
        columns: ['result'],
        rows: [{ result: JSON.stringify(result) }],
        raw: result,
      },
    ];
  }
  return tables.map((t, i) => ({
    id: tables.length > 1 ? `${id}.${t.at}` : id,
    title: tables.length > 1 ? `${suite.title}: ${t.at}` : suite.title,
    note: i === 0 ? suite.note : undefined,
    columns: [...new Set(t.rows.flatMap((r) => Object.keys(r)))],
    rows: t.rows,
    raw: i === 0 ? result : undefined,
  }));
}
