import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planRestore } from '../src/replica/plan.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo, ReplicaClient } from '../src/storage/types.js';
import { formatDuration } from '../src/util/duration.js';
import { present } from '../src/util/invariant.js';
import { seededRandom } from '../src/util/random.js';
import { CompactionScheduler } from '../src/writer/compaction/compaction.js';
import {
  type CompactionConfig,
  DEFAULT_COMPACTION_CONFIG,
} from '../src/writer/compaction/compaction-config.js';
import { projectRoot } from './s3-server.js';
import { writeLtxFile } from './support/ltx-images.js';

/**
 * A steady write load over simulated hours (injected clock, real store): every sync interval the
 * primary changes a few pages and sometimes grows, which becomes one L0 file; the scheduler runs
 * the levels, snapshots and retention. Reports requests per hour by kind (as the ReplicaClient
 * counts them, uploads included), what is stored at the end, and how many files and bytes a
 * restore of the latest state needs.
 */
export interface CompactionBenchOptions {
  quick?: boolean;
  /** Simulated hours (default 4; quick 1). */
  hours?: number;
  /** Seconds between syncs of the primary (default 1, Litestream's default). */
  syncIntervalSeconds?: number;
  /** Pages changed per sync (default 8) of a database of `pages` pages (default 2560 = 10 MiB). */
  pagesPerSync?: number;
  pages?: number;
  /** Store to use; default a temporary file replica. */
  s3Url?: string;
  log?: (line: string) => void;
  /** Write bench/results/compaction.json (default true). */
  writeJson?: boolean;
}

export interface CompactionBenchRow {
  config: string;
  simulatedHours: number;
  l0Files: number;
  putPerHour: number;
  getPerHour: number;
  listPerHour: number;
  deletePerHour: number;
  mibWrittenPerHour: number;
  mibReadPerHour: number;
  filesStored: number;
  mibStored: number;
  restoreFiles: number;
  restoreMib: number;
  restorePlan: string;
  wallSeconds: number;
}

export interface CompactionBenchResult {
  settings: Record<string, number | string>;
  rows: CompactionBenchRow[];
}

const PAGE_SIZE = 4096;
const MiB = 1024 * 1024;

/** A page that compresses like a B-tree leaf: some structure, some text-like bytes, free space. */
/** Page `pgno` of the in-memory image (pages are numbered from 1). */
function pageOf(image: Uint8Array[], pgno: number): Uint8Array {
  return present(image[pgno - 1], `page ${pgno} of a ${image.length}-page image`);
}

function fillPage(page: Uint8Array, random: () => number): void {
  page.fill(0);
  const used = Math.floor(PAGE_SIZE * (0.4 + random() * 0.5));
  for (let i = 0; i < used; i++) page[i] = random() < 0.5 ? 97 + Math.floor(random() * 26) : i & 0xff;
}

async function runOne(
  name: string,
  config: CompactionConfig,
  opts: Required<Pick<CompactionBenchOptions, 'hours' | 'syncIntervalSeconds' | 'pagesPerSync' | 'pages'>> & {
    client: ReplicaClient;
    log: (line: string) => void;
  },
): Promise<CompactionBenchRow> {
  const { client } = opts;
  // Seeded so runs are comparable.
  const random = seededRandom(42);
  const image: Uint8Array[] = [];
  let clock = Date.UTC(2025, 0, 1);
  let txid = 0;
  const now = () => clock;
  const snapshot = async (): Promise<LtxFileInfo | null> => {
    if (txid === 0) return null;
    const pages = image.map((data, i) => ({ pgno: i + 1, data }));
    return writeLtxFile(
      client,
      { level: 9, minTxid: 1, maxTxid: txid },
      { pageSize: PAGE_SIZE, commit: image.length, timestamp: clock, pages },
    );
  };
  const scheduler = new CompactionScheduler({ client, config, takeSnapshot: snapshot, now });
  client.resetStats();
  const started = performance.now();
  const syncs = Math.round((opts.hours * 3600) / opts.syncIntervalSeconds);
  for (let s = 0; s < syncs; s++) {
    clock += opts.syncIntervalSeconds * 1000;
    txid++;
    let changed: number[];
    if (txid === 1) {
      for (let p = 0; p < opts.pages; p++) {
        const page = new Uint8Array(PAGE_SIZE);
        fillPage(page, random);
        image.push(page);
      }
      changed = image.map((_, i) => i + 1);
    } else {
      const set = new Set<number>([1]);
      // Mostly updates in place, a slow growth of one page every ~10 syncs.
      if (random() < 0.1) {
        image.push(new Uint8Array(PAGE_SIZE));
        set.add(image.length);
      }
      while (set.size < opts.pagesPerSync) set.add(1 + Math.floor(random() * image.length));
      changed = [...set].sort((a, b) => a - b);
      for (const pgno of changed) fillPage(pageOf(image, pgno), random);
    }
    await writeLtxFile(
      client,
      { level: 0, minTxid: txid, maxTxid: txid },
      {
        pageSize: PAGE_SIZE,
        commit: image.length,
        timestamp: clock,
        pages: changed.map((pgno) => ({ pgno, data: pageOf(image, pgno) })),
      },
    );
    await scheduler.tick();
  }
  const wallSeconds = (performance.now() - started) / 1000;
  const stats = client.stats();
  const listing = new Map<number, LtxFileInfo[]>();
  for (const level of await client.levels()) listing.set(level, await client.listFiles(level));
  const stored = [...listing.values()].flat();
  const plan = planRestore(listing, {});
  const perHour = (n: number) => Math.round((n / opts.hours) * 10) / 10;
  const row: CompactionBenchRow = {
    config: name,
    simulatedHours: opts.hours,
    l0Files: txid,
    putPerHour: perHour(stats.put),
    getPerHour: perHour(stats.get),
    listPerHour: perHour(stats.list),
    deletePerHour: perHour(stats.delete),
    mibWrittenPerHour: perHour(stats.bytesWritten / MiB),
    mibReadPerHour: perHour(stats.bytesRead / MiB),
    filesStored: stored.length,
    mibStored: Math.round((stored.reduce((n, f) => n + f.size, 0) / MiB) * 10) / 10,
    restoreFiles: plan.length,
    restoreMib: Math.round((plan.reduce((n, f) => n + f.size, 0) / MiB) * 10) / 10,
    restorePlan: [...new Set(plan.map((f) => f.level))]
      .map((level) => `L${level}x${plan.filter((f) => f.level === level).length}`)
      .join(' '),
    wallSeconds: Math.round(wallSeconds * 10) / 10,
  };
  opts.log(`compaction bench ${name}: ${JSON.stringify(row)}`);
  return row;
}

