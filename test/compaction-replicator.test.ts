import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAllLevels } from '../src/replica/plan.js';
import { restore } from '../src/replica/restore.js';
import { verifyReplica } from '../src/replica/verify.js';
import { openReplicaClient } from '../src/storage/index.js';
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
