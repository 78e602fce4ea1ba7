import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLtxFile } from '../src/ltx/index.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo } from '../src/storage/types.js';
import { seededRandom } from '../src/util/random.js';
import type { CompactionConfig } from '../src/writer/compaction/compaction-config.js';
import { findLevelGaps } from '../src/writer/compaction/levels.js';
import {
  type DecodeCache,
  listAll,
  restoreForTest,
  SimulatedPrimary,
  sameBytes,
} from './support/compaction-harness.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import { removeBuild, transpileTree } from './support/transpile.js';

// Kills a compacting child process at exact storage requests (before or after the k-th one) and
// at random moments, restarts it, and checks that no TXID was lost and every file is sound.

const root = resolve(import.meta.dirname, '..');
// Inside the project so the compiled child resolves node_modules; .tmp/ is gitignored.
const buildDir = join(root, '.tmp', `compaction-child-${process.pid}`);
const childJs = join(buildDir, 'test', 'support', 'compaction-child.js');
const S = 1000;
const T0 = Date.UTC(2025, 0, 1);

let temp: TempDir;
beforeAll(async () => {
  temp = await makeTempDir('ltxvfs-compaction-crash-');
  transpileTree(join(root, 'test', 'support', 'compaction-child.ts'), buildDir);
  if (!existsSync(childJs)) throw new Error(`could not compile the compaction child to ${childJs}`);
}, 120_000);

afterAll(async () => {
  removeBuild(buildDir);
  await temp?.cleanup();
});

interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function runChild(env: Record<string, string>, killAfterMs?: number): Promise<ChildResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [childJs], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer =
      killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

