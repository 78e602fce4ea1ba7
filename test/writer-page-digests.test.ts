import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decodeLtxFile, decodePageDigests, pageDigest, pageDigestsObjectName } from '../src/ltx/index.js';
import { Replica } from '../src/replica/replica.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileRef, ReplicaClient } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { formatTxid } from '../src/util/txid.js';
import { withPageDigests } from '../src/writer/page-digests-client.js';
import { defined, flipByte } from './support/defined.js';
import { ltxFileBytes } from './support/ltx-spec.js';
import { TestPrimary } from './support/replica-fixture.js';
import { adminS3Client, createTestBucket, describeS3 } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

let tmp: TempDir;
let raw: ReplicaClient;
let calls: string[];

/** The file client, with every write and delete noted in order (only what withPageDigests calls). */
function recording(client: ReplicaClient): ReplicaClient {
  const note = <T>(what: string, then: () => T): T => {
    calls.push(what);
    return then();
  };
  return new Proxy(client, {
    get(target, prop, receiver) {
      switch (prop) {
        case 'writeFile':
          return ((file, data, o) =>
            note(`ltx ${file.level}`, () =>
              target.writeFile(file, data, o),
            )) satisfies ReplicaClient['writeFile'];
        case 'writeFileFrom':
          return ((file, src, o) =>
            note(`ltx ${file.level}`, () =>
              target.writeFileFrom(file, src, o),
            )) satisfies ReplicaClient['writeFileFrom'];
        case 'deleteFiles':
          return ((files) =>
            note(`delete ${files.length} ltx`, () =>
              target.deleteFiles(files),
            )) satisfies ReplicaClient['deleteFiles'];
        case 'writeObject':
          return ((name, data, c) =>
            note(`object ${name}`, () =>
              target.writeObject(name, data, c),
            )) satisfies ReplicaClient['writeObject'];
        case 'deleteObject':
          return ((name, c) =>
            note(`delete ${name}`, () =>
              target.deleteObject(name, c),
            )) satisfies ReplicaClient['deleteObject'];
        default: {
          const value: unknown = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        }
      }
    },
  });
}

/** An LTX file of `pages` 4 KiB pages of incompressible bytes (so its size is about pages * 4 KiB). */
function bigLtx(ref: LtxFileRef, pages: number): Uint8Array {
  let seed = ref.maxTxid * 7919;
  const noise = () => {
    const page = new Uint8Array(4096);
    for (let i = 0; i < page.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      page[i] = seed >>> 24;
    }
    return page;
  };
  return ltxFileBytes({
    pageSize: 4096,
    minTxid: ref.minTxid,
    maxTxid: ref.maxTxid,
    pages: Array.from({ length: pages }, (_, i) => ({ pgno: i + 1, data: noise() })),
  });
}

beforeEach(async () => {
  tmp = await makeTempDir('ltxvfs-writer-digests-');
  raw = openReplicaClient(join(tmp.dir, 'replica'));
  calls = [];
});

afterEach(async () => {
  await raw.close();
  await tmp.cleanup();
});

