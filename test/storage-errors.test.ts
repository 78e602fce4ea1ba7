/**
 * Failure paths of the storage layer: unreachable endpoints (bounded retries), missing buckets,
 * wrong credentials, how S3 status codes map to error codes, the RGW If-Match quirk, and the file
 * backend's refusal to touch anything outside its root (also across processes).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, symlink, truncate, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReplicaClient } from '../src/storage/index.js';
import { DEFAULT_RETRY_POLICY, withRetry } from '../src/storage/retry.js';
import { S3ReplicaClient } from '../src/storage/s3-client.js';
import { flipByte } from './support/defined.js';
import { createTestBucket, describeS3, s3Endpoint, testReplicaUrl } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const TS = { timestamp: new Date('2024-01-01T00:00:00Z') };

async function caught(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail, but it succeeded');
    },
    (e: Error & { code?: string }) => e,
  );
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

describe('retry policy', () => {
  const instant = { sleep: async () => {}, now: () => 0 };
  const transient = Object.assign(new Error('reset'), { code: 'ECONNRESET' });

  it('retries retryable failures until success, and stops at maxAttempts', async () => {
    let calls = 0;
    const value = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw transient;
        return 'ok';
      },
      () => true,
      DEFAULT_RETRY_POLICY,
      instant.sleep,
      instant.now,
    );
    expect([value, calls]).toEqual(['ok', 3]);

    calls = 0;
    const err = await caught(
      withRetry(
        async () => {
          calls++;
          throw transient;
        },
        () => true,
        { ...DEFAULT_RETRY_POLICY, maxAttempts: 4 },
        instant.sleep,
        instant.now,
      ),
    );
    expect(err).toBe(transient);
    expect(calls).toBe(4);
  });

  it('does not retry what is not retryable, and respects the time budget', async () => {
    let calls = 0;
    await caught(
      withRetry(
        async () => {
          calls++;
          throw new Error('400');
        },
        () => false,
      ),
    );
    expect(calls).toBe(1);

    let clock = 0;
    const delays: number[] = [];
    calls = 0;
    await caught(
      withRetry(
        async () => {
          calls++;
          clock += 1_000; // each attempt takes a second
          throw transient;
        },
        () => true,
        { maxAttempts: 100, baseDelayMs: 100, maxDelayMs: 1_000, totalBudgetMs: 4_000 },
        async (ms) => {
          delays.push(ms);
          clock += ms;
        },
        () => clock,
      ),
    );
    // retried (at least 3 attempts fit in 4 s whatever the jitter), within the budget, and a
    // sleep between every two attempts
    expect(calls).toBeGreaterThanOrEqual(3);
    expect(calls).toBeLessThanOrEqual(4);
    expect(delays).toHaveLength(calls - 1);
    expect(delays.every((d, i) => d >= 0 && d <= Math.min(1_000, 100 * 2 ** i))).toBe(true);
  });
});

describe('S3 status codes -> error codes (scripted SDK client)', () => {
  type Reply = { status: number; name: string } | { ok: object };
  function scripted(replies: Reply[]) {
    const seen: string[] = [];
    /** Byte counts of the PutObject bodies, read to the end as a server would. */
    const bodies: number[] = [];
    const client = {
      send: async (command: object) => {
        seen.push(command.constructor.name);
        const body = (command as { input?: { Body?: unknown } }).input?.Body;
        if (command instanceof PutObjectCommand) bodies.push(await bodyLength(body));
        const reply = replies.shift();
        if (!reply) throw new Error('no scripted reply left');
        if ('ok' in reply) return reply.ok;
        throw new S3ServiceException({
          name: reply.name,
          $fault: reply.status >= 500 ? 'server' : 'client',
          $metadata: { httpStatusCode: reply.status },
          message: `${reply.name} (scripted)`,
        });
      },
      destroy() {},
    } as unknown as S3Client;
    const replica = new S3ReplicaClient(
      { kind: 's3', bucket: 'bkt', path: 'db' },
      {
        s3Client: client,
        unquoteIfMatch: true,
        retry: { ...DEFAULT_RETRY_POLICY, baseDelayMs: 1, maxDelayMs: 2 },
      },
    );
    return { replica, seen, bodies };
  }

  async function bodyLength(body: unknown): Promise<number> {
    if (body instanceof Uint8Array) return body.length;
    let n = 0;
    for await (const chunk of body as AsyncIterable<Uint8Array>) n += chunk.length;
    return n;
  }

  it.each([412, 404, 409])(
    'a conditional replace answered %i is STORAGE_CONDITION_FAILED',
    async (status) => {
      const { replica } = scripted([
        { status, name: status === 404 ? 'NoSuchKey' : 'PreconditionFailed' },
        { status: 404, name: 'NoSuchKey' }, // the read-back: object gone
      ]);
      const err = await caught(replica.writeObject('lock.json', new Uint8Array([1]), { ifMatch: 'abc' }));
      expect(err.code).toBe('STORAGE_CONDITION_FAILED');
      expect(err.message).toContain('s3://bkt/db/lock.json');
    },
  );

  it('a create-only write answered 412 is STORAGE_EXISTS', async () => {
    const { replica, seen } = scripted([{ status: 412, name: 'PreconditionFailed' }]);
    const err = await caught(replica.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, new Uint8Array(1), TS));
    expect(err.code).toBe('STORAGE_EXISTS');
    expect(err.message).toContain('s3://bkt/db/0000/0000000000000001-0000000000000001.ltx');
    expect(seen).toEqual(['PutObjectCommand']);
  });

  describe('streamed create-only writes (writeFileFrom)', () => {
    let local: TempDir;
    let source: { path: string; size: number };
    const content = new Uint8Array(2_500_000).map((_, i) => (i * 31) % 253);
    beforeAll(async () => {
      local = await makeTempDir('ltxvfs-stream-src-');
      source = { path: join(local.dir, 'out.ltx'), size: content.length };
      await writeFile(source.path, content);
    });
    afterAll(() => local.cleanup());
    const ref = { level: 1, minTxid: 1, maxTxid: 8 };
    const streamOf = (bytes: Uint8Array) => ({
      ok: { Body: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]) },
    });

    it('a retry sends the whole file again, and a 412 then is our own first attempt', async () => {
      const { replica, seen, bodies } = scripted([
        { status: 503, name: 'ServiceUnavailable' },
        { status: 412, name: 'PreconditionFailed' },
        streamOf(content), // the read-back: the object holds our bytes
      ]);
      const info = await replica.writeFileFrom(ref, source, TS);
      expect(info.size).toBe(content.length);
      expect(seen).toEqual(['PutObjectCommand', 'PutObjectCommand', 'GetObjectCommand']);
      expect(bodies).toEqual([content.length, content.length]);
      expect(replica.stats().bytesWritten).toBe(content.length);
    });

    it('a 412 after a retry with other bytes stored is STORAGE_EXISTS', async () => {
      const other = content.slice();
      flipByte(other, 2_000_000, 1);
      const { replica } = scripted([
        { status: 500, name: 'InternalError' },
        { status: 412, name: 'PreconditionFailed' },
        streamOf(other),
      ]);
      const err = await caught(replica.writeFileFrom(ref, source, TS));
      expect(err.code).toBe('STORAGE_EXISTS');
      const shorter = scripted([
        { status: 500, name: 'InternalError' },
        { status: 412, name: 'PreconditionFailed' },
        streamOf(content.subarray(0, content.length - 1)),
      ]);
      expect((await caught(shorter.replica.writeFileFrom(ref, source, TS))).code).toBe('STORAGE_EXISTS');
    });

    it('a file over 5 GiB is STORAGE_TOO_LARGE before any request (one PutObject cannot hold it)', async () => {
      const big = join(local.dir, 'big.ltx');
      await writeFile(big, new Uint8Array(0));
      await truncate(big, 5 * 1024 ** 3 + 1); // sparse: no disk space used
      const { replica, seen } = scripted([]);
      const err = await caught(replica.writeFileFrom(ref, { path: big, size: 5 * 1024 ** 3 + 1 }, TS));
      expect(err.code).toBe('STORAGE_TOO_LARGE');
      expect(err.message).toContain('s3://bkt/db/0001/0000000000000001-0000000000000008.ltx');
      expect(seen).toEqual([]);
    });
  });

  it('5xx and throttling are retried; other 4xx are not', async () => {
    const ok = { Contents: [], IsTruncated: false };
    const a = scripted([{ status: 503, name: 'SlowDown' }, { status: 500, name: 'InternalError' }, { ok }]);
    expect(await a.replica.listFiles(0)).toEqual([]);
    expect(a.replica.stats().list).toBe(3);

    const b = scripted([{ status: 400, name: 'InvalidArgument' }, { ok }]);
    const err = await caught(b.replica.listFiles(0));
    expect(err.code).toBe('STORAGE_IO');
    expect(err.message).toContain('HTTP 400 InvalidArgument');
    expect(b.replica.stats().list).toBe(1);
  });

  it('maps missing bucket and denied access, naming bucket, key and operation', async () => {
    const a = scripted([{ status: 404, name: 'NoSuchBucket' }]);
    const noBucket = await caught(a.replica.readFile({ level: 9, minTxid: 1, maxTxid: 2 }));
    expect(noBucket.code).toBe('STORAGE_NO_BUCKET');
    expect(noBucket.message).toContain('bucket "bkt"');
    expect(noBucket.message).toContain('read s3://bkt/db/0009/0000000000000001-0000000000000002.ltx');

    const b = scripted([{ status: 403, name: 'InvalidAccessKeyId' }]);
    const denied = await caught(b.replica.readObject('lock.json'));
    expect(denied.code).toBe('STORAGE_ACCESS_DENIED');
    expect(denied.message).toContain('s3://bkt/db/lock.json');

    // RGW's answer to a write past a quota is a 403 too, but no credential is wrong.
    const c = scripted([{ status: 403, name: 'QuotaExceeded' }]);
    const full = await caught(
      c.replica.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, new Uint8Array(10), {
        timestamp: new Date(),
      }),
    );
    expect(full.code).toBe('STORAGE_FULL');
    expect(full.message).toContain('s3://bkt/db/0000/0000000000000001-0000000000000001.ltx');
    expect(full.message).toContain('quota');
  });
});

