/**
 * S3 settings from the environment, as the README's Replica URLs section promises: the built CLI
 * in child processes, given `s3://bucket/path` with no query at all, finds the store through
 * `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`), signs for `AWS_REGION` (or
 * `AWS_DEFAULT_REGION`), and addresses the bucket path-style because an endpoint is set. The
 * endpoint is a recording HTTP proxy in front of RGW, named `localhost` (with an IP address the
 * SDK would go path-style by itself), so every request the child sent is seen: its path, Host and
 * the region in its SigV4 credential scope. The children get a clean environment (no AWS_* or
 * S3_* of this process), so nothing but what a test sets can lead them to the store.
 */
import { execFile } from 'node:child_process';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type CliResult, cliPath } from './support/cli.js';
import { adminS3Client, createTestBucket, describeS3, s3Endpoint, type TestBucket } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

interface SeenRequest {
  method: string;
  path: string;
  host: string;
  /** Region of the SigV4 credential scope (Credential=AK/date/<region>/s3/aws4_request). */
  region: string | undefined;
}

/** An HTTP proxy to RGW on every local address (IPv4 and IPv6: `localhost` may be either). */
async function startRecordingProxy(
  target: URL,
): Promise<{ server: Server; port: number; seen: SeenRequest[] }> {
  const seen: SeenRequest[] = [];
  const server = createServer((req, res) => {
    seen.push({
      method: req.method ?? '',
      path: req.url ?? '',
      host: req.headers.host ?? '',
      region: /Credential=[^/]+\/\d{8}\/([^/]+)\/s3\/aws4_request/.exec(req.headers.authorization ?? '')?.[1],
    });
    const upstream = request(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        // Host is kept as the child sent it: SigV4 signed it.
        headers: req.headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '::', resolve));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

/** `ltxvfs <args>` with only PATH, HOME, the test credentials and `env`. */
function runCliIn(env: Record<string, string>, args: string[]): Promise<CliResult> {
  const clean: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? '',
    AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? '',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    // No shared config or credentials file may supply a region or an endpoint.
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    ...env,
  };
  return new Promise((resolve) => {
    execFile(process.execPath, [cliPath, ...args], { env: clean, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describeS3('S3 settings from the environment (ltxvfs in child processes, a URL without a query)', () => {
  let tmp: TempDir;
  let bucket: TestBucket;
  let proxy: Awaited<ReturnType<typeof startRecordingProxy>>;
  let primary: Database.Database;
  let dbPath: string;
  const endpoint = () => `http://localhost:${proxy.port}`;
  // A port nothing listens on: an endpoint that must not be the one used.
  const dead = 'http://127.0.0.1:1';
  const bareUrl = () => `s3://${bucket.bucket}/envdb`;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-s3-env-');
    bucket = await createTestBucket('s3-env');
    proxy = await startRecordingProxy(new URL(s3Endpoint ?? ''));
    dbPath = join(tmp.dir, 'primary.db');
    primary = new Database(dbPath);
    primary.pragma('journal_mode = wal');
    primary.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
    const insert = primary.prepare('INSERT INTO t (v) VALUES (?)');
    primary.transaction(() => {
      for (let i = 0; i < 50; i++) insert.run(`row ${i}`);
    })();
  });

  afterAll(async () => {
    primary?.close();
    await new Promise<void>((resolve) => (proxy ? proxy.server.close(() => resolve()) : resolve()));
    await tmp?.cleanup();
  });

  it('replicate: AWS_ENDPOINT_URL_S3 is the store, AWS_REGION the signing region, path style by default', async () => {
    proxy.seen.length = 0;
    const result = await runCliIn({ AWS_ENDPOINT_URL_S3: endpoint(), AWS_REGION: 'eu-west-9' }, [
      'replicate',
      dbPath,
      bareUrl(),
      '--once',
      '--no-compaction', // one L0 object, nothing else: the listings below count it
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(proxy.seen.some((r) => r.method === 'PUT')).toBe(true);
    for (const r of proxy.seen) {
      expect(r.host).toBe(`localhost:${proxy.port}`);
      expect(r.path.startsWith(`/${bucket.bucket}/`) || r.path.startsWith(`/${bucket.bucket}?`)).toBe(true);
      expect(r.region).toBe('eu-west-9');
    }
    // The object is where Litestream's S3 layout puts TXID 1, seen by a client of our own.
    const listed = await adminS3Client().send(
      new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: 'envdb/0000/' }),
    );
    expect((listed.Contents ?? []).map((o) => o.Key)).toEqual([
      'envdb/0000/0000000000000001-0000000000000001.ltx',
    ]);
  });

  it('restore: AWS_ENDPOINT_URL and AWS_DEFAULT_REGION when the S3-specific ones are unset', async () => {
    proxy.seen.length = 0;
    const out = join(tmp.dir, 'restored.db');
    const result = await runCliIn({ AWS_ENDPOINT_URL: endpoint(), AWS_DEFAULT_REGION: 'ap-south-7' }, [
      'restore',
      bareUrl(),
      '-o',
      out,
    ]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(proxy.seen.length).toBeGreaterThan(0);
    expect(new Set(proxy.seen.map((r) => r.region))).toEqual(new Set(['ap-south-7']));
    const restored = new Database(out, { readonly: true });
    try {
      expect(restored.prepare('SELECT id, v FROM t ORDER BY id').all()).toEqual(
        primary.prepare('SELECT id, v FROM t ORDER BY id').all(),
      );
    } finally {
      restored.close();
    }
  });

  it('precedence: AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL, AWS_REGION over AWS_DEFAULT_REGION, the URL query over both', async () => {
    proxy.seen.length = 0;
    const envFirst = await runCliIn(
      {
        AWS_ENDPOINT_URL_S3: endpoint(),
        AWS_ENDPOINT_URL: dead,
        AWS_REGION: 'eu-west-9',
        AWS_DEFAULT_REGION: 'ap-south-7',
      },
      ['ls', bareUrl(), '--json'],
    );
    expect(envFirst.stderr).toBe('');
    expect(envFirst.code).toBe(0);
    expect(JSON.parse(envFirst.stdout)).toHaveLength(1);
    expect(new Set(proxy.seen.map((r) => r.region))).toEqual(new Set(['eu-west-9']));

    proxy.seen.length = 0;
    const query = `endpoint=${encodeURIComponent(endpoint())}&region=sa-east-5`;
    const urlFirst = await runCliIn({ AWS_ENDPOINT_URL_S3: dead, AWS_REGION: 'eu-west-9' }, [
      'ls',
      `${bareUrl()}?${query}`,
      '--json',
    ]);
    expect(urlFirst.stderr).toBe('');
    expect(urlFirst.code).toBe(0);
    expect(JSON.parse(urlFirst.stdout)).toHaveLength(1);
    expect(new Set(proxy.seen.map((r) => r.region))).toEqual(new Set(['sa-east-5']));
    for (const r of proxy.seen) expect(r.path.startsWith(`/${bucket.bucket}`)).toBe(true);
  });

  it('forcePathStyle=false addresses bucket.localhost, which does not resolve: the default is what reached the store', async () => {
    proxy.seen.length = 0;
    const result = await runCliIn({ AWS_ENDPOINT_URL_S3: endpoint(), AWS_REGION: 'eu-west-9' }, [
      'ls',
      `${bareUrl()}?forcePathStyle=false`,
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/STORAGE_UNREACHABLE/);
    expect(result.stderr).toContain(bucket.bucket);
    expect(proxy.seen).toEqual([]);
  }, 60_000);
});