function describeConfig(c: CompactionConfig): string {
  return (
    `levels ${c.levels.map(formatDuration).join(',')}, snapshot ${formatDuration(c.snapshotIntervalMs)}, ` +
    `retention ${formatDuration(c.retentionMs)}${c.retentionEnabled ? '' : ' (off)'}, l0 ${formatDuration(c.l0RetentionMs)}`
  );
}

export async function runCompactionBench(
  options: CompactionBenchOptions = {},
): Promise<CompactionBenchResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const hours = options.hours ?? (options.quick ? 1 : 4);
  const base = {
    hours,
    syncIntervalSeconds: options.syncIntervalSeconds ?? 1,
    pagesPerSync: options.pagesPerSync ?? 8,
    pages: options.pages ?? (options.quick ? 640 : 2560),
    log,
  };
  const levels = () => [...DEFAULT_COMPACTION_CONFIG.levels];
  const configs: Array<[string, CompactionConfig]> = [
    ['defaults', { ...DEFAULT_COMPACTION_CONFIG, levels: levels() }],
    // Short snapshot cycle so a run of a few hours reaches retention's steady state.
    [
      'steady state',
      { ...DEFAULT_COMPACTION_CONFIG, levels: levels(), snapshotIntervalMs: 900_000, retentionMs: 1_800_000 },
    ],
  ];
  if (!options.quick)
    configs.push([
      'retention off',
      { ...DEFAULT_COMPACTION_CONFIG, levels: levels(), retentionEnabled: false },
    ]);
  const rows: CompactionBenchRow[] = [];
  for (const [label, config] of configs) {
    const dir = options.s3Url ? undefined : mkdtempSync(join(tmpdir(), 'ltxvfs-bench-compaction-'));
    const url =
      dir !== undefined
        ? join(dir, 'replica')
        : `${(options.s3Url ?? '').replace(/\/?(\?|$)/, `/${rows.length}$1`)}`;
    const client = openReplicaClient(url);
    try {
      rows.push(await runOne(`${label}: ${describeConfig(config)}`, config, { ...base, client }));
    } finally {
      await client.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    }
  }
  const result: CompactionBenchResult = {
    settings: {
      hours,
      syncIntervalSeconds: base.syncIntervalSeconds,
      pagesPerSync: base.pagesPerSync,
      databasePages: base.pages,
      pageSize: PAGE_SIZE,
      store: options.s3Url ? 's3' : 'file',
    },
    rows,
  };
  if (options.writeJson !== false) {
    const target = join(projectRoot(), 'bench', 'results', 'compaction.json');
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, `${JSON.stringify(result, null, 2)}\n`);
    log(`wrote ${target}`);
  }
  printTable(rows, log);
  return result;
}

function printTable(rows: CompactionBenchRow[], log: (line: string) => void): void {
  const cols: Array<keyof CompactionBenchRow> = [
    'config',
    'putPerHour',
    'getPerHour',
    'listPerHour',
    'deletePerHour',
    'mibWrittenPerHour',
    'filesStored',
    'mibStored',
    'restoreFiles',
    'restorePlan',
  ];
  log(`| ${cols.join(' | ')} |`);
  log(`|${cols.map(() => '---').join('|')}|`);
  for (const r of rows) log(`| ${cols.map((c) => String(r[c])).join(' | ')} |`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const quick = process.argv.includes('--quick');
  runCompactionBench({ quick }).catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
