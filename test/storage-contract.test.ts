/**
 * One contract, two backends: the same suite body runs over a local directory (file backend) and
 * over HTTP against the real S3 test server (s3 backend). Only the fixture differs: how to make
 * a fresh replica, and how to look at raw keys and metadata behind the client's back.
 */
import { writeFile as fsWriteFile, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReplicaClient } from '../src/storage/index.js';
import type { LtxFileRef, ReplicaClient } from '../src/storage/types.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { defined } from './support/defined.js';
import { adminS3Client, createTestBucket, describeS3, testReplicaUrl } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

interface Replica {
  client: ReplicaClient;
  /** Another, independent client of the same replica (a second writer / process). */
  openAnother(): ReplicaClient;
  /** Every raw key (S3) or file path (file, relative to the root) under the replica. */
  rawNames(): Promise<string[]>;
  /** Puts raw bytes at a layout-relative name, bypassing the client (`<level dir>/<name>`). */
  plantInLevel(level: number, name: string, data: Uint8Array): Promise<void>;
  /** What the backend stores as "created at" for a file, as the backend's own raw form. */
  rawTimestamp(file: LtxFileRef): Promise<string>;
}

interface Backend {
  name: string;
  describe: typeof describe;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  fresh(): Promise<Replica>;
  /** The exact raw names Litestream would use for these files (hand-written layout rules). */
  litestreamNames: { level0: string; level1: string; level9: string };
  /** How the backend stores the LTX header timestamp 2024-05-06T07:08:09.120Z. */
  expectedRawTimestamp: string;
  /** Listing requests for a level of 1005 files (S3 pages of 1000; one readdir). */
  listRequestsFor1005: number;
}

const TIMESTAMP = new Date('2024-05-06T07:08:09.120Z');

function bytes(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed * 13 + 3) % 251;
  return out;
}

async function expectCode(promise: Promise<unknown>, code: string, mentions?: string): Promise<Error> {
  const err = await promise.then(
    () => {
      throw new Error(`expected ${code}, but the call succeeded`);
    },
    (e: unknown) => e,
  );
  expect(isLtxvfsError(err) ? err.code : err).toBe(code);
  if (mentions !== undefined) expect((err as Error).message).toContain(mentions);
  return err as Error;
}

// --- the backends ---------------------------------------------------------------------------

let tmp: TempDir;
let fileCounter = 0;

const fileBackend: Backend = {
  name: 'file',
  describe,
  async setup() {
    tmp = await makeTempDir('ltxvfs-contract-');
  },
  async teardown() {
    await tmp.cleanup();
  },
  async fresh() {
    const root = join(tmp.dir, `replica-${fileCounter++}`);
    const url = fileCounter % 2 === 0 ? root : `file://${root}`;
    return {
      client: openReplicaClient(url),
      openAnother: () => openReplicaClient(url),
      async rawNames() {
        const out: string[] = [];
        const walk = async (dir: string): Promise<void> => {
          let entries: import('node:fs').Dirent[];
          try {
            entries = await readdir(dir, { withFileTypes: true });
          } catch {
            return;
          }
          for (const e of entries) {
            const p = join(dir, e.name);
            if (e.isDirectory()) await walk(p);
            else out.push(relative(root, p));
          }
        };
        await walk(root);
        return out.sort();
      },
      async plantInLevel(level, name, data) {
        const p = join(root, 'ltx', String(level), name);
        await mkdir(dirname(p), { recursive: true });
        await fsWriteFile(p, data);
      },
      async rawTimestamp(file) {
        const name = `${file.minTxid.toString(16).padStart(16, '0')}-${file.maxTxid.toString(16).padStart(16, '0')}.ltx`;
        return (await stat(join(root, 'ltx', String(file.level), name))).mtime.toISOString();
      },
    };
  },
  litestreamNames: {
    level0: 'ltx/0/0000000000000001-0000000000000001.ltx',
    level1: 'ltx/1/0000000000000001-0000000000000002.ltx',
    level9: 'ltx/9/0000000000000001-00000000000000a3.ltx',
  },
  expectedRawTimestamp: '2024-05-06T07:08:09.120Z',
  listRequestsFor1005: 1,
};

