/**
 * The Replicator's events and stats() as the README promises them (ltxvfs/writer: events
 * `uploaded`, `retry`, `checkpoint`, `error`; `stats()` lag), driven by events and counts, not by
 * the clock. The application is better-sqlite3 with its own autocheckpoint off, so a checkpoint
 * can only be the replicator's: the database file growing to `page_count * page_size` is
 * SQLite's own evidence that it ran. Faults are real: a store client that refuses L0 writes
 * with STORAGE_UNREACHABLE or holds them, and a full tmpfs under the local staging directory.
 */

import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatLtxFileName } from '../src/ltx/names.js';
import { restore } from '../src/replica/restore.js';
import { FileReplicaClient } from '../src/storage/index.js';
import type { LtxFileInfo, LtxFileRef, WriteOptions } from '../src/storage/types.js';
import { LtxvfsError } from '../src/util/errors.js';
import { Replicator } from '../src/writer/index.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/** A file replica whose L0 writes can be refused (`failures`) or held until `release()`. */
class FaultyClient extends FileReplicaClient {
  failures = 0;
  private held: Promise<void> | undefined;
  private releaseHeld: (() => void) | undefined;

  hold(): void {
    this.held = new Promise((resolve) => {
      this.releaseHeld = resolve;
    });
  }

  release(): void {
    this.releaseHeld?.();
    this.held = undefined;
  }

  override async writeFile(file: LtxFileRef, data: Uint8Array, options: WriteOptions): Promise<LtxFileInfo> {
    if (file.level === 0) {
      if (this.held) await this.held;
      if (this.failures > 0) {
        this.failures--;
        throw new LtxvfsError('STORAGE_UNREACHABLE', `injected refusal of L0 ${file.maxTxid}`);
      }
    }
    return super.writeFile(file, data, options);
  }
}

interface Uploaded {
  txid: number;
  bytes: number;
  ms: number;
  lagMs?: number;
}
interface Retried {
  txid: number;
  attempt: number;
  delayMs: number;
  error: unknown;
}
interface Checkpointed {
  mode: string;
}

const INSERT_PAGES = (rows: number) =>
  `INSERT INTO t(pad) WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ${rows}) SELECT randomblob(3900) FROM c`;

function openApp(dbPath: string): Database.Database {
  const db = new Database(dbPath);
  db.pragma('journal_mode = wal');
  // Only the replicator may checkpoint: its checkpoint is then visible in the database file.
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, pad BLOB NOT NULL)');
  return db;
}

describe('Replicator events and stats(), at the default checkpoint policy', () => {
  let tmp: TempDir;
  let app: Database.Database;
  let client: FaultyClient;
  let replicator: Replicator;
  let dbPath: string;
  const uploaded: Uploaded[] = [];
  const retries: Retried[] = [];
  const checkpoints: Checkpointed[] = [];

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-writer-events-');
    dbPath = join(tmp.dir, 'app.db');
    app = openApp(dbPath);
    client = new FaultyClient(join(tmp.dir, 'replica'));
    // The checkpoint policy is looked at on each timer tick: ticks come often here. Its
    // frame threshold stays at the default (1000); the time-based one (1 min by default) is
    // moved out of reach so that the clock cannot decide anything in this suite.
    replicator = new Replicator({
      dbPath,
      replica: client,
      syncIntervalMs: 50,
      checkpointIntervalMs: 3_600_000,
      retryMinDelayMs: 10,
    });
    replicator.on('uploaded', (e: Uploaded) => uploaded.push(e));
    replicator.on('retry', (e: Retried) => retries.push(e));
    replicator.on('checkpoint', (e: Checkpointed) => checkpoints.push(e));
    await replicator.start();
    await replicator.sync();
  });

  afterAll(async () => {
    await replicator?.stop();
    app?.close();
    await tmp?.cleanup();
  });

  const objectSize = (txid: number) =>
    statSync(join(tmp.dir, 'replica', 'ltx', '0', formatLtxFileName(txid, txid))).size;

  it("'uploaded' once per TXID with the object's size; stats() counts a held upload as lag and is 0 once caught up", async () => {
    const before = replicator.stats();
    expect(before.pendingUploads).toBe(0);
    expect(before.lagMs).toBe(0);
    uploaded.length = 0;
    client.hold();
    app.exec(INSERT_PAGES(3));
    const synced = once(replicator, 'synced');
    const durable = replicator.sync();
    await synced;
    const staged = replicator.stats();
    expect(staged.txid).toBe(before.txid + 1);
    expect(staged.uploadedTxid).toBe(before.txid);
    expect(staged.pendingUploads).toBe(1);
    // A lower bound only: a busy machine makes the lag larger, never smaller.
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(replicator.stats().lagMs).toBeGreaterThanOrEqual(40);
    expect(uploaded).toEqual([]);
    client.release();
    const { txid } = await durable;
    expect(txid).toBe(staged.txid);
    expect(uploaded.map((e) => e.txid)).toEqual([txid]);
    expect(uploaded[0]?.bytes).toBe(objectSize(txid));
    expect(uploaded[0]?.lagMs).toBeGreaterThanOrEqual(40);
    const after = replicator.stats();
    expect(after).toMatchObject({ txid, uploadedTxid: txid, pendingUploads: 0, lagMs: 0 });
    expect(after.uploads).toBe(before.uploads + 1);
  });

  it("'retry' for each refused attempt (attempt 1, 2; backoff doubling from retryMinDelayMs), then 'uploaded'", async () => {
    const before = replicator.stats();
    uploaded.length = 0;
    retries.length = 0;
    client.failures = 2;
    app.exec(INSERT_PAGES(2));
    const { txid } = await replicator.sync();
    expect(retries.map(({ txid, attempt, delayMs }) => ({ txid, attempt, delayMs }))).toEqual([
      { txid, attempt: 1, delayMs: 10 },
      { txid, attempt: 2, delayMs: 20 },
    ]);
    for (const r of retries) expect(String(r.error)).toMatch(/injected refusal/);
    expect(uploaded.map((e) => e.txid)).toEqual([txid]);
    expect(replicator.stats().uploadRetries).toBe(before.uploadRetries + 2);
  });

  it("no checkpoint below 1000 copied frames (the default); a PASSIVE 'checkpoint' at the next tick once 1000 are copied, backfilling the database file", async () => {
    checkpoints.length = 0;
    const fileBefore = statSync(dbPath).size;
    for (let i = 0; i < 10; i++) {
      app.exec(INSERT_PAGES(5));
      await replicator.sync();
    }
    expect(checkpoints).toEqual([]);
    expect(replicator.stats().checkpoints).toBe(0);
    expect(statSync(dbPath).size).toBe(fileBefore);

    const checkpointed = once(replicator, 'checkpoint');
    app.exec(INSERT_PAGES(1100));
    await replicator.sync();
    const [event] = (await checkpointed) as [Checkpointed];
    expect(event.mode).toBe('PASSIVE');
    const pages = app.pragma('page_count', { simple: true }) as number;
    const pageSize = app.pragma('page_size', { simple: true }) as number;
    expect(pages).toBeGreaterThan(1100);
    // SQLite's evidence: every page is now in the database file, not only in the WAL.
    expect(statSync(dbPath).size).toBe(pages * pageSize);
    expect(replicator.stats().checkpoints).toBe(1);
  });
});

