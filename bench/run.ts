#!/usr/bin/env node
import { mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import bytes from 'bytes-iec';
import { Command } from 'commander';
import type { BenchContext } from './context.js';
import { type Dataset, makeDataset } from './datasets.js';
import { runPlanningSection } from './planning.js';
import { startLatencyProxy } from './proxy.js';
import {
  type BenchReport,
  type BenchSection,
  type ColdPoint,
  formatBytes,
  machineInfo,
  renderSection,
  writeReport,
} from './report.js';
import { projectRoot, startBenchS3 } from './s3-server.js';
import { runScaleOutSection } from './scale-out.js';
import { runExternalSections } from './sections-external.js';
import { runReadPathSections } from './sql-reads.js';

/**
 * `npm run bench [-- --quick]`: makes its own databases, replicates them into a real S3 server
 * (Ceph RGW started here unless LTXVFS_S3_ENDPOINT names one) and reads them back through a proxy
 * that adds network latency, measuring ltxvfs and its baselines in the same run. Writes
 * bench/results/<date>-<mode>.{json,md,svg}.
 */

const ALL_SECTIONS = [
  'reads',
  'replication',
  'scale-out',
  'ltx',
  'planning',
  'compaction',
  'cold-pages',
] as const;
type SectionId = (typeof ALL_SECTIONS)[number];

/**
 * `10MiB`, `1GiB`, `500KB` (KiB = 1024, kB = 1000). bytes-iec rather than bytes: bytes reads
 * `KB` as 1024 and does not know `MiB`, which would change what `--sizes 500KB` means.
 */
function parseSize(text: string): number {
  const size = bytes.parse(text.trim(), { mode: 'metric' });
  if (size === null || !Number.isFinite(size) || size < 0)
    throw new Error(`invalid size "${text}": expected e.g. 10MiB, 1GiB, 500KB`);
  return size;
}

/** Bandwidth like `100MB/s`, `1Gbit`, `0` (unlimited); returns bytes per second. */
function parseBandwidth(text: string): number {
  const s = text.trim().toLowerCase().replace(/\/s$/, '');
  if (s === '0' || s === 'unlimited') return 0;
  const bits = /^(\d+(?:\.\d+)?)\s*(k|m|g)bit$/.exec(s);
  if (bits) return (Number(bits[1]) * { k: 1e3, m: 1e6, g: 1e9 }[bits[2] as 'k' | 'm' | 'g']) / 8;
  return parseSize(s);
}

function sizeName(bytes: number): string {
  return formatBytes(bytes).replace(/\s+/g, '').replace('.0', '');
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('npm run bench --')
    .description('ltxvfs benchmarks against their baselines, in one run')
    .option('--quick', 'small databases and fewer repetitions (finishes in a few minutes)')
    .option('--sizes <list>', 'database sizes, e.g. 10MiB,100MiB,1GiB (quick: 8MiB,128MiB)')
    .option('--rtt <ms>', 'round-trip time the proxy adds to every S3 exchange', '20')
    .option('--bandwidth <rate>', 'proxy bandwidth per direction, e.g. 100MB/s or 1Gbit (0 = unlimited)', '0')
    .option(
      '--readers <list>',
      'reader processes for the scale-out test (quick: 1,4,16 for 8 s each)',
      '1,4,16',
    )
    .option('--only <list>', `sections to run: ${ALL_SECTIONS.join(',')}`)
    .option('--skip <list>', 'sections to leave out')
    .option('--out <dir>', 'where results go', 'bench/results')
    .option('--tag <name>', 'appended to the result file names: <date>-<mode>-<tag>.{json,md,svg}')
    .option('--work-dir <dir>', 'databases and scratch files (kept between runs)', '.tmp/bench')
    .option('--rgw-port <port>', 'port of the RGW the benchmark starts', '7580')
    .option('--mon-port <port>', 'monitor port of that RGW', '3580');
  program.parse(argv);
  const o = program.opts<{
    quick?: boolean;
    sizes?: string;
    rtt: string;
    bandwidth: string;
    readers: string;
    only?: string;
    skip?: string;
    out: string;
    tag?: string;
    workDir: string;
    rgwPort: string;
    monPort: string;
  }>();
  const mode = o.quick ? 'quick' : 'full';
  const sizes = (o.sizes ?? (o.quick ? '8MiB,128MiB' : '10MiB,100MiB,1GiB')).split(',').map(parseSize);
  const rttMs = Number(o.rtt);
  const bandwidthBytesPerSec = parseBandwidth(o.bandwidth);
  const readers = o.readers.split(',').map((n) => Number.parseInt(n, 10));
  const only = new Set((o.only ?? ALL_SECTIONS.join(',')).split(',') as SectionId[]);
  for (const s of (o.skip ?? '').split(',')) only.delete(s as SectionId);
  for (const s of only) if (!ALL_SECTIONS.includes(s)) throw new Error(`unknown section "${s}"`);

  const root = projectRoot();
  const workDir = path.resolve(root, o.workDir);
  const outDir = path.resolve(root, o.out);
  await mkdir(path.join(workDir, 'datasets'), { recursive: true });
  const started = new Date();
  const [loadAtStart = 0] = os.loadavg();
  const t0 = performance.now();
  const log = (line: string) => {
    const s = ((performance.now() - t0) / 1000).toFixed(1).padStart(6);
    process.stderr.write(`[bench ${s}s] ${line}\n`);
  };

  log(
    `mode ${mode}; sizes ${sizes.map(formatBytes).join(', ')}; RTT ${rttMs} ms; bandwidth ${bandwidthBytesPerSec || 'unlimited'}`,
  );
  const datasets: Dataset[] = [];
  for (const size of sizes) {
    const name = `reviews-${sizeName(size)}`;
    const begun = performance.now();
    const ds = await makeDataset(path.join(workDir, 'datasets'), name, size);
    log(
      `dataset ${name}: ${formatBytes(ds.bytes)}, ${ds.rows} rows (${((performance.now() - begun) / 1000).toFixed(1)} s)`,
    );
    datasets.push(ds);
  }

  const largest = Math.max(...sizes);
  const s3 = await startBenchS3({
    rgwPort: Number(o.rgwPort),
    monPort: Number(o.monPort),
    // memstore keeps objects in RAM: room for every dataset, its compacted copies, and slack
    memBytes: Math.max(
      2 * 1024 ** 3,
      Math.ceil((sizes.reduce((a, b) => a + b, 0) * 3 + largest) / 1024 ** 3) * 1024 ** 3,
    ),
  });
  log(`S3: ${s3.origin} at ${s3.endpoint}`);
  const endpointUrl = new URL(s3.endpoint);
  const proxy = await startLatencyProxy({
    target: { host: endpointUrl.hostname, port: Number(endpointUrl.port || 80) },
    rttMs,
    bandwidthBytesPerSec,
  });
  // Child processes (CLI, readers) find credentials where every AWS tool looks.
  process.env.AWS_ACCESS_KEY_ID = s3.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = s3.secretAccessKey;
  process.env.AWS_REGION = s3.region;

  const ctx: BenchContext = {
    mode,
    workDir,
    s3,
    proxy,
    datasets,
    rttMs,
    bandwidthBytesPerSec,
    readers,
    log,
    replicaUrl: (bucket, prefix, proxied) => {
      const endpoint = proxied ? proxy.endpoint : s3.endpoint;
      return `s3://${bucket}/${prefix}?endpoint=${encodeURIComponent(endpoint)}&region=${s3.region}&forcePathStyle=true`;
    },
  };

  const sections: BenchSection[] = [];
  const cold: ColdPoint[] = [];
  const record = (section: BenchSection) => {
    sections.push(section);
    process.stdout.write(`\n${renderSection(section)}\n`);
  };
  const guarded = async (id: SectionId, title: string, body: () => Promise<void>) => {
    if (!only.has(id)) return;
    log(`section ${id}: start`);
    const begun = performance.now();
    try {
      await body();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      log(`section ${id}: FAILED: ${reason}`);
      if (process.env.LTXVFS_DEBUG && err instanceof Error) log(String(err.stack));
      record({ id, title, columns: [], rows: [], skipped: `failed: ${reason}` });
    }
    log(`section ${id}: done in ${((performance.now() - begun) / 1000).toFixed(1)} s`);
  };

  let exitCode = 0;
  try {
    await guarded('reads', 'Cold reads, hydration, warm reads', async () => {
      const result = await runReadPathSections(ctx);
      for (const s of result.sections) record(s);
      cold.push(...result.cold);
    });
    await guarded('replication', 'Replication lag and primary throughput', async () => {
      for (const s of await runExternalSections(ctx, 'replication')) record(s);
    });
    await guarded('scale-out', 'Scale-out: reader processes following one replica', async () => {
      record(await runScaleOutSection(ctx));
    });
    await guarded('ltx', 'LTX encode/decode', async () => {
      for (const s of await runExternalSections(ctx, 'ltx')) record(s);
    });
    await guarded('planning', 'Planning over many L0 files', async () => {
      record(runPlanningSection({ quick: mode === 'quick', log }));
    });
    await guarded('compaction', 'Compaction', async () => {
      if (mode === 'quick' && !o.only?.split(',').includes('compaction')) {
        record({
          id: 'compaction',
          title: 'Compaction over simulated hours',
          columns: [],
          rows: [],
          skipped:
            'full mode only (it simulates hours of writes and takes several minutes); `npm run bench -- --quick --only compaction` runs it alone',
        });
        return;
      }
      for (const s of await runExternalSections(ctx, 'compaction')) record(s);
    });
    await guarded('cold-pages', 'Replica page reads without SQL', async () => {
      for (const s of await runExternalSections(ctx, 'cold-pages')) record(s);
    });
  } finally {
    await proxy.close();
    await s3.stop();
  }

  const report: BenchReport = {
    mode,
    command: `npm run bench --${argv.slice(2).length ? ` ${argv.slice(2).join(' ')}` : ''}`,
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { ...machineInfo(), loadAverage: { start: loadAtStart, end: os.loadavg()[0] ?? 0 } },
    settings: {
      sizes: sizes.map(formatBytes).join(', '),
      rttMs,
      bandwidth: bandwidthBytesPerSec ? `${formatBytes(bandwidthBytesPerSec)}/s` : 'unlimited',
      s3: s3.origin,
      readers: readers.join(','),
    },
    sections,
    cold,
  };
  const base = `${started.toISOString().slice(0, 10)}-${mode}${o.tag ? `-${o.tag.replace(/[^A-Za-z0-9._-]/g, '_')}` : ''}`;
  const files = await writeReport(report, outDir, base);
  log(`wrote ${files.map((f) => path.relative(root, f)).join(', ')}`);
  if (sections.some((s) => s.skipped?.startsWith('failed'))) exitCode = 1;
  return exitCode;
}

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