let bucket: string;
let s3Counter = 0;

const s3Backend: Backend = {
  name: 's3',
  describe: describeS3,
  async setup() {
    bucket = (await createTestBucket('contract')).bucket;
  },
  async teardown() {},
  async fresh() {
    const path = `db${s3Counter++}/replica`;
    const url = testReplicaUrl(bucket, path);
    const admin = adminS3Client();
    return {
      client: openReplicaClient(url),
      openAnother: () => openReplicaClient(url),
      async rawNames() {
        const keys: string[] = [];
        let token: string | undefined;
        do {
          const page = await admin.send(
            new ListObjectsV2Command({ Bucket: bucket, Prefix: `${path}/`, ContinuationToken: token }),
          );
          for (const o of page.Contents ?? []) keys.push((o.Key ?? '').slice(path.length + 1));
          token = page.NextContinuationToken;
        } while (token);
        return keys.sort();
      },
      async plantInLevel(level, name, data) {
        const key = `${path}/${level.toString(16).padStart(4, '0')}/${name}`;
        await admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: data }));
      },
      async rawTimestamp(file) {
        const name = `${file.minTxid.toString(16).padStart(16, '0')}-${file.maxTxid.toString(16).padStart(16, '0')}.ltx`;
        const key = `${path}/${file.level.toString(16).padStart(4, '0')}/${name}`;
        const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
        return head.Metadata?.['litestream-timestamp'] ?? '(none)';
      },
    };
  },
  // No `ltx/` segment on S3, and the level is 4 hex digits.
  litestreamNames: {
    level0: '0000/0000000000000001-0000000000000001.ltx',
    level1: '0001/0000000000000001-0000000000000002.ltx',
    level9: '0009/0000000000000001-00000000000000a3.ltx',
  },
  // Go's RFC3339Nano: trailing zeros of the fraction dropped.
  expectedRawTimestamp: '2024-05-06T07:08:09.12Z',
  listRequestsFor1005: 2,
};

// --- the contract ---------------------------------------------------------------------------

