/**
 * The writer against the real S3 test server (Ceph RGW, where If-None-Match / If-Match are
 * enforced): the lease keeps one writer per replica, a taken-over writer stops, a create-only L0
 * collision stops the second writer, and a store that refuses connections for a while (a TCP
 * proxy that is closed and reopened) delays uploads without losing anything.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type LatencyProxy, startLatencyProxy } from '../bench/proxy.js';
import { openReplicaClient } from '../src/storage/index.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { Lease, Replicator } from '../src/writer/index.js';
import { rejection } from './support/rejection.js';
import { createTestBucket, describeS3, s3Endpoint } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import {
  type App,
  expectRestoresMatch,
  primaryImage,
  startNodeApp,
  syncAndRecord,
  verifyL0Files,
} from './support/writer-harness.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-writer-s3-');
});
afterAll(() => tmp.cleanup());

async function primary(name: string): Promise<{ dbPath: string; app: App; dir: string }> {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  const dbPath = join(dir, 'db.sqlite');
  const app = await startNodeApp(dbPath, 4096);
  await app.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  await app.exec("INSERT INTO t(v) VALUES ('first')");
  return { dbPath, app, dir };
}

describeS3('writer on the S3 test server (RGW)', () => {
  it('a second replicator refuses to start and names the holder', async () => {
    const bucket = await createTestBucket('lease-held');
    const a = await primary('held-a');
    const b = await primary('held-b');
    const first = new Replicator({
      dbPath: a.dbPath,
      replica: bucket.client,
      lease: { owner: 'writer-a:101' },
    });
    await first.start();
    try {
      await first.sync();
      const second = new Replicator({
        dbPath: b.dbPath,
        replica: bucket.url,
        lease: { owner: 'writer-b:202' },
      });
      const err = await rejection(second.start());
      expect(err.code).toBe('LEASE_HELD');
      expect(err.message).toContain('writer-a:101');
      expect(err.message).toMatch(/expires \d{4}-\d{2}-\d{2}T/);
    } finally {
      await first.stop();
      await a.app.close();
      await b.app.close();
    }
    // released on stop: the next writer starts at once
    const c = await primary('held-c');
    const next = new Replicator({ dbPath: c.dbPath, replica: bucket.url, lease: { owner: 'writer-c:303' } });
    await next.start();
    await next.stop();
    await c.app.close();
  }, 60_000);

  it('a writer whose lease is taken over stops with LEASE_LOST', async () => {
    const bucket = await createTestBucket('lease-lost');
    const a = await primary('lost-a');
    const rep = new Replicator({
      dbPath: a.dbPath,
      replica: bucket.client,
      lease: { owner: 'writer-a:1', ttlMs: 30_000, renewIntervalMs: 300 },
    });
    const fatal = new Promise<Error>((resolve) => rep.once('fatal', resolve));
    await rep.start();
    await rep.sync();
    // Another writer whose clock is past our expiry takes the lease over (If-Match on our ETag).
    const thief = await Lease.acquire({
      client: bucket.client,
      owner: 'writer-b:2',
      now: () => new Date(Date.now() + 60_000),
    });
    expect(thief.generation).toBe(2);
    const err = await fatal;
    expect(isLtxvfsError(err, 'LEASE_LOST')).toBe(true);
    expect(err.message).toContain('writer-b:2');
    await a.app.exec("INSERT INTO t(v) VALUES ('after takeover')");
    expect((await rejection(rep.sync())).code).toBe('LEASE_LOST');
    await rep.stop();
    await a.app.close();
    // nothing after TXID 1 was written by the stopped writer
    expect((await bucket.client.listFiles(0)).map((f) => f.maxTxid)).toEqual([1]);
  }, 60_000);

  it('a create-only L0 write that finds the TXID taken stops the writer (WRITER_FORK)', async () => {
    const bucket = await createTestBucket('fork');
    const a = await primary('fork-a');
    const b = await primary('fork-b');
    await b.app.exec("INSERT INTO t(v) VALUES ('different history')");
    const ra = new Replicator({ dbPath: a.dbPath, replica: bucket.url, lease: false });
    const rb = new Replicator({ dbPath: b.dbPath, replica: bucket.url, lease: false });
    await ra.start();
    await rb.start();
    try {
      await ra.sync();
      const err = await rejection(rb.sync());
      expect(err.code).toBe('WRITER_FORK');
      expect(err.message).toContain('0000000000000001');
      expect(rb.failure?.code).toBe('WRITER_FORK');
    } finally {
      await ra.stop();
      await rb.stop();
      await a.app.close();
      await b.app.close();
    }
  }, 60_000);

  it('a store that refuses connections for a while delays uploads; nothing is lost', async () => {
    const bucket = await createTestBucket('spotty');
    const target = new URL(s3Endpoint as string);
    let proxy: LatencyProxy = await startLatencyProxy({
      target: { host: target.hostname, port: Number(target.port) },
      rttMs: 0,
    });
    const port = proxy.port;
    const url = bucket.url.replace(
      encodeURIComponent(s3Endpoint as string),
      encodeURIComponent(proxy.endpoint),
    );
    const client = openReplicaClient(url, {
      retry: { maxAttempts: 2, baseDelayMs: 20, maxDelayMs: 50, totalBudgetMs: 300 },
      connectionTimeoutMs: 500,
    });
    const p = await primary('spotty');
    const images = new Map<number, Buffer>();
    const scratch = join(p.dir, 'scratch');
    const rep = new Replicator({
      dbPath: p.dbPath,
      replica: client,
      retryMinDelayMs: 50,
      retryMaxDelayMs: 200,
    });
    await rep.start();
    try {
      await syncAndRecord(rep, p.dbPath, scratch, images);
      await proxy.close();
      const staged: number[] = [];
      for (let i = 0; i < 3; i++) {
        await p.app.exec(`INSERT INTO t(v) VALUES (hex(randomblob(${500 * (i + 1)})))`);
        const txid = await rep.syncLocalNow(); // never waits for the store
        staged.push(txid);
        images.set(txid, primaryImage(p.dbPath, scratch));
      }
      const durable = rep.sync();
      let settled = false;
      void durable.then(() => {
        settled = true;
      });
      await new Promise((r) => setTimeout(r, 1500));
      expect(settled).toBe(false);
      const s = rep.stats();
      expect(s.txid).toBe(staged.at(-1));
      expect(s.pendingUploads).toBe(3);
      expect(s.uploadRetries).toBeGreaterThan(0);
      proxy = await startLatencyProxy({
        target: { host: target.hostname, port: Number(target.port) },
        rttMs: 0,
        listenPort: port,
      });
      await durable;
      expect(rep.stats().pendingUploads).toBe(0);
    } finally {
      await rep.stop();
      await p.app.close();
      await proxy.close();
    }
    await verifyL0Files(bucket.client);
    await expectRestoresMatch(bucket.client, images, join(p.dir, 'restores'));
  }, 60_000);
});
