import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Replica, type ReplicaView } from '../src/replica/replica.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { defined } from './support/defined.js';
import { TestPrimary } from './support/replica-fixture.js';
import { createTestBucket, describeS3 } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

async function readImage(view: ReplicaView): Promise<Buffer> {
  const pages: Uint8Array[] = [];
  for (let p = 1; p <= view.pageCount; p++) pages.push(await view.readPage(p));
  return Buffer.concat(pages);
}

describeS3('Replica on S3 (Litestream S3 layout)', () => {
  let tmp: TempDir;
  let client: ReplicaClient;
  let primary: TestPrimary;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-replica-s3-');
    ({ client } = await createTestBucket('replica'));
    primary = new TestPrimary(client, tmp.dir);
    primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
    const insert = primary.db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
    primary.db.transaction(() => {
      for (let id = 1; id <= 6000; id++) insert.run(id, randomBytes(100).toString('base64'));
    })();
    await primary.sync();
    primary.db.exec("UPDATE t SET v = 'two' WHERE id % 50 = 0");
    await primary.sync();
    primary.db.exec('DELETE FROM t WHERE id > 5000');
    await primary.sync();
  }, 60_000);

  afterAll(async () => {
    primary?.close();
    await client?.close();
    await tmp?.cleanup();
  });

  it('reads the latest and historical images; a cold random page is one GET (the first of an object also looks for its page digests)', async () => {
    client.resetStats();
    const replica = await Replica.open(client, { pollIntervalMs: 0 });
    // No manifest here (Litestream's layout): the manifest and hot-pages GETs find nothing (one
    // round), then one LIST and the three index tails (+1 header read at most) with the front of
    // the snapshot and a look for its page digests (none: Litestream writes none).
    expect(client.stats().get).toBeLessThanOrEqual(2 + 3 + 1 + 2);
    expect(client.stats().list).toBe(1);
    const latest = replica.acquireLatest();
    expect(latest.txid).toBe(3);
    client.resetStats();
    await latest.readPage(Math.floor(latest.pageCount / 2));
    // The page, and in the same round the look for its object's page digests (a 404 here).
    expect(client.stats().get).toBe(2);
    client.resetStats();
    await latest.readPage(Math.floor(latest.pageCount / 2) + 1);
    expect(client.stats().get).toBe(1);
    expect(Buffer.compare(await readImage(latest), defined(primary.images.get(3)))).toBe(0);
    latest.release();
    for (const txid of [1, 2]) {
      const view = await replica.acquireAt({ txid });
      expect(Buffer.compare(await readImage(view), defined(primary.images.get(txid)))).toBe(0);
      view.release();
    }
    await replica.close();
  });

  it('follows a new file and hydrates; then reads need zero requests', async () => {
    const hydratePath = join(tmp.dir, 'hydrated.db');
    const replica = await Replica.open(client, { pollIntervalMs: 0, hydratePath });
    primary.db.exec("INSERT INTO t (v) VALUES ('s3 tip')");
    await primary.sync();
    expect(await replica.poll()).toBe(4);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const h = replica.hydration();
      if (h.state === 'error') throw new Error(h.error);
      if (h.state === 'done' && h.txid === 4) break;
      if (Date.now() > deadline) throw new Error(`hydration stuck: ${JSON.stringify(h)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(Buffer.compare(readFileSync(hydratePath), defined(primary.images.get(4)))).toBe(0);
    client.resetStats();
    const view = replica.acquireLatest();
    expect(Buffer.compare(await readImage(view), defined(primary.images.get(4)))).toBe(0);
    expect(client.stats().get).toBe(0);
    view.release();
    await replica.close();
  });
});