describe('an endpoint that refuses connections', () => {
  beforeAll(() => {
    // Credentials must exist for the SDK to try the network at all.
    process.env.AWS_ACCESS_KEY_ID ??= 'AKTEST';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'SKTEST';
  });

  it('fails with STORAGE_UNREACHABLE after bounded retries, within seconds', async () => {
    const port = await freePort();
    const client = openReplicaClient(`s3://bkt/db?endpoint=http://127.0.0.1:${port}&region=us-east-1`);
    const started = Date.now();
    const err = await caught(client.listFiles(0));
    const elapsed = Date.now() - started;
    expect(err.code).toBe('STORAGE_UNREACHABLE');
    expect(err.message).toContain(`http://127.0.0.1:${port}`);
    expect(err.message).toContain('s3://bkt/db/0000/');
    expect(client.stats().list).toBe(DEFAULT_RETRY_POLICY.maxAttempts);
    expect(elapsed).toBeLessThan(DEFAULT_RETRY_POLICY.totalBudgetMs + 2_000);
    await client.close();
  });
});

describeS3('S3 errors against the real server', () => {
  it('a missing bucket is STORAGE_NO_BUCKET for reads, lists and writes', async () => {
    const client = openReplicaClient(testReplicaUrl('ltxvfs-missing-bucket', 'db'));
    for (const attempt of [
      () => client.listFiles(0),
      () => client.levels(),
      () => client.readFile({ level: 0, minTxid: 1, maxTxid: 1 }),
      () => client.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, new Uint8Array(1), TS),
      () => client.writeObject('lock.json', new Uint8Array(1), { ifNoneMatch: '*' }),
      () => client.readObject('lock.json'),
    ]) {
      const err = await caught(attempt());
      expect(err.code).toBe('STORAGE_NO_BUCKET');
      expect(err.message).toContain('ltxvfs-missing-bucket');
    }
    await client.close();
  });

  it('wrong credentials are STORAGE_ACCESS_DENIED', async () => {
    const { bucket, path } = await createTestBucket('creds');
    const wrong = new S3Client({
      endpoint: s3Endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: 'AKTEST', secretAccessKey: 'wrong-secret' },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      maxAttempts: 1,
    });
    const client = new S3ReplicaClient({ kind: 's3', bucket, path }, { s3Client: wrong });
    const err = await caught(client.listFiles(0));
    expect(err.code).toBe('STORAGE_ACCESS_DENIED');
    expect(err.message).toContain(bucket);
    wrong.destroy();
  });

  it('auto-detects that RGW wants If-Match unquoted, once per client', async () => {
    const { bucket, path } = await createTestBucket('ifmatch');
    const url = testReplicaUrl(bucket, path).replace('&unquoteIfMatch=true', '');
    const client = openReplicaClient(url);
    const v1 = await client.writeObject('lock.json', new Uint8Array([1]), { ifNoneMatch: '*' });
    client.resetStats();
    const v2 = await client.writeObject('lock.json', new Uint8Array([2]), { ifMatch: v1.etag });
    // quoted PUT refused (412), read to compare ETags, unquoted PUT accepted
    expect(client.stats()).toMatchObject({ put: 2, get: 1 });
    client.resetStats();
    await client.writeObject('lock.json', new Uint8Array([3]), { ifMatch: v2.etag });
    expect(client.stats()).toMatchObject({ put: 1, get: 0 });
    // And a stale ETag still fails after the switch.
    expect(
      (await caught(client.writeObject('lock.json', new Uint8Array([4]), { ifMatch: v1.etag }))).code,
    ).toBe('STORAGE_CONDITION_FAILED');
    await client.close();
  });

  it('object keys of a replica at the bucket root have no leading slash', async () => {
    const { bucket, client: _ } = await createTestBucket('rootpath');
    const client = openReplicaClient(testReplicaUrl(bucket, ''));
    await client.writeFile({ level: 1, minTxid: 2, maxTxid: 3 }, new Uint8Array(4), TS);
    const { adminS3Client } = await import('./support/s3.js');
    const listed = await adminS3Client().send(new ListObjectsV2Command({ Bucket: bucket }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['0001/0000000000000002-0000000000000003.ltx']);
    const got = await adminS3Client().send(
      new GetObjectCommand({ Bucket: bucket, Key: '0001/0000000000000002-0000000000000003.ltx' }),
    );
    expect(got.Metadata?.['litestream-timestamp']).toBe('2024-01-01T00:00:00Z');
    await adminS3Client().send(new PutObjectCommand({ Bucket: bucket, Key: 'lock.json', Body: 'x' }));
    expect(new TextDecoder().decode((await client.readObject('lock.json'))?.data)).toBe('x');
    await client.close();
  });
});

