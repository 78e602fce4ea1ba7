import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeLtxFile } from '../src/ltx/index.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo, ReplicaClient } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { seededRandom } from '../src/util/random.js';
import { CompactionScheduler } from '../src/writer/compaction/compaction.js';
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
import { createTestBucket, describeS3 } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const S = 1000;
// A day boundary, so every interval's wall-clock boundaries line up with the start.
const T0 = Date.UTC(2025, 0, 1);

const temps: TempDir[] = [];
afterAll(async () => {
  for (const t of temps) await t.cleanup();
});
async function tempDir(): Promise<string> {
  const t = await makeTempDir('ltxvfs-compaction-');
  temps.push(t);
  return t.dir;
}

const key = (f: LtxFileInfo) => `L${f.level}:${f.minTxid}-${f.maxTxid}`;

interface Run {
  client: ReplicaClient;
  primary: SimulatedPrimary;
  scheduler: CompactionScheduler;
  clock: { now: number };
  log: string[];
  /** Every file of levels 1..8 ever listed after a tick. */
  seen: Map<string, LtxFileInfo>;
}

async function simulate(
  client: ReplicaClient,
  config: CompactionConfig,
  steps: number,
  options: { seed?: number; start?: number; trackSeen?: boolean } = {},
): Promise<Run> {
  const clock = { now: options.start ?? T0 };
  const now = () => clock.now;
  const primary = new SimulatedPrimary({ dir: await tempDir(), client, now, seed: options.seed ?? 7 });
  const log: string[] = [];
  const scheduler = new CompactionScheduler({
    client,
    config,
    takeSnapshot: primary.takeSnapshot,
    now,
    logger: (line) => log.push(line),
  });
  const rng = seededRandom(options.seed ?? 7);
  const seen = new Map<string, LtxFileInfo>();
  for (let i = 0; i < steps; i++) {
    clock.now += S;
    if (rng() < 0.7) await primary.commit();
    await scheduler.tick();
    if (options.trackSeen) {
      for (let level = 1; level <= config.levels.length; level++) {
        for (const f of await client.listFiles(level)) seen.set(key(f), f);
      }
    }
  }
  return { client, primary, scheduler, clock, log, seen };
}

/** Every stored file decodes with full verification, its header matches its name, flags = 2. */
async function expectAllFilesValid(client: ReplicaClient, listing: Map<number, LtxFileInfo[]>) {
  for (const files of listing.values()) {
    for (const f of files) {
      const { header } = decodeLtxFile(await client.readFile(f), { verify: true });
      expect([header.minTxid, header.maxTxid, header.flags], key(f)).toEqual([f.minTxid, f.maxTxid, 2]);
    }
  }
}