describe('compaction killed at random points', () => {
  it(
    'never loses a TXID, never leaves a gap, every file stays sound',
    async () => {
      const replicaDir = join(temp.dir, 'replica');
      const client = openReplicaClient(replicaDir);
      const clock = { now: T0 };
      const primary = new SimulatedPrimary({ dir: temp.dir, client, now: () => clock.now, seed: 23 });
      const config: CompactionConfig = {
        levels: [5 * S, 15 * S, 30 * S],
        snapshotIntervalMs: 30 * S,
        retentionMs: 60 * S,
        l0RetentionMs: 5 * S,
        retentionEnabled: true,
        l0RetentionCheckIntervalMs: 2 * S,
      };
      const rng = seededRandom(99);
      const ticks = 10;
      const outcomes = { crashedAtRequest: 0, killedByTimer: 0, completed: 0 };
      // LTXVFS_SOAK=1: many more crash/restart rounds (minutes instead of seconds).
      const rounds = process.env.LTXVFS_SOAK ? 300 : 27;
      let lastDurationMs = 600;
      let lastRequests = 30;
      for (let round = 0; round < rounds; round++) {
        const commits = 2 + Math.floor(rng() * 4);
        for (let i = 0; i < commits; i++) {
          clock.now += S;
          await primary.commit();
        }
        const env: Record<string, string> = {
          REPLICA_DIR: replicaDir,
          DB_PATH: primary.path,
          TXID: String(primary.txid),
          START_MS: String(clock.now),
          TICKS: String(ticks),
          STEP_MS: String(S),
          CONFIG: JSON.stringify(config),
          CRASH_AT: '0',
        };
        let killAfterMs: number | undefined;
        const mode = (round + 2) % 3;
        // Rounds alternate: crash at an exact request (before or after it), kill at a random
        // moment, or run to completion (which must then succeed without errors).
        // Crash points are drawn from what an uninterrupted run of the same shape costs.
        if (mode === 0) {
          env.CRASH_AT = String(1 + Math.floor(rng() * lastRequests));
          env.CRASH_WHEN = rng() < 0.5 ? 'before' : 'after';
        } else if (mode === 1) {
          killAfterMs = Math.floor(lastDurationMs * (0.3 + 0.7 * rng()));
        }
        let began = performance.now();
        let result = await runChild(env, killAfterMs);
        // A run that finished before its random kill (a loaded machine makes durations vary) is
        // killed again, earlier, so the timer rounds do not depend on the machine keeping pace.
        for (let retry = 0; mode === 1 && result.code === 0 && retry < 3; retry++) {
          const tookMs = performance.now() - began;
          began = performance.now();
          result = await runChild(env, Math.floor(tookMs * (0.2 + 0.5 * rng())));
        }
        if (result.code === 0) {
          lastDurationMs = performance.now() - began;
          lastRequests = Math.max(1, (JSON.parse(result.stdout) as { requests: number }).requests);
        }
        if (result.signal === 'SIGKILL') {
          if (mode === 0) outcomes.crashedAtRequest++;
          else outcomes.killedByTimer++;
        } else {
          expect(result.code, `round ${round}: ${result.stderr}`).toBe(0);
          outcomes.completed++;
        }
        clock.now += ticks * S;
      }
      // A last clean run settles whatever the last crash interrupted.
      const final = await runChild({
        REPLICA_DIR: replicaDir,
        DB_PATH: primary.path,
        TXID: String(primary.txid),
        START_MS: String(clock.now),
        TICKS: String(ticks),
        STEP_MS: String(S),
        CONFIG: JSON.stringify(config),
        CRASH_AT: '0',
      });
      expect(final.code, final.stderr).toBe(0);
      clock.now += ticks * S;
      console.log(`compaction crash test: ${JSON.stringify(outcomes)}, ${primary.txid} TXIDs`);
      expect(outcomes.crashedAtRequest).toBeGreaterThanOrEqual(Math.floor(rounds / 5));
      expect(outcomes.killedByTimer).toBeGreaterThan(4);

      const listing = await listAll(client);
      // Every level tiles without holes, and every file decodes cleanly with the TXIDs of its name.
      for (let level = 0; level <= 9; level++) {
        const files = listing.get(level) ?? [];
        if (level >= 1 && level <= 3) {
          expect(files.length, `L${level}`).toBeGreaterThan(0);
          expect(findLevelGaps(files), `L${level}`).toEqual([]);
        }
        for (const f of files) {
          const { header } = decodeLtxFile(await client.readFile(f), { verify: true });
          expect([header.minTxid, header.maxTxid]).toEqual([f.minTxid, f.maxTxid]);
        }
      }
      // Every TXID from the oldest snapshot on is still held by some level 0..8 file, L0 files are
      // only gone where L1 covers them, and the TXIDs stored files end at restore byte-identical.
      const oldestSnapshot = Math.min(...defined(listing.get(9)).map((f) => f.maxTxid));
      const covering: LtxFileInfo[] = [];
      for (let level = 0; level <= 8; level++) covering.push(...(listing.get(level) ?? []));
      for (let txid = oldestSnapshot + 1; txid <= primary.txid; txid++) {
        expect(
          covering.some((f) => f.minTxid <= txid && txid <= f.maxTxid),
          `TXID ${txid} is held`,
        ).toBe(true);
      }
      const l1Max = Math.max(...defined(listing.get(1)).map((f) => f.maxTxid));
      const l0 = new Set((listing.get(0) ?? []).map((f) => f.maxTxid));
      for (let txid = l1Max + 1; txid <= primary.txid; txid++) expect(l0.has(txid), `L0 ${txid}`).toBe(true);
      const cache: DecodeCache = new Map();
      const ends = new Set<number>([primary.txid]);
      for (const f of covering) if (f.maxTxid >= oldestSnapshot) ends.add(f.maxTxid);
      for (const txid of ends) {
        const { image } = await restoreForTest(client, listing, txid, cache);
        expect(sameBytes(image, defined(primary.images.get(txid))), `TXID ${txid}`).toBe(true);
      }
      primary.close();
    },
    process.env.LTXVFS_SOAK ? 3_600_000 : 240_000,
  );
});