describe("Replicator 'error': a sync that fails (full local disk) is reported and replication goes on", () => {
  let tmp: TempDir;
  let staging: string;
  let mounted = false;
  let mountSkip: string | undefined;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-writer-error-');
    staging = join(tmp.dir, '.app.db-ltxvfs', 'ltx', '0');
    mkdirSync(staging, { recursive: true });
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', staging], { encoding: 'utf8' });
    if (r.status === 0) mounted = true;
    else mountSkip = `cannot mount a tmpfs here (needs root): ${r.stderr.trim()}`;
  });

  afterAll(async () => {
    if (mounted) {
      const r = spawnSync('umount', [staging], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`umount ${staging}: ${r.stderr}`);
    }
    await tmp?.cleanup();
  });

  it("emits 'error' naming ENOSPC, stages nothing, and replicates every row once there is room", async (ctx) => {
    if (!mounted) {
      console.warn(`[skipped] ${mountSkip}`);
      ctx.skip(mountSkip);
    }
    const dbPath = join(tmp.dir, 'app.db');
    const app = openApp(dbPath);
    const replicaDir = join(tmp.dir, 'replica');
    const replicator = new Replicator({ dbPath, replica: replicaDir, syncIntervalMs: 20 });
    try {
      await replicator.start();
      await replicator.sync();
      const before = replicator.stats().txid;
      const failed = once(replicator, 'error');
      // ~400 KiB of incompressible pages: the staged L0 cannot fit in 256 KiB.
      app.exec(INSERT_PAGES(100));
      const [err] = (await failed) as [Error];
      expect(String(err)).toMatch(/ENOSPC|no space/i);
      expect(replicator.stats().txid).toBe(before);
      expect(replicator.failure).toBeUndefined();

      const grown = spawnSync('mount', ['-o', 'remount,size=8m', staging], { encoding: 'utf8' });
      expect(grown.status, grown.stderr).toBe(0);
      app.exec(INSERT_PAGES(3));
      const { txid } = await replicator.sync();
      expect(txid).toBeGreaterThan(before);
      const out = join(tmp.dir, 'restored.db');
      await restore({ client: new FileReplicaClient(replicaDir), outPath: out });
      const restored = new Database(out, { readonly: true });
      try {
        expect(restored.pragma('integrity_check', { simple: true })).toBe('ok');
        const sql = 'SELECT count(*) AS n, sum(length(pad)) AS bytes, hex(max(pad)) AS top FROM t';
        expect(restored.prepare(sql).get()).toEqual(app.prepare(sql).get());
      } finally {
        restored.close();
      }
    } finally {
      await replicator.stop();
      app.close();
    }
  });
});