describe('compaction on the file backend (injected clock)', () => {
  it('fills every level, tiles each level contiguously, and every TXID restores byte-identical', async () => {
    const client = openReplicaClient(join(await tempDir(), 'replica'));
    const config: CompactionConfig = {
      levels: [5 * S, 20 * S, 60 * S],
      snapshotIntervalMs: 150 * S,
      retentionMs: 3600 * S,
      l0RetentionMs: 3600 * S,
      retentionEnabled: true,
      l0RetentionCheckIntervalMs: 5 * S,
    };
    const run = await simulate(client, config, 420);
    const listing = await listAll(client);
    expect([...listing.keys()]).toEqual([0, 1, 2, 3, 9]);
    const latest = run.primary.txid;
    for (const level of [1, 2, 3]) {
      const files = defined(listing.get(level));
      expect(findLevelGaps(files), `L${level}`).toEqual([]);
      expect(defined(files[0]).minTxid, `L${level} starts at TXID 1`).toBe(1);
    }
    // L1 lags L0 by at most one L1 interval (5 commits at most at 1 commit/s).
    expect(latest - defined(defined(listing.get(1)).at(-1)).maxTxid).toBeLessThanOrEqual(5);
    expect(defined(listing.get(9)).map((f) => f.minTxid)).toEqual(defined(listing.get(9)).map(() => 1));
    expect(run.scheduler.stats()).toMatchObject({
      snapshots: defined(listing.get(9)).length,
      deleted: 0,
      errors: 0,
    });
    expect(defined(listing.get(9)).length).toBeGreaterThanOrEqual(2);
    await expectAllFilesValid(client, listing);

    // Files a restore needs at each level: bounded by how many of that level fit in the next one.
    const perLevelBound = [6, 5, 4, 4];
    let largestPlan = 0;
    const cache: DecodeCache = new Map();
    for (let txid = 1; txid <= latest; txid++) {
      const { image, files } = await restoreForTest(client, listing, txid, cache);
      expect(sameBytes(image, defined(run.primary.images.get(txid))), `TXID ${txid}`).toBe(true);
      const byLevel = new Map<number, number>();
      for (const f of files) byLevel.set(f.level, (byLevel.get(f.level) ?? 0) + 1);
      expect(byLevel.get(9) ?? 0).toBeLessThanOrEqual(1);
      for (const [level, n] of byLevel)
        if (level < 9) expect(n, `TXID ${txid} L${level}`).toBeLessThanOrEqual(defined(perLevelBound[level]));
      largestPlan = Math.max(largestPlan, files.length);
    }
    const latestPlan = await restoreForTest(client, listing, latest);
    console.log(
      `compaction: ${latest} TXIDs, files per level ${[...listing].map(([l, f]) => `L${l}=${f.length}`).join(' ')}, ` +
        `largest restore plan ${largestPlan} files, latest state ${latestPlan.files.map(key).join(' ')}`,
    );
  });

  it('gives a compaction output the header timestamp of its last input, as Litestream does (and that mtime on the file backend)', async () => {
    const client = openReplicaClient(join(await tempDir(), 'replica'));
    const config: CompactionConfig = {
      levels: [5 * S, 20 * S],
      snapshotIntervalMs: 10_000 * S,
      retentionMs: 3600 * S,
      l0RetentionMs: 3600 * S,
      retentionEnabled: false,
      l0RetentionCheckIntervalMs: 5 * S,
    };
    await simulate(client, config, 120);
    const listing = await listAll(client);
    const l0 = new Map<number, number>();
    for (const f of listing.get(0) ?? []) {
      l0.set(f.maxTxid, decodeLtxFile(await client.readFile(f)).header.timestamp);
    }
    let checked = 0;
    for (const level of [1, 2]) {
      for (const f of listing.get(level) ?? []) {
        const { header } = decodeLtxFile(await client.readFile(f));
        expect(header.timestamp, `${key(f)}: timestamp of L0 ${f.maxTxid}`).toBe(l0.get(f.maxTxid));
        expect(f.createdAt.getTime(), `${key(f)}: mtime`).toBe(header.timestamp);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(5);
  });

  it('keeps exactly what the retention rules keep, and says so for a TXID retention removed', async () => {
    const client = openReplicaClient(join(await tempDir(), 'replica'));
    const config: CompactionConfig = {
      levels: [5 * S, 20 * S],
      snapshotIntervalMs: 60 * S,
      retentionMs: 120 * S,
      l0RetentionMs: 15 * S,
      retentionEnabled: true,
      l0RetentionCheckIntervalMs: 5 * S,
    };
    const run = await simulate(client, config, 400, { seed: 11, trackSeen: true });
    run.clock.now += S;
    await run.scheduler.enforceRetention();
    const now = run.clock.now;
    const listing = await listAll(client);
    const names = (files: LtxFileInfo[] | undefined) => (files ?? []).map(key).sort();

    // The rules of section 2.5, applied here to what was written, independently of the code.
    const snaps = run.primary.snapshots;
    const newestSnap = defined(snaps.at(-1));
    const keptSnaps = snaps.filter(
      (f) => f === newestSnap || f.createdAt.getTime() >= now - config.retentionMs,
    );
    const floor = Math.max(...snaps.filter((f) => !keptSnaps.includes(f)).map((f) => f.maxTxid));
    expect(names(listing.get(9))).toEqual(names(keptSnaps));
    expect(floor).toBeGreaterThan(1);
    const l1Max = Math.max(...defined(listing.get(1)).map((f) => f.maxTxid));
    const newestL0 = defined(run.primary.l0.at(-1));
    const keptL0 = run.primary.l0.filter(
      (f) => f === newestL0 || f.maxTxid > l1Max || f.createdAt.getTime() >= now - config.l0RetentionMs,
    );
    expect(names(listing.get(0))).toEqual(names(keptL0));
    for (const level of [1, 2]) {
      const ever = [...run.seen.values()].filter((f) => f.level === level);
      const newest = ever.reduce((a, b) => (b.maxTxid > a.maxTxid ? b : a));
      expect(names(listing.get(level)), `L${level}`).toEqual(
        names(ever.filter((f) => f === newest || f.maxTxid >= floor)),
      );
      expect(findLevelGaps(defined(listing.get(level))), `L${level}`).toEqual([]);
    }
    expect(run.scheduler.stats().deleted).toBeGreaterThan(0);
    await expectAllFilesValid(client, listing);

    // Below the floor nothing restores; from the oldest kept snapshot on, every TXID a stored
    // file ends at restores byte-identical, and so does every TXID still in L0.
    for (const txid of [1, floor - 1]) {
      const err = await restoreForTest(client, listing, txid).catch((e: unknown) => e);
      expect(isLtxvfsError(err, 'TXID_NOT_AVAILABLE'), `TXID ${txid}`).toBe(true);
    }
    const ends = new Set<number>();
    for (const files of listing.values()) for (const f of files) ends.add(f.maxTxid);
    const oldestKept = Math.min(...keptSnaps.map((f) => f.maxTxid));
    let checked = 0;
    const cache: DecodeCache = new Map();
    for (const txid of [...ends].sort((a, b) => a - b)) {
      if (txid < oldestKept) continue;
      const { image } = await restoreForTest(client, listing, txid, cache);
      expect(sameBytes(image, defined(run.primary.images.get(txid))), `TXID ${txid}`).toBe(true);
      checked++;
    }
    expect(checked).toBeGreaterThan(keptL0.length);
  });

  it('deletes nothing with retention disabled', async () => {
    const client = openReplicaClient(join(await tempDir(), 'replica'));
    const run = await simulate(
      client,
      {
        levels: [10 * S, 30 * S],
        snapshotIntervalMs: 60 * S,
        retentionMs: 60 * S,
        l0RetentionMs: 0,
        retentionEnabled: false,
      },
      120,
      { seed: 3 },
    );
    await run.scheduler.enforceRetention();
    expect(run.scheduler.stats().deleted).toBe(0);
    expect(client.stats().delete).toBe(0);
    expect((await client.listFiles(0)).length).toBe(run.primary.l0.length);
    expect((await client.listFiles(9)).length).toBe(run.primary.snapshots.length);
  });

  it('reports a failed step as a warning, not as routine information', async () => {
    const client = openReplicaClient(join(await tempDir(), 'replica'));
    const info: string[] = [];
    const warn: string[] = [];
    const scheduler = new CompactionScheduler({
      client,
      config: {
        levels: [10 * S],
        snapshotIntervalMs: 60 * S,
        retentionMs: 60 * S,
        l0RetentionMs: 0,
        retentionEnabled: false,
      },
      takeSnapshot: () => Promise.reject(new Error('disk on fire')),
      now: () => T0 + 120 * S,
      logger: (line) => info.push(line),
      warn: (line) => warn.push(line),
    });
    await scheduler.tick();
    expect(scheduler.stats().errors).toBeGreaterThan(0);
    expect(warn.some((line) => line.includes('disk on fire'))).toBe(true);
    expect(info.some((line) => line.includes('disk on fire'))).toBe(false);
  });
  it('does nothing, not even a LIST, while the writer may not write (its lease expired unrenewed)', async () => {
    const client = openReplicaClient(join(await tempDir(), 'replica'));
    let allowed = false;
    let snapshots = 0;
    const scheduler = new CompactionScheduler({
      client,
      config: {
        levels: [10 * S],
        snapshotIntervalMs: 60 * S,
        retentionMs: 60 * S,
        l0RetentionMs: 0,
        retentionEnabled: true,
      },
      takeSnapshot: async () => {
        snapshots++;
        return null;
      },
      now: () => T0 + 120 * S,
      mayWrite: () => allowed,
    });
    client.resetStats();
    await scheduler.tick();
    expect(client.stats().list).toBe(0);
    expect(snapshots).toBe(0);
    allowed = true;
    await scheduler.tick();
    expect(client.stats().list).toBeGreaterThan(0);
    expect(snapshots).toBe(1);
  });
});

describeS3('compaction on S3', () => {
  it('tiles levels, restores every TXID, and accounts every request', async () => {
    const { client } = await createTestBucket('compaction');
    const config: CompactionConfig = {
      levels: [10 * S, 30 * S],
      snapshotIntervalMs: 60 * S,
      retentionMs: 24 * 3600 * S,
      l0RetentionMs: 24 * 3600 * S,
      retentionEnabled: true,
      l0RetentionCheckIntervalMs: 5 * S,
    };
    // The store stamps LastModified with real time, so the simulated clock starts now.
    const start = Math.ceil(Date.now() / 60_000) * 60_000;
    client.resetStats();
    const run = await simulate(client, config, 150, { seed: 5, start });
    const stats = client.stats();
    const listing = await listAll(client);
    for (const level of [1, 2]) expect(findLevelGaps(defined(listing.get(level)))).toEqual([]);
    const written = [...listing.values()].reduce((n, files) => n + files.length, 0);
    // Every file in the bucket was one create-only PUT, and nothing else was put.
    expect(stats.put).toBe(written);
    expect(stats.delete).toBe(0);
    expect(run.scheduler.stats().compactions).toBe(
      defined(listing.get(1)).length + defined(listing.get(2)).length,
    );
    const cache: DecodeCache = new Map();
    for (let txid = 1; txid <= run.primary.txid; txid++) {
      const { image } = await restoreForTest(client, listing, txid, cache);
      expect(sameBytes(image, defined(run.primary.images.get(txid))), `TXID ${txid}`).toBe(true);
    }
    await client.close();
  });
});
