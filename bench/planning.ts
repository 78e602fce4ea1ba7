import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { extendChain } from '../src/replica/extend.js';
import { planRestore } from '../src/replica/plan.js';
import type { LtxFileInfo } from '../src/storage/types.js';
import type { BenchSection } from './report.js';

/**
 * Planning time over replicas of many L0 files (what `replicate --once` from cron leaves), pure
 * CPU, no store: the restore plan to the latest TXID and to a TXID in the middle, and the chain
 * extension a poll makes from the middle. Linear planning shows as a constant time per file;
 * the quadratic planner of before took 10 ms at 1k files and 828 ms at 20k.
 */
export const PLANNING_SIZES = [1_000, 10_000, 20_000, 50_000];

function l0Listing(files: number): Map<number, LtxFileInfo[]> {
  const l0: LtxFileInfo[] = [];
  for (let t = 1; t <= files; t++)
    l0.push({ level: 0, minTxid: t, maxTxid: t, size: 200, createdAt: new Date(t * 1000) });
  return new Map([[0, l0]]);
}

/** Median of `rounds` timed calls after one untimed call, in ms. */
function medianMs(rounds: number, body: () => unknown): number {
  body();
  const samples: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const started = performance.now();
    body();
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)] ?? 0;
}

export function runPlanningSection(
  options: { quick?: boolean; log?: (line: string) => void } = {},
): BenchSection {
  const log = options.log ?? ((line: string) => console.log(line));
  const rounds = options.quick ? 5 : 11;
  const rows: BenchSection['rows'] = [];
  // One untimed pass over every size first, so the smallest is not measured before the JIT is warm.
  for (const files of PLANNING_SIZES) planRestore(l0Listing(files), {});
  for (const files of PLANNING_SIZES) {
    const listing = l0Listing(files);
    const middle = Math.floor(files / 2);
    const latest = medianMs(rounds, () => planRestore(listing, {}));
    const atTxid = medianMs(rounds, () => planRestore(listing, { txid: middle }));
    const extend = medianMs(rounds, () => extendChain(listing, middle));
    const perFileUs = (latest * 1000) / files;
    rows.push({
      'L0 files': files,
      'planRestore latest (ms)': Number(latest.toFixed(2)),
      'planRestore --txid middle (ms)': Number(atTxid.toFixed(2)),
      'extendChain from middle (ms)': Number(extend.toFixed(2)),
      'latest, µs per file': Number(perFileUs.toFixed(2)),
    });
    log(
      `planning ${files} L0 files: latest ${latest.toFixed(2)} ms, txid ${atTxid.toFixed(2)} ms, extend ${extend.toFixed(2)} ms`,
    );
  }
  return {
    id: 'planning',
    title: 'Planning over many L0 files',
    note: `Pure planner, no store (bench/planning.ts): median of ${rounds} runs after a warm-up pass over every size. Linear planning = a flat "µs per file" column (the old quadratic planner: 10 ms at 1k files, 828 ms at 20k, 5 s at 50k).`,
    columns: [
      'L0 files',
      'planRestore latest (ms)',
      'planRestore --txid middle (ms)',
      'extendChain from middle (ms)',
      'latest, µs per file',
    ],
    rows,
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const section = runPlanningSection({ quick: process.argv.includes('--quick') });
  console.log(`| ${section.columns.join(' | ')} |`);
  console.log(`|${section.columns.map(() => '---').join('|')}|`);
  for (const r of section.rows) console.log(`| ${section.columns.map((c) => String(r[c])).join(' | ')} |`);
}