for (const backend of [fileBackend, s3Backend]) {
  backend.describe(`ReplicaClient contract: ${backend.name}`, () => {
    beforeAll(() => backend.setup());
    afterAll(() => backend.teardown());

    it('an empty replica has no levels and empty listings', async () => {
      const { client } = await backend.fresh();
      expect(await client.levels()).toEqual([]);
      expect(await client.listFiles(0)).toEqual([]);
      expect(await client.listFiles(9)).toEqual([]);
      expect(await client.readObject('lock.json')).toBeNull();
    });

    it('lays out keys exactly as Litestream does, and lists levels', async () => {
      const r = await backend.fresh();
      await r.client.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, bytes(10), { timestamp: TIMESTAMP });
      await r.client.writeFile({ level: 1, minTxid: 1, maxTxid: 2 }, bytes(11), { timestamp: TIMESTAMP });
      await r.client.writeFile({ level: 9, minTxid: 1, maxTxid: 0xa3 }, bytes(12), { timestamp: TIMESTAMP });
      const { level0, level1, level9 } = backend.litestreamNames;
      expect(await r.rawNames()).toEqual([level0, level1, level9].sort());
      expect(await r.client.levels()).toEqual([0, 1, 9]);
      const [snapshot] = await r.client.listFiles(9);
      expect(snapshot).toMatchObject({ level: 9, minTxid: 1, maxTxid: 0xa3, size: 12 });
    });

    it('listAll lists every level in one LIST, ignoring other objects (manifest, lock, junk)', async () => {
      const r = await backend.fresh();
      await r.client.writeFile({ level: 9, minTxid: 1, maxTxid: 5 }, bytes(12), { timestamp: TIMESTAMP });
      await r.client.writeFile({ level: 0, minTxid: 7, maxTxid: 7 }, bytes(3), { timestamp: TIMESTAMP });
      await r.client.writeFile({ level: 0, minTxid: 6, maxTxid: 6 }, bytes(2), { timestamp: TIMESTAMP });
      await r.client.writeFile({ level: 2, minTxid: 1, maxTxid: 4 }, bytes(9), { timestamp: TIMESTAMP });
      await r.client.writeObject('ltxvfs/manifest.json', bytes(5), { ifNoneMatch: '*' });
      await r.client.writeObject('lock.json', bytes(5), { ifNoneMatch: '*' });
      await r.plantInLevel(0, 'notes.txt', bytes(3));
      r.client.resetStats();
      const all = await r.client.listAll();
      expect(r.client.stats().list).toBe(1);
      expect(all.map((f) => [f.level, f.minTxid, f.maxTxid, f.size])).toEqual([
        [0, 6, 6, 2],
        [0, 7, 7, 3],
        [2, 1, 4, 9],
        [9, 1, 5, 12],
      ]);
      expect(await r.client.listAll().then((a) => a.length)).toBe(4);
    });

    it('readObjectIfChanged: a conditional GET answers unchanged without a body, else the new bytes', async () => {
      const r = await backend.fresh();
      const first = await r.client.writeObject('ltxvfs/manifest.json', bytes(40), { ifNoneMatch: '*' });
      r.client.resetStats();
      expect(await r.client.readObjectIfChanged('ltxvfs/manifest.json', first.etag)).toBe('unchanged');
      expect(r.client.stats()).toMatchObject({ get: 1, list: 0, bytesRead: 0 });
      const newer = new Uint8Array(41).fill(7);
      const second = await r.client.writeObject('ltxvfs/manifest.json', newer, { ifMatch: first.etag });
      const changed = await r.client.readObjectIfChanged('ltxvfs/manifest.json', first.etag);
      if (changed === 'unchanged' || changed === null) throw new Error('expected the new object');
      expect(Array.from(changed.data)).toEqual(Array.from(newer));
      expect(changed.etag).toBe(second.etag);
      expect(await r.client.readObjectIfChanged('ltxvfs/absent.json', undefined)).toBeNull();
    });

    it('stores the header timestamp as Litestream does and reports it as createdAt', async () => {
      const r = await backend.fresh();
      const file = { level: 0, minTxid: 5, maxTxid: 7 };
      const written = await r.client.writeFile(file, bytes(100), { timestamp: TIMESTAMP });
      expect(written).toEqual({ ...file, size: 100, createdAt: TIMESTAMP });
      expect(await r.rawTimestamp(file)).toBe(backend.expectedRawTimestamp);
      const [withMeta] = await r.client.listFiles(0, { metadata: true });
      expect(defined(withMeta).createdAt.toISOString()).toBe(TIMESTAMP.toISOString());
      // A whole-second timestamp: no fraction at all in RFC3339Nano.
      const whole = { level: 0, minTxid: 8, maxTxid: 8 };
      await r.client.writeFile(whole, bytes(1), { timestamp: new Date('2030-01-02T03:04:05Z') });
      expect(await r.rawTimestamp(whole)).toBe(
        backend.name === 's3' ? '2030-01-02T03:04:05Z' : '2030-01-02T03:04:05.000Z',
      );
    });

    it('lists in TXID order whatever the write order, ignoring names that are not LTX names', async () => {
      const r = await backend.fresh();
      const refs = [
        { level: 0, minTxid: 0x10, maxTxid: 0x10 },
        { level: 0, minTxid: 2, maxTxid: 3 },
        { level: 0, minTxid: 0xff, maxTxid: 0x100 },
        { level: 0, minTxid: 4, maxTxid: 0xf },
        { level: 0, minTxid: 1, maxTxid: 1 },
      ];
      for (const [i, ref] of refs.entries()) {
        await r.client.writeFile(ref, bytes(i + 1), { timestamp: TIMESTAMP });
      }
      for (const junk of [
        'notes.txt',
        '000000000000000A-000000000000000B.ltx', // uppercase hex
        '1-2.ltx', // not 16 digits
        '0000000000000001-0000000000000002.ltx.tmp',
        '0000000000000001-0000000000000002.LTX',
        '00000000000000001-0000000000000002.ltx', // 17 digits
      ]) {
        await r.plantInLevel(0, junk, bytes(3));
      }
      const listed = await r.client.listFiles(0);
      expect(listed.map((f) => [f.minTxid, f.maxTxid, f.size])).toEqual([
        [1, 1, 5],
        [2, 3, 2],
        [4, 0xf, 4],
        [0x10, 0x10, 1],
        [0xff, 0x100, 3],
      ]);
      expect(listed.every((f) => f.level === 0 && f.createdAt instanceof Date)).toBe(true);
      expect((await r.client.listFiles(0, { fromTxid: 4 })).map((f) => f.minTxid)).toEqual([4, 0x10, 0xff]);
      expect((await r.client.listFiles(0, { fromTxid: 5 })).map((f) => f.minTxid)).toEqual([0x10, 0xff]);
      expect(await r.client.listFiles(0, { fromTxid: 0x100 })).toEqual([]);
      // A level holding only junk is not a level.
      await r.plantInLevel(3, 'README', bytes(1));
      expect(await r.client.levels()).toEqual([0]);
    });

    it('paginates past 1000 files, applies fromTxid, and deletes in batches', async () => {
      const r = await backend.fresh();
      const refs = Array.from({ length: 1005 }, (_, i) => ({ level: 2, minTxid: i + 1, maxTxid: i + 1 }));
      const data = new Uint8Array([42]);
      for (let i = 0; i < refs.length; i += 25) {
        await Promise.all(
          refs.slice(i, i + 25).map((ref) => r.client.writeFile(ref, data, { timestamp: TIMESTAMP })),
        );
      }
      r.client.resetStats();
      const all = await r.client.listFiles(2);
      expect(all.length).toBe(1005);
      expect(all.map((f) => f.minTxid)).toEqual(refs.map((f) => f.minTxid));
      expect(r.client.stats().list).toBe(backend.listRequestsFor1005);

      r.client.resetStats();
      const tail = await r.client.listFiles(2, { fromTxid: 1001 });
      expect(tail.map((f) => f.minTxid)).toEqual([1001, 1002, 1003, 1004, 1005]);
      // The server skips what comes before fromTxid: one page, not two.
      expect(r.client.stats().list).toBe(1);

      r.client.resetStats();
      await r.client.deleteFiles([...refs, { level: 2, minTxid: 5000, maxTxid: 5000 }]);
      expect(r.client.stats().delete).toBe(2); // 1006 keys: batches of 1000 + 6
      expect(await r.client.listFiles(2)).toEqual([]);
      expect(await r.rawNames()).toEqual([]);
    });

    it('reads ranges: first, middle and last byte, across and past the end', async () => {
      const r = await backend.fresh();
      const file = { level: 0, minTxid: 1, maxTxid: 1 };
      const content = bytes(1000, 1);
      await r.client.writeFile(file, content, { timestamp: TIMESTAMP });
      r.client.resetStats();
      expect(Array.from(await r.client.readRange(file, 0, 1))).toEqual([content[0]]);
      expect(Array.from(await r.client.readRange(file, 500, 10))).toEqual(
        Array.from(content.subarray(500, 510)),
      );
      expect(Array.from(await r.client.readRange(file, 999, 1))).toEqual([content[999]]);
      expect(Array.from(await r.client.readRange(file, 995, 10))).toEqual(Array.from(content.subarray(995)));
      expect((await r.client.readRange(file, 1000, 10)).length).toBe(0);
      expect((await r.client.readRange(file, 5000, 10)).length).toBe(0);
      expect(Array.from(await r.client.readFile(file))).toEqual(Array.from(content));
      const s = r.client.stats();
      expect(s.get).toBe(7);
      expect(s.bytesRead).toBe(1 + 10 + 1 + 5 + 0 + 0 + 1000);
    });

    it('reading a missing file is STORAGE_NOT_FOUND naming it', async () => {
      const r = await backend.fresh();
      const missing = { level: 0, minTxid: 3, maxTxid: 4 };
      await expectCode(
        r.client.readFile(missing),
        'STORAGE_NOT_FOUND',
        '0000000000000003-0000000000000004.ltx',
      );
      await expectCode(
        r.client.readRange(missing, 0, 10),
        'STORAGE_NOT_FOUND',
        '0000000000000003-0000000000000004.ltx',
      );
    });

    it('writes are create-only: a second write of a name fails and changes nothing', async () => {
      const r = await backend.fresh();
      const file = { level: 0, minTxid: 9, maxTxid: 9 };
      await r.client.writeFile(file, bytes(50, 1), { timestamp: TIMESTAMP });
      await expectCode(
        r.client.writeFile(file, bytes(60, 2), { timestamp: new Date() }),
        'STORAGE_EXISTS',
        '0000000000000009-0000000000000009.ltx',
      );
      expect(Array.from(await r.client.readFile(file))).toEqual(Array.from(bytes(50, 1)));
      expect(await r.rawTimestamp(file)).toBe(backend.expectedRawTimestamp);
      expect(await r.rawNames()).toHaveLength(1); // no temp files left behind
    });

    it('of 10 concurrent writers of the same name exactly one wins', async () => {
      const r = await backend.fresh();
      const file = { level: 0, minTxid: 77, maxTxid: 78 };
      const writers = Array.from({ length: 10 }, () => r.openAnother());
      const results = await Promise.allSettled(
        writers.map((w, i) => w.writeFile(file, bytes(4096, i + 1), { timestamp: TIMESTAMP })),
      );
      const winners = results.flatMap((res, i) => (res.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      for (const res of results) {
        if (res.status === 'rejected') expect(isLtxvfsError(res.reason, 'STORAGE_EXISTS')).toBe(true);
      }
      expect(Array.from(await r.client.readFile(file))).toEqual(
        Array.from(bytes(4096, defined(winners[0]) + 1)),
      );
      expect(await r.rawNames()).toHaveLength(1);
      await Promise.all(writers.map((w) => w.close()));
    });

    it('streams a local file create-only (writeFileFrom): same bytes, size and timestamp', async () => {
      const r = await backend.fresh();
      const local = await makeTempDir('ltxvfs-contract-src-');
      try {
        const file = { level: 3, minTxid: 0x10, maxTxid: 0x2f };
        // Not a multiple of any read or buffer size, so the last partial chunk is exercised.
        const content = bytes(3 * 1024 * 1024 + 12_345, 5);
        const source = { path: join(local.dir, 'out.ltx'), size: content.length };
        await fsWriteFile(source.path, content);
        r.client.resetStats();
        const written = await r.client.writeFileFrom(file, source, { timestamp: TIMESTAMP });
        expect(written).toEqual({ ...file, size: content.length, createdAt: TIMESTAMP });
        expect(r.client.stats()).toMatchObject({ put: 1, bytesWritten: content.length });
        expect(Buffer.from(await r.client.readFile(file)).equals(content)).toBe(true);
        expect((await r.client.listFiles(3)).map((f) => [f.minTxid, f.maxTxid, f.size])).toEqual([
          [0x10, 0x2f, content.length],
        ]);
        expect(await r.rawTimestamp(file)).toBe(backend.expectedRawTimestamp);

        // Create-only against both kinds of write, in both directions.
        const other = { path: join(local.dir, 'other.ltx'), size: 1000 };
        await fsWriteFile(other.path, bytes(1000, 9));
        await expectCode(
          r.client.writeFileFrom(file, other, { timestamp: new Date() }),
          'STORAGE_EXISTS',
          '0000000000000010-000000000000002f.ltx',
        );
        const small = { level: 3, minTxid: 0x30, maxTxid: 0x30 };
        await r.client.writeFile(small, bytes(20, 1), { timestamp: TIMESTAMP });
        await expectCode(r.client.writeFileFrom(small, other, { timestamp: TIMESTAMP }), 'STORAGE_EXISTS');
        await expectCode(r.client.writeFile(file, bytes(5), { timestamp: TIMESTAMP }), 'STORAGE_EXISTS');
        expect(Buffer.from(await r.client.readFile(file)).equals(content)).toBe(true);
        expect(Array.from(await r.client.readFile(small))).toEqual(Array.from(bytes(20, 1)));
        expect(await r.rawNames()).toHaveLength(2); // no temp files left behind

        // The caller's file is the caller's: still there, unchanged.
        expect((await stat(source.path)).size).toBe(content.length);

        // An empty file is a valid (if useless) object too.
        const empty = { path: join(local.dir, 'empty'), size: 0 };
        await fsWriteFile(empty.path, new Uint8Array(0));
        const zero = { level: 3, minTxid: 0x31, maxTxid: 0x31 };
        expect((await r.client.writeFileFrom(zero, empty, { timestamp: TIMESTAMP })).size).toBe(0);
        expect((await r.client.readFile(zero)).length).toBe(0);
      } finally {
        await local.cleanup();
      }
    });

    it('writeFileFrom refuses a missing source or a wrong size, writing nothing', async () => {
      const r = await backend.fresh();
      const local = await makeTempDir('ltxvfs-contract-src-');
      try {
        const file = { level: 1, minTxid: 1, maxTxid: 2 };
        const path = join(local.dir, 'out.ltx');
        await fsWriteFile(path, bytes(100));
        await expectCode(
          r.client.writeFileFrom(file, { path, size: 99 }, { timestamp: TIMESTAMP }),
          'BAD_ARGUMENT',
          path,
        );
        const missing = join(local.dir, 'missing.ltx');
        await expectCode(
          r.client.writeFileFrom(file, { path: missing, size: 1 }, { timestamp: TIMESTAMP }),
          'BAD_ARGUMENT',
          missing,
        );
        expect(await r.rawNames()).toEqual([]);
      } finally {
        await local.cleanup();
      }
    });

    it('of 10 concurrent streamed writers of the same name exactly one wins', async () => {
      const r = await backend.fresh();
      const local = await makeTempDir('ltxvfs-contract-src-');
      try {
        const file = { level: 2, minTxid: 5, maxTxid: 9 };
        const size = 1024 * 1024 + 7;
        const sources = await Promise.all(
          Array.from({ length: 10 }, async (_, i) => {
            const path = join(local.dir, `writer-${i}.ltx`);
            await fsWriteFile(path, bytes(size, i + 1));
            return { path, size };
          }),
        );
        const writers = sources.map(() => r.openAnother());
        const results = await Promise.allSettled(
          writers.map((w, i) => w.writeFileFrom(file, defined(sources[i]), { timestamp: TIMESTAMP })),
        );
        const winners = results.flatMap((res, i) => (res.status === 'fulfilled' ? [i] : []));
        expect(winners).toHaveLength(1);
        for (const res of results) {
          if (res.status === 'rejected') expect(isLtxvfsError(res.reason, 'STORAGE_EXISTS')).toBe(true);
        }
        const stored = await r.client.readFile(file);
        expect(Buffer.from(stored).equals(bytes(size, defined(winners[0]) + 1))).toBe(true);
        expect(await r.rawNames()).toHaveLength(1);
        await Promise.all(writers.map((w) => w.close()));
      } finally {
        await local.cleanup();
      }
    });

    it('replaces small objects only under the right condition', async () => {
      const { client } = await backend.fresh();
      const enc = (s: string) => new TextEncoder().encode(s);
      const created = await client.writeObject('lock.json', enc('{"v":1}'), { ifNoneMatch: '*' });
      await expectCode(
        client.writeObject('lock.json', enc('{"v":9}'), { ifNoneMatch: '*' }),
        'STORAGE_CONDITION_FAILED',
        'lock.json',
      );
      const read1 = await client.readObject('lock.json');
      expect(new TextDecoder().decode(read1?.data)).toBe('{"v":1}');
      expect(read1?.etag).toBe(created.etag);

      const replaced = await client.writeObject('lock.json', enc('{"v":2}'), { ifMatch: created.etag });
      expect(replaced.etag).not.toBe(created.etag);
      // Stale ETag (the 412 case).
      await expectCode(
        client.writeObject('lock.json', enc('{"v":3}'), { ifMatch: created.etag }),
        'STORAGE_CONDITION_FAILED',
        'lock.json',
      );
      // ETag of an object that does not exist (AWS: 404; RGW: 412).
      await expectCode(
        client.writeObject('other.json', enc('x'), { ifMatch: created.etag }),
        'STORAGE_CONDITION_FAILED',
        'other.json',
      );
      const read2 = await client.readObject('lock.json');
      expect(new TextDecoder().decode(read2?.data)).toBe('{"v":2}');
      expect(read2?.etag).toBe(replaced.etag);
      expect(await client.readObject('other.json')).toBeNull();

      await expectCode(
        client.deleteObject('lock.json', { ifMatch: created.etag }),
        'STORAGE_CONDITION_FAILED',
        'lock.json',
      );
      expect(await client.readObject('lock.json')).not.toBeNull();
      await client.deleteObject('lock.json', { ifMatch: replaced.etag });
      expect(await client.readObject('lock.json')).toBeNull();
      await client.deleteObject('lock.json'); // already gone: fine
      await client.deleteObject('lock.json', { ifMatch: replaced.etag });
    });

    it('of 10 concurrent conditional replacers with the same ETag exactly one wins', async () => {
      const r = await backend.fresh();
      const base = await r.client.writeObject('lease/lock.json', new Uint8Array([0]), { ifNoneMatch: '*' });
      const writers = Array.from({ length: 10 }, () => r.openAnother());
      const results = await Promise.allSettled(
        writers.map((w, i) =>
          w.writeObject('lease/lock.json', new Uint8Array([i + 1, i]), { ifMatch: base.etag }),
        ),
      );
      const winners = results.flatMap((res, i) => (res.status === 'fulfilled' ? [i] : []));
      expect(winners).toHaveLength(1);
      for (const res of results) {
        if (res.status === 'rejected')
          expect(isLtxvfsError(res.reason, 'STORAGE_CONDITION_FAILED')).toBe(true);
      }
      const now = await r.client.readObject('lease/lock.json');
      expect(Array.from(now?.data ?? [])).toEqual([defined(winners[0]) + 1, winners[0]]);
      await Promise.all(writers.map((w) => w.close()));
    });

    it('batch delete removes exactly the named files; missing ones are fine', async () => {
      const r = await backend.fresh();
      const refs = [1, 2, 3, 4, 5].map((t) => ({ level: 1, minTxid: t, maxTxid: t }));
      for (const ref of refs) await r.client.writeFile(ref, bytes(8), { timestamp: TIMESTAMP });
      await r.client.deleteFiles([
        defined(refs[0]),
        defined(refs[2]),
        defined(refs[4]),
        { level: 1, minTxid: 40, maxTxid: 41 },
      ]);
      expect((await r.client.listFiles(1)).map((f) => f.minTxid)).toEqual([2, 4]);
      await r.client.deleteFiles([]);
      expect((await r.client.listFiles(1)).map((f) => f.minTxid)).toEqual([2, 4]);
    });

    it('counts requests and bytes, and resets', async () => {
      const { client } = await backend.fresh();
      await client.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, bytes(300), { timestamp: TIMESTAMP });
      await client.listFiles(0);
      await client.readRange({ level: 0, minTxid: 1, maxTxid: 1 }, 0, 100);
      await client.deleteFiles([{ level: 0, minTxid: 1, maxTxid: 1 }]);
      expect(client.stats()).toEqual({
        list: 1,
        get: 1,
        put: 1,
        delete: 1,
        head: 0,
        bytesRead: 100,
        bytesWritten: 300,
      });
      client.resetStats();
      expect(client.stats()).toEqual({
        list: 0,
        get: 0,
        put: 0,
        delete: 0,
        head: 0,
        bytesRead: 0,
        bytesWritten: 0,
      });
    });
  });
}
