import Database from 'better-sqlite3';
import type { Ltx } from '../vfs/index.js';
import type { Cell } from './report.js';
import { median } from './support/stats.js';

/** The queries of the warm comparison (same text for ltxvfs and better-sqlite3). */
export const WARM_POINT_SQL = 'SELECT * FROM reviews WHERE id = ?';
export const WARM_SCAN_SQL =
  'SELECT count(*) AS n, sum(length(body)) AS chars, avg(rating) AS avg_rating FROM reviews';

export interface WarmReadsInput {
  ltx: Ltx;
  /** Registered replica names: one fully hydrated, one whose page cache holds the whole database. */
  hydratedName: string;
  warmName: string;
  /** A local copy of exactly the replica's database, for better-sqlite3. */
  nativePath: string;
  rows: number;
  /** Timed point lookups per case (>= 20,000: fewer measure the JIT warming up, not the path). */
  lookups: number;
  /** Untimed lookups run first in every case. */
  warmup: number;
  /** Timed full scans per case (median reported). */
  scans: number;
  /** Store requests of each replica so far (to report that warm reads made none). */
  requestsOf: (name: string) => number;
  dataset: string;
}

export interface WarmCase {
  approach: string;
  how: string;
  lookupsPerSecond: number;
  cpuMicros: number;
  /** Throughput relative to better-sqlite3's prepared statement.get in the same run. */
  ratio: number;
  /** better-sqlite3's CPU time per lookup over this one's. */
  cpuRatio: number;
}

export interface WarmScan {
  approach: string;
  ms: number;
  /** better-sqlite3's scan time over this one (1 = as fast). */
  ratio: number | null;
}

export interface WarmReadsResult {
  lookups: WarmCase[];
  scans: WarmScan[];
  rows: Array<Record<string, Cell>>;
}

function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
}

interface LookupTiming {
  lookupsPerSecond: number;
  /** Process CPU time per lookup: on a shared machine it moves less than the wall clock. */
  cpuMicros: number;
}

async function timeLookups(
  ids: readonly number[],
  warmup: number,
  lookup: (id: number) => Promise<unknown> | unknown,
): Promise<LookupTiming> {
  for (let i = 0; i < warmup; i++) await lookup(ids[i % ids.length] ?? 1);
  const cpu = process.cpuUsage();
  const begun = performance.now();
  for (const id of ids) {
    const row = await lookup(id);
    if (row === undefined) throw new Error(`warm bench: no row for id ${id}`);
  }
  const wall = performance.now() - begun;
  const used = process.cpuUsage(cpu);
  return { lookupsPerSecond: ids.length / (wall / 1000), cpuMicros: (used.user + used.system) / ids.length };
}

async function scanMs(times: number, scan: () => Promise<unknown> | unknown): Promise<number> {
  await scan(); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const begun = performance.now();
    await scan();
    samples.push(performance.now() - begun);
  }
  return median(samples);
}

/**
 * Point lookups (random ids, one after another, after a warm-up) through `db.get` and a prepared
 * `stmt.get`, and full scans, on a hydrated replica, on a warm-cache replica, and with
 * better-sqlite3 on a local copy, all in the same run; ratios are against better-sqlite3.
 */
export async function measureWarmReads(input: WarmReadsInput): Promise<WarmReadsResult> {
  const random = seeded(42);
  const ids = Array.from({ length: input.lookups }, () => 1 + Math.floor(random() * input.rows));
  const cases: Array<Omit<WarmCase, 'ratio' | 'cpuRatio'>> = [];
  const scans: Array<Omit<WarmScan, 'ratio'>> = [];
  const requests: Record<string, number> = {};

  // better-sqlite3 runs before and after ltxvfs (the mean is the baseline), so a load change on
  // a shared machine during the run shifts both sides.
  const local = new Database(input.nativePath, { readonly: true });
  const nativeStmt = local.prepare(WARM_POINT_SQL);
  const nativeFirst = await timeLookups(ids, input.warmup, (id) => nativeStmt.get(id));
  const nativeScanFirst = await scanMs(input.scans, () => local.prepare(WARM_SCAN_SQL).all());

  for (const [label, name] of [
    ['ltxvfs, hydrated', input.hydratedName],
    ['ltxvfs, warm cache (not hydrated)', input.warmName],
  ] as const) {
    const before = input.requestsOf(name);
    const db = await input.ltx.open(`file:${name}?vfs=ltx`);
    cases.push({
      approach: label,
      how: 'db.get(sql, [id])',
      ...(await timeLookups(ids, input.warmup, (id) => db.get(WARM_POINT_SQL, [id]))),
    });
    const stmt = await db.prepare(WARM_POINT_SQL);
    cases.push({
      approach: label,
      how: 'prepared stmt.get(id)',
      ...(await timeLookups(ids, input.warmup, (id) => stmt.get(id))),
    });
    await stmt.finalize();
    scans.push({ approach: label, ms: await scanMs(input.scans, () => db.all(WARM_SCAN_SQL)) });
    await db.close();
    requests[label] = input.requestsOf(name) - before;
  }
  const nativeLast = await timeLookups(ids, 0, (id) => nativeStmt.get(id));
  const nativeScan =
    (nativeScanFirst + (await scanMs(input.scans, () => local.prepare(WARM_SCAN_SQL).all()))) / 2;
  local.close();
  const native: LookupTiming = {
    lookupsPerSecond: (nativeFirst.lookupsPerSecond + nativeLast.lookupsPerSecond) / 2,
    cpuMicros: (nativeFirst.cpuMicros + nativeLast.cpuMicros) / 2,
  };
  cases.push({ approach: 'better-sqlite3 on a local copy', how: 'prepared stmt.get(id)', ...native });
  scans.push({ approach: 'better-sqlite3 on a local copy', ms: nativeScan });

  const lookupResults = cases.map((c) => ({
    ...c,
    ratio: c.lookupsPerSecond / native.lookupsPerSecond,
    cpuRatio: native.cpuMicros / c.cpuMicros,
  }));
  const scanResults = scans.map((s) => ({ ...s, ratio: nativeScan / s.ms }));
  const rows: Array<Record<string, Cell>> = [];
  for (const c of lookupResults) {
    const scan = scanResults.find((s) => s.approach === c.approach);
    const first = !rows.some((r) => r.approach === c.approach);
    rows.push({
      dataset: input.dataset,
      approach: c.approach,
      'point lookup via': c.how,
      'lookups/s': Math.round(c.lookupsPerSecond),
      'vs better-sqlite3': `${c.ratio.toFixed(2)}x`,
      'CPU us/lookup': Number(c.cpuMicros.toFixed(1)),
      'vs better-sqlite3 (CPU)': `${c.cpuRatio.toFixed(2)}x`,
      'full scan ms': first && scan ? Number(scan.ms.toFixed(1)) : null,
      'scan vs better-sqlite3': first && scan?.ratio != null ? `${scan.ratio.toFixed(2)}x` : null,
      'store requests': first ? (requests[c.approach] ?? 0) : null,
    });
  }
  return { lookups: lookupResults, scans: scanResults, rows };
}

export const WARM_COLUMNS = [
  'dataset',
  'approach',
  'point lookup via',
  'lookups/s',
  'vs better-sqlite3',
  'CPU us/lookup',
  'vs better-sqlite3 (CPU)',
  'full scan ms',
  'scan vs better-sqlite3',
  'store requests',
];
