/**
 * `ltxvfs ls` as a user runs it: a child process of the built CLI, over a directory laid out like
 * a Litestream file replica (golden LTX files from superfly/ltx, never decoded here) and over S3.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, cliPath as cli, runCli as runCliWith } from './support/cli.js';
import { defined } from './support/defined.js';
import { createTestBucket, describeS3, s3Env, testReplicaUrl } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const runCli = (args: string[], env: Record<string, string> = {}) =>
  runCliWith(args, { env, timeoutMs: 30_000 });

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const golden = join(projectRoot, 'test', 'fixtures', 'litestream', 'nullstyle-ltx-zig', 'tests', 'fixtures');

function expectOneLineError(result: CliResult, code: string, mentions: string): void {
  expect(result.code).not.toBe(0);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(code);
  expect(lines[0]).toContain(mentions);
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
});

describe('ltxvfs ls on a Litestream file-replica directory', () => {
  let tmp: TempDir;
  let root: string;
  // Placed under the names their headers carry; sizes are the shared SOURCES.md byte counts.
  const layout = [
    {
      file: 'go_v3_snapshot_zero_page.ltx',
      at: 'ltx/0/0000000000000001-0000000000000001.ltx',
      mtime: '2025-01-01T00:00:01.001Z',
    },
    {
      file: 'go_v3_incremental.ltx',
      at: 'ltx/0/0000000000000002-0000000000000004.ltx',
      mtime: '2025-01-01T00:00:02.002Z',
    },
    {
      file: 'go_v3_no_checksum.ltx',
      at: 'ltx/0/0000000000000005-0000000000000005.ltx',
      mtime: '2025-01-01T00:00:05.005Z',
    },
    {
      file: 'go_v3_near_lock_page.ltx',
      at: 'ltx/0/0000000000000007-0000000000000008.ltx',
      mtime: '2025-01-01T00:00:08.008Z',
    },
    {
      file: 'celld_v052_two_page_snapshot.ltx',
      at: 'ltx/9/0000000000000001-0000000000000001.ltx',
      mtime: '2025-01-02T00:00:00.000Z',
    },
  ];
  const expected = [
    {
      level: 0,
      minTxid: '0000000000000001',
      maxTxid: '0000000000000001',
      size: 168,
      createdAt: '2025-01-01T00:00:01.001Z',
    },
    {
      level: 0,
      minTxid: '0000000000000002',
      maxTxid: '0000000000000004',
      size: 206,
      createdAt: '2025-01-01T00:00:02.002Z',
    },
    {
      level: 0,
      minTxid: '0000000000000005',
      maxTxid: '0000000000000005',
      size: 182,
      createdAt: '2025-01-01T00:00:05.005Z',
    },
    {
      level: 0,
      minTxid: '0000000000000007',
      maxTxid: '0000000000000008',
      size: 722,
      createdAt: '2025-01-01T00:00:08.008Z',
    },
    {
      level: 9,
      minTxid: '0000000000000001',
      maxTxid: '0000000000000001',
      size: 211,
      createdAt: '2025-01-02T00:00:00.000Z',
    },
  ];

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-ls-');
    root = join(tmp.dir, 'replica');
    for (const entry of layout) {
      const target = join(root, entry.at);
      await mkdir(dirname(target), { recursive: true });
      await copyFile(join(golden, entry.file), target);
      await utimes(target, new Date(entry.mtime), new Date(entry.mtime));
    }
    // What else lives in real replica directories: not LTX names, so not listed.
    await writeFile(join(root, 'ltx', '0', '.0000000000000009-0000000000000009.ltx.tmp'), 'partial');
    await writeFile(join(root, 'ltx', '0', 'README'), 'x');
    await mkdir(join(root, 'ltx', '4'), { recursive: true });
  });
  afterAll(() => tmp.cleanup());

  it('--json prints every file of every level, from the listing alone', async () => {
    const result = await runCli(['ls', root, '--json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(expected);
  });

  it('accepts the file:// form and --level', async () => {
    const result = await runCli(['ls', `file://${root}`, '--level', '9', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(expected.filter((f) => f.level === 9));
    const empty = await runCli(['ls', root, '--level', '4', '--json']);
    expect(JSON.parse(empty.stdout)).toEqual([]);
  });

  it('prints a readable table by default', async () => {
    const result = await runCli(['ls', root]);
    expect(result.code).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    expect(defined(lines[0]).split(/\s+/).filter(Boolean)).toEqual([
      'LEVEL',
      'MIN_TXID',
      'MAX_TXID',
      'SIZE',
      'CREATED',
    ]);
    expect(defined(lines[1]).split(/\s+/).filter(Boolean)).toEqual([
      '0',
      '0000000000000001',
      '0000000000000001',
      '168',
      '2025-01-01T00:00:01.001Z',
    ]);
    expect(lines).toHaveLength(1 + expected.length + 1);
    expect(lines.at(-1)).toBe(`5 files, ${168 + 206 + 182 + 722 + 211} bytes`);
  });

  it('fails with one line for bad input', async () => {
    expectOneLineError(
      await runCli(['ls', join(tmp.dir, 'no-such-dir')]),
      'STORAGE_NOT_FOUND',
      'no-such-dir',
    );
    expectOneLineError(await runCli(['ls', 'gs://bucket/db']), 'STORAGE_BAD_URL', 'gs://bucket/db');
    expectOneLineError(await runCli(['ls', 's3://Not_A_Bucket/db']), 'STORAGE_BAD_URL', 'Not_A_Bucket');
    expectOneLineError(await runCli(['ls', root, '--level', '10']), 'BAD_ARGUMENT', '--level');
  });

  it('every command that reads a replica says a missing directory does not exist', async () => {
    const missing = join(tmp.dir, 'no-such-replica');
    for (const args of [
      ['verify', missing],
      ['restore', missing, '-o', join(tmp.dir, 'out.db')],
      ['query', missing, 'SELECT 1'],
    ]) {
      expectOneLineError(await runCli(args), 'STORAGE_NOT_FOUND', 'no-such-replica');
    }
    expect(existsSync(join(tmp.dir, 'out.db'))).toBe(false);
  });
});

describeS3('ltxvfs ls on S3', () => {
  it('--json lists what was written, with sizes and LastModified times', async () => {
    const { url, client } = await createTestBucket('ls');
    const before = Date.now();
    await client.writeFile({ level: 0, minTxid: 1, maxTxid: 1 }, new Uint8Array(100), {
      timestamp: new Date(0),
    });
    await client.writeFile({ level: 0, minTxid: 2, maxTxid: 3 }, new Uint8Array(7), {
      timestamp: new Date(0),
    });
    await client.writeFile({ level: 9, minTxid: 1, maxTxid: 3 }, new Uint8Array(250), {
      timestamp: new Date(0),
    });
    const after = Date.now();
    const result = await runCli(['ls', url, '--json'], s3Env());
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const listed = JSON.parse(result.stdout) as { createdAt: string }[];
    expect(listed.map(({ createdAt: _, ...rest }) => rest)).toEqual([
      { level: 0, minTxid: '0000000000000001', maxTxid: '0000000000000001', size: 100 },
      { level: 0, minTxid: '0000000000000002', maxTxid: '0000000000000003', size: 7 },
      { level: 9, minTxid: '0000000000000001', maxTxid: '0000000000000003', size: 250 },
    ]);
    for (const { createdAt } of listed) {
      // LastModified has one-second resolution.
      expect(Date.parse(createdAt)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - 1000);
      expect(Date.parse(createdAt)).toBeLessThanOrEqual(after + 1000);
    }
    const level0 = await runCli(['ls', url, '--level', '0', '--json'], s3Env());
    expect(JSON.parse(level0.stdout)).toHaveLength(2);
    await client.close();
  });

  it('names the bucket when it does not exist, and reports wrong credentials', async () => {
    const missing = testReplicaUrl('ltxvfs-no-such-bucket', 'db');
    expectOneLineError(await runCli(['ls', missing], s3Env()), 'STORAGE_NO_BUCKET', 'ltxvfs-no-such-bucket');
    const { url } = await createTestBucket('ls-creds');
    const wrong = { ...s3Env(), AWS_SECRET_ACCESS_KEY: 'not-the-secret' };
    expectOneLineError(await runCli(['ls', url], wrong), 'STORAGE_ACCESS_DENIED', 'AWS_SECRET_ACCESS_KEY');
  });
});
