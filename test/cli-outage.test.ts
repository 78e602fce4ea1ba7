/**
 * `ltxvfs replicate --exec` through a store outage and a lease takeover (issue 10, defect 3).
 * An outage longer than the lease TTL (the fault proxy black-holes RGW) must not stop replication
 * or the application: the lease is renewed when the store answers, and every row is in the
 * replica afterwards. A lease another writer took stops replication, but the application keeps
 * running unless --exec-stop-on-lease-lost. On the old code the outage ended in LEASE_LOST and
 * SIGTERM to the application, and so did the takeover.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restore } from '../src/replica/restore.js';
import { FileReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { cliPath } from './support/cli.js';
import { createTestBucket, describeS3, s3Endpoint, s3Env } from './support/s3.js';
import { endpointTarget, type FaultProxy, startFaultProxy } from './support/tcp-proxy.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const writerApp = join(import.meta.dirname, 'support', 'steady-writer.mjs');
let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-cli-outage-');
});
afterAll(() => tmp.cleanup());

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<number>;
}

function replicate(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [cliPath, 'replicate', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdout?.resume();
  const exited = new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))),
  );
  return { child, stderr: () => stderr, exited };
}

function primary(name: string): { dbPath: string; stopFile: string; dir: string } {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  const dbPath = join(dir, 'app.db');
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
  db.close();
  return { dbPath, stopFile: join(dir, 'stop'), dir };
}

function rowCount(dbPath: string): number {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const n = (db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
  db.close();
  return n;
}

function rows(dbPath: string): Array<{ id: number; v: string }> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  const all = db.prepare('SELECT id, v FROM t ORDER BY id').all() as Array<{ id: number; v: string }>;
  db.close();
  return all;
}

async function until(
  what: string,
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The restored latest state has exactly the primary's rows. */
async function expectReplicaEqualsPrimary(
  client: ReplicaClient,
  dbPath: string,
  dir: string,
): Promise<number> {
  const out = join(dir, 'restored.db');
  await restore({ client, outPath: out, force: true });
  const want = rows(dbPath);
  const got = rows(out);
  expect(got.length).toBe(want.length);
  expect(got).toEqual(want);
  return want.length;
}

describeS3('ltxvfs replicate --exec through a store outage (fault proxy in front of RGW)', () => {
  let proxy: FaultProxy;
  beforeAll(async () => {
    proxy = await startFaultProxy(endpointTarget(s3Endpoint as string));
  });
  afterAll(() => proxy.close());

  it('an outage of 36 s, longer than the default 30 s lease TTL: the app keeps writing, the lease is renewed, nothing is lost', async () => {
    const { dbPath, stopFile, dir } = primary('outage');
    const bucket = await createTestBucket('i10-cli-outage');
    const url = `s3://${bucket.bucket}/${bucket.path}?endpoint=${encodeURIComponent(proxy.endpoint)}&forcePathStyle=true&region=us-east-1&unquoteIfMatch=true`;
    // The default lease (30 s, renewed every 10 s): the last renewal before the outage was at
    // most 10 s before it, so 36 s of black hole outlast the lease for certain.
    const outageMs = 36_000;
    const run = replicate(
      [
        dbPath,
        url,
        '--sync-interval',
        '200ms',
        '--exec',
        `${process.execPath} ${writerApp} ${dbPath} ${stopFile}`,
      ],
      s3Env(),
    );
    try {
      await until('the first upload', async () => (await bucket.client.listFiles(0)).length > 0);
      proxy.setMode({ kind: 'blackhole' });
      const rowsBefore = rowCount(dbPath);
      await sleep(outageMs);
      expect(run.child.exitCode, `replicate exited during the outage: ${run.stderr()}`).toBeNull();
      const rowsDuring = rowCount(dbPath);
      expect(rowsDuring, 'the app kept writing through the outage').toBeGreaterThan(rowsBefore + 50);
      expect(run.stderr()).not.toContain('LEASE_LOST');
      expect(proxy.stats().heldChunks).toBeGreaterThan(0);

      proxy.cut();
      proxy.setMode({ kind: 'pass' });
      await until(
        'the lease renewal after the outage',
        () => run.stderr().includes('renewed: the store answers again'),
        60_000,
      ).catch((err) => {
        throw new Error(`${(err as Error).message}; stderr: ${run.stderr()}`);
      });
      await until('the app writing on', () => rowCount(dbPath) > rowsDuring + 20);
      writeFileSync(stopFile, '');
      const code = await run.exited;
      expect(code, run.stderr()).toBe(0);
      expect(run.stderr()).not.toContain('LEASE_LOST');
      const n = await expectReplicaEqualsPrimary(bucket.client, dbPath, dir);
      console.log(
        `cli outage: ${n} rows replicated, ${rowsDuring - rowsBefore} written during ${outageMs} ms of black hole`,
      );
    } finally {
      run.child.kill('SIGKILL');
    }
  }, 180_000);
});

describe('ltxvfs replicate --exec when another writer takes the lease', () => {
  for (const stop of [false, true]) {
    it(stop
      ? 'with --exec-stop-on-lease-lost the app is sent SIGTERM'
      : 'the app keeps running; replicate exits non-zero after it', async () => {
      const { dbPath, stopFile, dir } = primary(`takeover-${stop}`);
      const replicaDir = join(dir, 'replica');
      const run = replicate([
        dbPath,
        replicaDir,
        '--sync-interval',
        '100ms',
        '--lease-ttl',
        '3s',
        ...(stop ? ['--exec-stop-on-lease-lost'] : []),
        '--exec',
        `${process.execPath} ${writerApp} ${dbPath} ${stopFile}`,
      ]);
      try {
        const client = new FileReplicaClient(replicaDir);
        await until('the first upload', async () => (await client.listFiles(0)).length > 0);
        // Another writer takes over: lock.json now names it (generation 2).
        const expires = new Date(Date.now() + 60_000).toISOString().replace(/\.\d+Z$/, 'Z');
        writeFileSync(
          join(replicaDir, 'lock.json'),
          JSON.stringify({ generation: 2, expires_at: expires, owner: 'other-host:7' }),
        );
        await until('LEASE_LOST', () => run.stderr().includes('LEASE_LOST'), 30_000);
        if (stop) {
          const code = await run.exited;
          expect(code).not.toBe(0);
          expect(run.stderr()).toContain('stopping the application');
          return;
        }
        const after = rowCount(dbPath);
        await until('the app writing after LEASE_LOST', () => rowCount(dbPath) > after + 20);
        expect(run.child.exitCode).toBeNull();
        writeFileSync(stopFile, '');
        const code = await run.exited;
        expect(code, run.stderr()).not.toBe(0);
        expect(run.stderr()).toContain('the application keeps running');
        expect(run.stderr()).toContain('LEASE_LOST');
      } finally {
        run.child.kill('SIGKILL');
      }
    }, 60_000);
  }
});
