import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLtxFile, decodePageDigests, pageDigest, pageDigestsObjectName } from '../src/ltx/index.js';
import { listAllLevels } from '../src/replica/plan.js';
import { restore } from '../src/replica/restore.js';
import { verifyReplica } from '../src/replica/verify.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import type { CompactionConfig } from '../src/writer/compaction/compaction-config.js';
import { Replicator } from '../src/writer/replicator.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import { expectRestoresMatch, syncAndRecord } from './support/writer-harness.js';

// The scheduler inside the real replicator (WAL-mode primary, real clock, accelerated intervals),
// checked with the project's restore and verify: every recorded TXID restores byte-identical
// while retention keeps them, and a TXID retention removed is reported as not available.

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-compaction-replicator-');
});
afterAll(() => tmp.cleanup());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Every listed object above 64 KiB has page digests that describe it (identity, and one digest
 * per page equal to the xxh32 of the page restore's decoder gives), and no digests object is left
 * for an object that is gone. Returns how many objects carry digests.
 */
async function expectDigestsMatch(client: ReplicaClient, replicaDir: string): Promise<number> {
  const listed = [...(await listAllLevels(client)).values()].flat();
  let carried = 0;
  for (const f of listed) {
    const object = await client.readObject(pageDigestsObjectName(f));
    if (f.size <= 64 * 1024) {
      expect(object, `L${f.level} ${f.minTxid}-${f.maxTxid} is small: no digests`).toBeNull();
      continue;
    }
    if (object === null)
      throw new Error(`L${f.level} ${f.minTxid}-${f.maxTxid} (${f.size} bytes) has no page digests`);
    const d = decodePageDigests(object.data);
    const decoded = decodeLtxFile(await client.readFile(f));
    expect([d.level, d.minTxid, d.maxTxid, d.objectSize]).toEqual([f.level, f.minTxid, f.maxTxid, f.size]);
    expect(
      d.fileChecksum,
      `L${f.level} ${f.minTxid}-${f.maxTxid} ${f.size} digests for ${d.objectSize} bytes, ${d.digests.length} vs ${decoded.pages.length} pages, created ${f.createdAt.toISOString()}`,
    ).toBe(decoded.trailer.fileChecksum);
    expect([...d.digests]).toEqual(decoded.pages.map((p) => pageDigest(p.data)));
    carried++;
  }
  const names = new Set(listed.map((f) => pageDigestsObjectName(f)));
  const root = join(replicaDir, 'ltxvfs', 'digests');
  const stored = existsSync(root)
    ? (await readdir(root)).flatMap((level) =>
        readdirSync(join(root, level)).map((name) => `ltxvfs/digests/${level}/${name}`),
      )
    : [];
  expect(stored.filter((name) => !names.has(name))).toEqual([]);
  return carried;
}

async function writeFor(
  ms: number,
  db: Database.Database,
  replicator: Replicator,
  dbPath: string,
  images: Map<number, Buffer>,
): Promise<void> {
  const until = Date.now() + ms;
  let i = 0;
  while (Date.now() < until) {
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(200 + ((i * 37) % 3000), i & 0xff));
    if (i % 7 === 3) db.exec('DELETE FROM t WHERE rowid % 5 = 0');
    i++;
    await syncAndRecord(replicator, dbPath, join(tmp.dir, 'scratch'), images);
    await sleep(40);
  }
}

describe('compaction inside the replicator', () => {
  it('levels fill, verify is clean, every TXID restores; retention then removes old TXIDs', async () => {
    const dbPath = join(tmp.dir, 'app.db');
    const replicaDir = join(tmp.dir, 'replica');
    const db = new Database(dbPath);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    // Incompressible rows, so snapshots and compaction outputs pass 64 KiB (they then carry page digests).
    const seedRow = db.prepare('INSERT INTO t (v) VALUES (?)');
    for (let i = 0; i < 60; i++) seedRow.run(randomBytes(2000));
    const keepAll: CompactionConfig = {
      levels: [300, 600, 1200],
      snapshotIntervalMs: 2000,
      retentionMs: 3_600_000,
      l0RetentionMs: 3_600_000,
      retentionEnabled: true,
      l0RetentionCheckIntervalMs: 200,
    };
    const images = new Map<number, Buffer>();
    let replicator = new Replicator({
      dbPath,
      replica: replicaDir,
      syncIntervalMs: 50,
      lease: false,
      compaction: keepAll,
      compactionPollMs: 50,
    });
    await replicator.start();
    await writeFor(3000, db, replicator, dbPath, images);
    await sleep(1300); // one more boundary of every level
    const stats = replicator.stats();
    await replicator.stop();
    expect(stats.compaction?.errors).toBe(0);
    expect(stats.compaction?.compactions).toBeGreaterThan(5);

    const client = openReplicaClient(replicaDir);
    const listing = await listAllLevels(client);
    expect([...listing.keys()]).toEqual([0, 1, 2, 3, 9]);
    expect((await verifyReplica(client)).problems).toEqual([]);
    await expectRestoresMatch(client, images, join(tmp.dir, 'restores'));
    expect(await expectDigestsMatch(client, replicaDir)).toBeGreaterThan(0);

    // Now with a short retention: old snapshots, level files below the floor, compacted L0 go.
    const short: CompactionConfig = {
      ...keepAll,
      snapshotIntervalMs: 500,
      retentionMs: 800,
      l0RetentionMs: 200,
    };
    replicator = new Replicator({
      dbPath,
      replica: replicaDir,
      syncIntervalMs: 50,
      lease: false,
      compaction: short,
      compactionPollMs: 50,
    });
    await replicator.start();
    const later = new Map<number, Buffer>();
    await writeFor(2500, db, replicator, dbPath, later);
    await sleep(1300);
    await replicator.stop();
    db.close();
    expect((await verifyReplica(client)).problems).toEqual([]);
    // Retention deleted objects with digests; their digests went after them.
    expect(await expectDigestsMatch(client, replicaDir)).toBeGreaterThan(0);
    const after = await listAllLevels(client);
    expect(defined(after.get(0)).length).toBeLessThan(defined(listing.get(0)).length);
    expect(
      defined(after.get(9)).every(
        (f) => f.maxTxid > Math.max(...defined(listing.get(9)).map((s) => s.maxTxid)),
      ),
    ).toBe(true);
    const latest = Math.max(...later.keys());
    await expectRestoresMatch(
      client,
      new Map([[latest, defined(later.get(latest))]]),
      join(tmp.dir, 'restores'),
    );
    const err = await restore({ client, outPath: join(tmp.dir, 'old.db'), txid: 2 }).catch((e: unknown) => e);
    expect(isLtxvfsError(err, 'TXID_NOT_AVAILABLE'), String(err)).toBe(true);
    // Snapshots and compaction outputs were spooled through temp files beside the local state;
    // none is left behind.
    const localState = join(dirname(dbPath), `.${basename(dbPath)}-ltxvfs`);
    expect((await readdir(localState)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
  }, 120_000);
});
