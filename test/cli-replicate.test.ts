import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReplicaClient } from '../src/storage/index.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

// `ltxvfs replicate` running continuously in a child process (npm test builds dist/ first):
// stop on SIGTERM, --exec, --config with several databases, quiet by default, --verbose.
// Waits are on what the replica holds (its listing), never on a sleep.
const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
let tmp: TempDir;
beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
  tmp = await makeTempDir('ltxvfs-cli-replicate-');
});
afterAll(() => tmp.cleanup());

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(args: string[], cwd = tmp.dir): Running {
  const child = spawn(process.execPath, [cli, 'replicate', ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exit };
}

function walDb(name: string, rows: string[] = []): string {
  const path = join(tmp.dir, name);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE t (x TEXT)');
  for (const r of rows) db.prepare('INSERT INTO t VALUES (?)').run(r);
  db.close();
  return path;
}

/** The newest TXID the replica holds in any level (0 when it holds nothing yet). */
async function newestTxid(replicaDir: string): Promise<number> {
  if (!existsSync(join(replicaDir, 'ltx'))) return 0;
  const client = openReplicaClient(replicaDir);
  let newest = 0;
  for (const level of [0, 1, 2, 3, 9]) {
    for (const f of await client.listFiles(level).catch(() => [])) newest = Math.max(newest, f.maxTxid);
  }
  return newest;
}

/** Polls the replica until it holds `txid` or the process exits (then fails with its stderr). */
async function untilReplicaHolds(replicaDir: string, txid: number, running: Running): Promise<void> {
  let exited = false;
  void running.exit.then(() => {
    exited = true;
  });
  for (let i = 0; i < 600; i++) {
    if ((await newestTxid(replicaDir)) >= txid) return;
    if (exited) throw new Error(`replicate exited before TXID ${txid} was replicated: ${running.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`TXID ${txid} never reached ${replicaDir} in 30 s: ${running.stderr()}`);
}

function restoredRows(replicaDir: string, name: string): Promise<string[]> {
  const out = join(tmp.dir, `${name}-restored.db`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'restore', replicaDir, '-o', out, '--force'], {
      stdio: 'pipe',
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`restore failed (${code}): ${err}`));
      const db = new Database(out, { readonly: true });
      try {
        resolve(db.prepare('SELECT x FROM t ORDER BY rowid').pluck().all() as string[]);
      } finally {
        db.close();
      }
    });
  });
}

describe('ltxvfs replicate, continuously', () => {
  it('stops on SIGTERM with exit 0, quietly, after replicating the last commit', async () => {
    const dbPath = walDb('term.db', ['a']);
    const replica = join(tmp.dir, 'r-term');
    const running = start([dbPath, replica]);
    await untilReplicaHolds(replica, 1, running);
    const db = new Database(dbPath);
    db.prepare('INSERT INTO t VALUES (?)').run('b');
    db.close();
    running.child.kill('SIGTERM');
    const { code, signal } = await running.exit;
    expect({ code, signal }, running.stderr()).toEqual({ code: 0, signal: null });
    // quiet by default: nothing on stdout or stderr for a normal run and stop
    expect(running.stdout()).toBe('');
    expect(running.stderr()).toBe('');
    // the commit made just before the signal is in the replica (final sync on stop)
    expect(await restoredRows(replica, 'term')).toEqual(['a', 'b']);
    expect(readdirSync(tmp.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('--verbose logs one line per upload and the request totals on stop', async () => {
    const dbPath = walDb('verbose.db', ['a']);
    const replica = join(tmp.dir, 'r-verbose');
    const running = start([dbPath, replica, '--verbose']);
    await untilReplicaHolds(replica, 1, running);
    running.child.kill('SIGTERM');
    const { code } = await running.exit;
    expect(code, running.stderr()).toBe(0);
    const lines = running.stderr().trimEnd().split('\n');
    expect(
      lines.filter((l) => /^ltxvfs replicate: uploaded L0 0000000000000001 \(\d+ bytes\)/.test(l)),
    ).toHaveLength(1);
    expect(lines.at(-1)).toMatch(/^ltxvfs replicate: requests: \d+ PUT, \d+ GET, \d+ LIST/);
  });

  it('--config replicates several databases continuously until SIGTERM', async () => {
    const a = walDb('ca.db', ['a1']);
    const b = walDb('cb.db', ['b1']);
    const ra = join(tmp.dir, 'r-ca');
    const rb = join(tmp.dir, 'r-cb');
    const file = join(tmp.dir, 'continuous.yml');
    writeFileSync(
      file,
      `dbs:\n  - path: ca.db\n    replica: { url: ${ra} }\n  - path: cb.db\n    replica: { url: ${rb} }\n`,
    );
    const running = start(['--config', file]);
    await untilReplicaHolds(ra, 1, running);
    await untilReplicaHolds(rb, 1, running);
    // later commits to each database reach their own replica while it keeps running
    for (const [path, row] of [
      [a, 'a2'],
      [b, 'b2'],
    ] as const) {
      const db = new Database(path);
      db.prepare('INSERT INTO t VALUES (?)').run(row);
      db.close();
    }
    await untilReplicaHolds(ra, 2, running);
    await untilReplicaHolds(rb, 2, running);
    expect(running.child.exitCode).toBeNull();
    running.child.kill('SIGTERM');
    expect((await running.exit).code, running.stderr()).toBe(0);
    expect(await restoredRows(ra, 'ca')).toEqual(['a1', 'a2']);
    expect(await restoredRows(rb, 'cb')).toEqual(['b1', 'b2']);
    expect(running.stderr()).toBe('');
  });
});

describe('ltxvfs replicate --exec', () => {
  it("passes on the child's exit status after a final sync of what it wrote", async () => {
    const dbPath = walDb('exec.db', ['a']);
    const replica = join(tmp.dir, 'r-exec');
    const app = join(tmp.dir, 'app-exit.cjs');
    writeFileSync(
      app,
      `const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
       const db = new D(${JSON.stringify(dbPath)}); db.prepare("INSERT INTO t VALUES ('from-app')").run(); db.close();
       process.exit(7);`,
    );
    const running = start([dbPath, replica, '--exec', `${process.execPath} ${app}`]);
    const { code } = await running.exit;
    expect(code, running.stderr()).toBe(7);
    expect(await restoredRows(replica, 'exec')).toEqual(['a', 'from-app']);
  });

  // Issue 10, defect 4: the child ran under `sh -c` and dash kept SIGTERM to itself (this failed
  // on the old code for both command styles: no marker, replicate exited 143).
  for (const style of ['a simple command (run without a shell)', 'a command that needs a shell (sh -c)']) {
    it(`forwards SIGTERM to the child of ${style}; final sync; exits with the status the child chose`, async () => {
      const tag = style.includes('sh -c') ? 'shell' : 'plain';
      const dbPath = walDb(`exec-term-${tag}.db`, ['a']);
      const replica = join(tmp.dir, `r-exec-term-${tag}`);
      const marker = join(tmp.dir, `app-got-sigterm-${tag}`);
      const ready = join(tmp.dir, `app-ready-${tag}`);
      const app = join(tmp.dir, `app-term-${tag}.cjs`);
      writeFileSync(
        app,
        `const fs = require('node:fs');
       const D = require(${JSON.stringify(require.resolve('better-sqlite3'))});
       process.on('SIGTERM', () => {
         const db = new D(${JSON.stringify(dbPath)}); db.prepare("INSERT INTO t VALUES ('on-sigterm')").run(); db.close();
         fs.writeFileSync(${JSON.stringify(marker)}, 'yes'); process.exit(3);
       });
       fs.writeFileSync(${JSON.stringify(ready)}, String(process.pid));
       setInterval(() => {}, 1000);`,
      );
      // `; exit $?` makes dash fork the application instead of exec'ing it
      const command =
        tag === 'shell' ? `${process.execPath} ${app}; exit $?` : `${process.execPath} '${app}'`;
      const running = start([dbPath, replica, '--exec', command]);
      await untilReplicaHolds(replica, 1, running);
      for (let i = 0; i < 600 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(ready), 'the --exec child never started').toBe(true);
      running.child.kill('SIGTERM');
      const { code, signal } = await running.exit;
      expect(existsSync(marker), `the child never saw SIGTERM; stderr: ${running.stderr()}`).toBe(true);
      expect({ code, signal }).toEqual({ code: 3, signal: null });
      expect(await restoredRows(replica, `exec-term-${tag}`)).toEqual(['a', 'on-sigterm']);
    });
  }
});
