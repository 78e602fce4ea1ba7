/**
 * The follower against the real S3 server: it follows an S3 replica file by file, an idle poll
 * costs exactly one LIST (of L0, from the last applied file) and no GET, and a new file costs
 * that LIST plus the GETs of the file. Expected bytes are the images better-sqlite3 wrote.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Follower } from '../src/follow/index.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { createTestBucket, describeS3, type TestBucket } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

describeS3('follower on S3', () => {
  let tmp: TempDir;
  let bucket: TestBucket;
  let primary: TestPrimary;
  let follower: Follower;
  const path = () => join(tmp.dir, 'followed.db');

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-follow-s3-');
    bucket = await createTestBucket('follow');
    primary = new TestPrimary(bucket.client, tmp.dir);
    fillTable(primary.db, 300, 100);
    await primary.sync();
    follower = await Follower.start(bucket.client, path());
  });

  afterAll(async () => {
    await follower?.close();
    primary?.close();
    await bucket?.client.close();
    await tmp?.cleanup();
  });

  function expectImage(txid: number): void {
    const image = primary.images.get(txid);
    if (image === undefined) throw new Error(`no image at ${txid}`);
    const bytes = readFileSync(path());
    expect(bytes.length).toBe(image.length);
    expect(Buffer.compare(bytes.subarray(4096), Buffer.from(image.subarray(4096)))).toBe(0);
  }

  it('an idle poll is one LIST and nothing else', async () => {
    bucket.client.resetStats();
    await follower.poll();
    const s = bucket.client.stats();
    expect({ list: s.list, get: s.get, head: s.head }).toEqual({ list: 1, get: 0, head: 0 });
    expect(follower.txid).toBe(1);
  });

  it('a new file is applied with one LIST and its GET, and the file equals the primary', async () => {
    primary.db.exec("UPDATE t SET v = 'changed' WHERE id % 3 = 0");
    await primary.sync();
    bucket.client.resetStats();
    await follower.poll();
    const s = bucket.client.stats();
    expect(s.list).toBe(1);
    expect(s.get).toBe(1);
    expect(follower.txid).toBe(2);
    expectImage(2);
    expect(follower.lag.txids).toBe(0);
  });
});
