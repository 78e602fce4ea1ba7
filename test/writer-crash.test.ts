/**
 * kill -9 of the replicator (the built CLI, `dist/src/cli/main.js replicate`) at exact points
 * between two effects, and at random moments under load; after a restart nothing is lost (every
 * recorded state restores byte-identical) and nothing is duplicated (one L0 per TXID, 1..N with no
 * gap, nothing left staged).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { restore } from '../src/replica/restore.js';
import { FileReplicaClient } from '../src/storage/index.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';
import { expectRestoresMatch, primaryImage, startNodeApp, verifyL0Files } from './support/writer-harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');
let tmp: TempDir;
beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
  tmp = await makeTempDir('ltxvfs-crash-');
});
afterAll(() => tmp.cleanup());

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

function runOnce(db: string, replica: string, crashAt?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, 'replicate', db, replica, '--once', '--verbose'],
      { env: { ...process.env, LTXVFS_TEST_CRASH_AT: crashAt ?? '' }, timeout: 30_000 },
      (_err, _stdout, stderr) => resolve({ code: child.exitCode, signal: child.signalCode, stderr }),
    );
  });
}

function syncedTxid(run: Run): number {
  const m = /replicated up to TXID ([0-9a-f]{16})/.exec(run.stderr);
  if (!m) throw new Error(`no TXID in: ${run.stderr}`);
  return Number.parseInt(defined(m[1]), 16);
}

async function expectContiguousL0(replica: string, dbPath: string): Promise<number> {
  const client = new FileReplicaClient(replica);
  const files = await client.listFiles(0);
  expect(files.map((f) => f.minTxid)).toEqual(files.map((_, i) => i + 1));
  for (const f of files) expect(f.maxTxid).toBe(f.minTxid);
  const staged = join(dirname(dbPath), `.${dbPath.split('/').pop()}-ltxvfs`, 'ltx', '0');
  expect(readdirSync(staged)).toEqual([]);
  return files.length;
}

describe('kill -9 at exact points, then restart: nothing lost, nothing duplicated', () => {
  for (const point of ['after-stage', 'after-state', 'before-upload', 'after-upload']) {
    it.concurrent(`crash ${point}`, async () => {
      const dir = join(tmp.dir, point);
      const dbPath = join(dir, 'db.sqlite');
      const replica = join(dir, 'replica');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(dir, { recursive: true });
      const app = await startNodeApp(dbPath, 4096);
      const images = new Map<number, Buffer>();
      try {
        await app.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
        for (let round = 0; round < 3; round++) {
          await app.exec(`INSERT INTO t(v) VALUES (hex(randomblob(${200 + round * 900})))`);
          if (round % 2 === 1) {
            const crashed = await runOnce(dbPath, replica, point);
            expect(crashed.signal, crashed.stderr).toBe('SIGKILL');
          }
          const ok = await runOnce(dbPath, replica);
          expect(ok.code, ok.stderr).toBe(0);
          images.set(syncedTxid(ok), primaryImage(dbPath, join(dir, 'scratch')));
        }
      } finally {
        await app.close();
      }
      const n = await expectContiguousL0(replica, dbPath);
      expect(n).toBe(Math.max(...images.keys()));
      const client = new FileReplicaClient(replica);
      await verifyL0Files(client);
      await expectRestoresMatch(client, images, join(dir, 'restores'));
    }, 60_000);
  }
});

describe('kill -9 at random moments while the application writes', () => {
  it('restarts continue the TXID sequence; the final state and every TXID restore cleanly', async () => {
    const dir = join(tmp.dir, 'random');
    const dbPath = join(dir, 'db.sqlite');
    const replica = join(dir, 'replica');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir, { recursive: true });
    const app = await startNodeApp(dbPath, 1024);
    await app.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)');
    let rows = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await app.exec(`INSERT INTO t(v) VALUES (hex(randomblob(${(rows % 7) * 150 + 10})))`);
        rows++;
        await new Promise((r) => setTimeout(r, 3));
      }
    })();
    try {
      for (let i = 0; i < 4; i++) {
        const child: ChildProcess = spawn(
          process.execPath,
          [cli, 'replicate', dbPath, replica, '--sync-interval', '20ms', '--levels', '1h'],
          { stdio: ['ignore', 'ignore', 'pipe'] },
        );
        // the CLI needs ~1-2 s to start (module loading); kill somewhere in the second after that
        await new Promise((r) => setTimeout(r, 2000 + ((i * 173) % 900)));
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
    } finally {
      writing = false;
      await writer;
    }
    const final = await runOnce(dbPath, replica);
    expect(final.code, final.stderr).toBe(0);
    const image = primaryImage(dbPath, join(dir, 'scratch'));
    await app.close();
    const n = await expectContiguousL0(replica, dbPath);
    expect(n).toBe(syncedTxid(final));
    expect(n).toBeGreaterThan(8);
    const client = new FileReplicaClient(replica);
    await verifyL0Files(client);
    await expectRestoresMatch(client, new Map([[n, image]]), join(dir, 'restores'));
    // every intermediate TXID is a consistent database
    for (let txid = 1; txid < n; txid += Math.max(1, Math.floor(n / 12))) {
      const out = join(dir, `mid-${txid}.db`);
      await restore({ client, outPath: out, txid });
      const db = new Database(out);
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      db.close();
    }
    expect(rows).toBeGreaterThan(20);
  }, 90_000);
});