describe('the writer keeps page digests beside its large objects', () => {
  it('writes the digests before a large object (in memory and streamed from a file), deletes them after it; small objects get none', async () => {
    const client = withPageDigests(recording(raw));
    const l1: LtxFileRef = { level: 1, minTxid: 1, maxTxid: 20 };
    const l9: LtxFileRef = { level: 9, minTxid: 1, maxTxid: 30 };
    const small: LtxFileRef = { level: 0, minTxid: 31, maxTxid: 31 };
    const l1Bytes = bigLtx(l1, 40);
    await client.writeFile(l1, l1Bytes, { timestamp: new Date(1) });
    const l9Bytes = bigLtx(l9, 50);
    const path = join(tmp.dir, 'snapshot.ltx');
    writeFileSync(path, l9Bytes);
    await client.writeFileFrom(l9, { path, size: l9Bytes.length }, { timestamp: new Date(2) });
    await client.writeFile(small, bigLtx(small, 2), { timestamp: new Date(3) });
    expect(calls).toEqual([
      `object ${pageDigestsObjectName(l1)}`,
      'ltx 1',
      `object ${pageDigestsObjectName(l9)}`,
      'ltx 9',
      'ltx 0',
    ]);
    for (const [ref, bytes] of [
      [l1, l1Bytes],
      [l9, l9Bytes],
    ] as const) {
      const object = await raw.readObject(pageDigestsObjectName(ref));
      if (object === null) throw new Error(`no digests for L${ref.level}`);
      const d = decodePageDigests(object.data);
      const decoded = decodeLtxFile(bytes);
      expect([d.level, d.minTxid, d.maxTxid, d.objectSize]).toEqual([
        ref.level,
        ref.minTxid,
        ref.maxTxid,
        bytes.length,
      ]);
      expect(d.fileChecksum).toBe(decoded.trailer.fileChecksum);
      expect([...d.digests]).toEqual(decoded.pages.map((p) => pageDigest(p.data)));
    }
    expect(await raw.readObject(pageDigestsObjectName(small))).toBeNull();

    calls = [];
    const listed = await raw.listFiles(1);
    await client.deleteFiles(listed);
    expect(calls).toEqual(['delete 1 ltx', `delete ${pageDigestsObjectName(l1)}`]);
    expect(await raw.readObject(pageDigestsObjectName(l1))).toBeNull();
    // Litestream's listing is unchanged: the digests are no level files.
    expect((await raw.listAll()).map((f) => [f.level, f.minTxid, f.maxTxid])).toEqual([
      [0, 31, 31],
      [9, 1, 30],
    ]);
  });

  it('refuses to upload a large object that does not decode (nothing is written)', async () => {
    const client = withPageDigests(recording(raw));
    const ref: LtxFileRef = { level: 2, minTxid: 1, maxTxid: 5 };
    const bytes = bigLtx(ref, 30);
    bytes[5000] = (bytes[5000] ?? 0) ^ 1;
    await expect(client.writeFile(ref, bytes, { timestamp: new Date(1) })).rejects.toMatchObject({
      code: expect.stringMatching(/^LTX_/),
    });
    expect(calls).toEqual([]);
  });

  it('replaces digests an earlier attempt left for other bytes under the same name', async () => {
    const ref: LtxFileRef = { level: 3, minTxid: 1, maxTxid: 9 };
    const first = withPageDigests(raw);
    const other = bigLtx({ ...ref, maxTxid: 9 }, 25);
    await first.writeFile(ref, other, { timestamp: new Date(1) });
    await raw.deleteFiles([ref]); // the object went, its digests stayed (a crash in between)
    const bytes = bigLtx(ref, 33);
    await withPageDigests(raw).writeFile(ref, bytes, { timestamp: new Date(2) });
    const object = await raw.readObject(pageDigestsObjectName(ref));
    if (object === null) throw new Error('no digests');
    expect(decodePageDigests(object.data).digests.length).toBe(33);
    expect(decodePageDigests(object.data).objectSize).toBe(bytes.length);
  });

  it('a second write of other bytes under a name that exists (a snapshot of an unchanged database taken again) fails and leaves the digests of the stored object', async () => {
    const ref: LtxFileRef = { level: 9, minTxid: 1, maxTxid: 12 };
    const client = withPageDigests(raw);
    const stored = bigLtx(ref, 30);
    await client.writeFile(ref, stored, { timestamp: new Date(1) });
    const again = bigLtx({ ...ref, maxTxid: 12 }, 31);
    await expect(client.writeFile(ref, again, { timestamp: new Date(2) })).rejects.toMatchObject({
      code: 'STORAGE_EXISTS',
    });
    const object = await raw.readObject(pageDigestsObjectName(ref));
    if (object === null) throw new Error('no digests');
    const d = decodePageDigests(object.data);
    expect([d.objectSize, d.digests.length]).toEqual([stored.length, 30]);
    expect(d.fileChecksum).toBe(decodeLtxFile(stored).trailer.fileChecksum);
  });
});

describeS3('page digests on S3 (RGW)', () => {
  it('live at PATH/ltxvfs/digests/ beside Litestream keys; the listing is unchanged; a flipped page of the object is caught on a random read', async () => {
    const bucket = await createTestBucket('digests');
    const dir = await makeTempDir('ltxvfs-digests-s3-');
    const writer = withPageDigests(bucket.client);
    const primary = new TestPrimary(writer, dir.dir);
    try {
      primary.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
      const insert = primary.db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
      primary.db.transaction(() => {
        for (let id = 1; id <= 300; id++) insert.run(id, randomBytes(400));
      })();
      await primary.sync();
      const snapshot = await primary.snapshot();
      expect(snapshot.size).toBeGreaterThan(64 * 1024);
      const s3 = adminS3Client();
      const keys = (
        await s3.send(new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: `${bucket.path}/` }))
      ).Contents?.map((o) => o.Key);
      const name = `${formatTxid(1)}-${formatTxid(snapshot.maxTxid)}`;
      expect(keys?.sort()).toEqual(
        [
          `${bucket.path}/0000/${name}.ltx`,
          `${bucket.path}/0009/${name}.ltx`,
          `${bucket.path}/ltxvfs/digests/L0/${name}`,
          `${bucket.path}/ltxvfs/digests/L9/${name}`,
        ].sort(),
      );
      expect((await bucket.client.listAll()).map((f) => f.level)).toEqual([0, 9]);

      // Flip one bit in the middle of the snapshot's page data, then read every page at random.
      const key = `${bucket.path}/0009/${name}.ltx`;
      const got = await s3.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key }));
      const bytes = defined(await got.Body?.transformToByteArray(), 'snapshot bytes');
      flipByte(bytes, Math.floor(bytes.length / 2), 0x10);
      await s3.send(
        new PutObjectCommand({
          Bucket: bucket.bucket,
          Key: key,
          Body: bytes,
        }),
      );
      // The L0 holds every page too (the first sync): the plan reads the snapshot only when it is alone.
      await bucket.client.deleteFiles([{ level: 0, minTxid: 1, maxTxid: snapshot.maxTxid }]);
      const replica = await Replica.open(bucket.client, {
        pollIntervalMs: 0,
        readAhead: false,
        manifest: false,
      });
      try {
        const view = replica.acquireLatest();
        const errors: unknown[] = [];
        for (let p = view.pageCount; p >= 1; p--)
          await view.readPage(p).catch((err: unknown) => errors.push(err));
        view.release();
        expect(errors.length).toBeGreaterThan(0);
        for (const err of errors) {
          expect(isLtxvfsError(err, 'REPLICA_CORRUPT'), String(err)).toBe(true);
          expect(String(err)).toContain(name);
        }
      } finally {
        await replica.close();
      }
    } finally {
      primary.close();
      await bucket.client.close();
      await dir.cleanup();
    }
  });
});