describe('file backend: nothing outside the root', () => {
  let tmp: TempDir;
  let root: string;
  let outside: string;
  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-escape-');
    root = join(tmp.dir, 'replica');
    outside = join(tmp.dir, 'outside');
    await mkdir(join(root, 'ltx'), { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, '0000000000000001-0000000000000001.ltx'), 'secret');
    await writeFile(join(outside, 'lock.json'), 'outside-lock');
  });
  afterAll(() => tmp.cleanup());

  it.each(['../x', '/etc/passwd', 'a/../../x', '', 'a//b', 'a\\..\\b', './lock.json', 'ltx/..'])(
    'rejects the object name %j',
    async (name) => {
      const client = openReplicaClient(root);
      for (const attempt of [
        () => client.readObject(name),
        () => client.writeObject(name, new Uint8Array(1), { ifNoneMatch: '*' }),
        () => client.deleteObject(name),
      ]) {
        expect((await caught(attempt())).code).toBe('STORAGE_PATH_ESCAPE');
      }
    },
  );

  it('refuses a level directory that is a symlink leading outside', async () => {
    await symlink(outside, join(root, 'ltx', '0'));
    const client = openReplicaClient(root);
    const file = { level: 0, minTxid: 1, maxTxid: 1 };
    for (const attempt of [
      () => client.listFiles(0),
      () => client.levels(),
      () => client.readFile(file),
      () => client.readRange(file, 0, 3),
      () => client.writeFile({ level: 0, minTxid: 2, maxTxid: 2 }, new Uint8Array(1), TS),
      () => client.deleteFiles([file]),
    ]) {
      const err = await caught(attempt());
      expect(err.code).toBe('STORAGE_PATH_ESCAPE');
      expect(err.message).toContain(root);
    }
    expect(await readFile(join(outside, '0000000000000001-0000000000000001.ltx'), 'utf8')).toBe('secret');
    expect(existsSync(join(outside, '0000000000000002-0000000000000002.ltx'))).toBe(false);
  });

  it('refuses a small object that is a symlink leading outside', async () => {
    await symlink(join(outside, 'lock.json'), join(root, 'lock.json'));
    const client = openReplicaClient(`file://${root}`);
    expect((await caught(client.readObject('lock.json'))).code).toBe('STORAGE_PATH_ESCAPE');
    expect((await caught(client.writeObject('lock.json', new Uint8Array(1), { ifMatch: 'x' }))).code).toBe(
      'STORAGE_PATH_ESCAPE',
    );
    expect((await caught(client.deleteObject('lock.json'))).code).toBe('STORAGE_PATH_ESCAPE');
    expect(await readFile(join(outside, 'lock.json'), 'utf8')).toBe('outside-lock');
  });

  it('follows symlinks that stay inside the root', async () => {
    const inside = join(tmp.dir, 'inside');
    await mkdir(join(inside, 'ltx', 'elsewhere'), { recursive: true });
    await symlink('elsewhere', join(inside, 'ltx', '3'));
    const linkedRoot = join(tmp.dir, 'linked-root');
    await symlink(inside, linkedRoot); // the root itself may be a symlink
    const client = openReplicaClient(linkedRoot);
    await client.writeFile({ level: 3, minTxid: 1, maxTxid: 4 }, new Uint8Array([9]), TS);
    expect((await client.listFiles(3)).map((f) => f.maxTxid)).toEqual([4]);
    expect(existsSync(join(inside, 'ltx', 'elsewhere', '0000000000000001-0000000000000004.ltx'))).toBe(true);
  });

  it('after a listing, an LTX file that is a symlink is still checked: outside refused, inside read', async () => {
    // Reads in a listed level directory skip the realpath walk (O_NOFOLLOW open); a symlinked
    // file must still take the full check.
    const dir = join(tmp.dir, 'file-links');
    await mkdir(join(dir, 'ltx', '0'), { recursive: true });
    await writeFile(join(dir, 'ltx', '0', 'real.bin'), 'inside');
    await symlink(
      join(outside, '0000000000000001-0000000000000001.ltx'),
      join(dir, 'ltx', '0', '0000000000000001-0000000000000001.ltx'),
    );
    await symlink('real.bin', join(dir, 'ltx', '0', '0000000000000002-0000000000000002.ltx'));
    const client = openReplicaClient(dir);
    await client.listFiles(0);
    const escaped = await caught(client.readRange({ level: 0, minTxid: 1, maxTxid: 1 }, 0, 3));
    expect(escaped.code).toBe('STORAGE_PATH_ESCAPE');
    const inside = await client.readRange({ level: 0, minTxid: 2, maxTxid: 2 }, 0, 6);
    expect(Buffer.from(inside).toString()).toBe('inside');
  });
});

describe('file backend: races between processes', () => {
  const storageModule = join(projectRoot, 'dist', 'src', 'storage', 'index.js');
  let tmp: TempDir;
  beforeAll(async () => {
    if (!existsSync(storageModule))
      throw new Error(`${storageModule} is missing: build first (npm run build)`);
    tmp = await makeTempDir('ltxvfs-race-');
  });
  afterAll(() => tmp.cleanup());

  /** Runs `action` (JS source using `client` and `i`) in `n` node processes at once. */
  function inProcesses(n: number, root: string, action: string): Promise<string[]> {
    const source = `
      import { openReplicaClient } from ${JSON.stringify(storageModule)};
      const client = openReplicaClient(${JSON.stringify(root)});
      const i = Number(process.argv[1]);
      await new Promise((r) => setTimeout(r, Number(process.argv[2]) - Date.now()));
      try { ${action}; console.log('won'); } catch (e) { console.log(e.code ?? String(e)); }
    `;
    const startAt = Date.now() + 1500; // let every process load before they all go
    return Promise.all(
      Array.from(
        { length: n },
        (_, i) =>
          new Promise<string>((resolve, reject) => {
            execFile(
              process.execPath,
              ['--input-type=module', '-e', source, String(i), String(startAt)],
              { timeout: 30_000 },
              (err, stdout, stderr) =>
                err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout.trim()),
            );
          }),
      ),
    );
  }

  it('exactly one of 8 processes creates the same LTX file', async () => {
    const root = join(tmp.dir, 'create');
    const outcomes = await inProcesses(
      8,
      root,
      `await client.writeFile({ level: 0, minTxid: 5, maxTxid: 5 }, new Uint8Array(65536).fill(i + 1), { timestamp: new Date(0) })`,
    );
    expect(outcomes.filter((o) => o === 'won')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'STORAGE_EXISTS')).toHaveLength(7);
    const winner = outcomes.indexOf('won');
    const data = await readFile(join(root, 'ltx', '0', '0000000000000005-0000000000000005.ltx'));
    expect(data.length).toBe(65536);
    expect(data.every((b) => b === winner + 1)).toBe(true);
  });

  it('exactly one of 8 processes replaces lock.json with the same ETag', async () => {
    const root = join(tmp.dir, 'replace');
    const base = await openReplicaClient(root).writeObject('lock.json', new TextEncoder().encode('v0'), {
      ifNoneMatch: '*',
    });
    const outcomes = await inProcesses(
      8,
      root,
      `await client.writeObject('lock.json', new TextEncoder().encode('v' + (i + 1)), { ifMatch: ${JSON.stringify(base.etag)} })`,
    );
    expect(outcomes.filter((o) => o === 'won')).toHaveLength(1);
    expect(outcomes.filter((o) => o === 'STORAGE_CONDITION_FAILED')).toHaveLength(7);
    const winner = outcomes.indexOf('won');
    expect(await readFile(join(root, 'lock.json'), 'utf8')).toBe(`v${winner + 1}`);
  });
});
