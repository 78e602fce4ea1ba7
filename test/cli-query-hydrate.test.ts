/**
 * `ltxvfs query --hydrate` as a user runs it (a child process of the built CLI, stderr a pipe),
 * and the status line it draws on a terminal. The hydrated file is compared with the primary's own
 * database file at that TXID (written by better-sqlite3) and with a restore of the same TXID.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StatusLine } from '../src/cli/progress.js';
import { restore } from '../src/replica/restore.js';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { formatTxid } from '../src/util/txid.js';
import { defined } from './support/defined.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let tmp: TempDir;
let client: ReplicaClient;
let primary: TestPrimary;
let replicaDir: string;

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
  tmp = await makeTempDir('ltxvfs-cli-hydrate-');
  replicaDir = join(tmp.dir, 'replica');
  client = openReplicaClient(replicaDir);
  primary = new TestPrimary(client, tmp.dir);
  // ~3 MiB in a snapshot plus two incremental files, so hydration takes several rounds of pages.
  fillTable(primary.db, 12_000, 200);
  await primary.sync();
  fillTable(primary.db, 500, 200, 12_001);
  await primary.sync();
  primary.db.exec("UPDATE t SET v = 'changed' WHERE id % 50 = 0");
  await primary.sync();
});

afterAll(async () => {
  primary?.close();
  await client?.close();
  await tmp?.cleanup();
});

function expectValidDatabase(path: string, rows: number): void {
  const db = new Database(path, { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(rows);
  } finally {
    db.close();
  }
}

async function expectSameAsRestore(path: string, txid: number): Promise<void> {
  const restored = join(tmp.dir, `restored-${txid}.db`);
  await restore({ client, outPath: restored, txid, force: true });
  expect(Buffer.compare(readFileSync(path), readFileSync(restored))).toBe(0);
}

describe('ltxvfs query --hydrate (stderr not a terminal)', () => {
  it('prints the rows, leaves a complete SQLite file equal to the primary and to a restore, and is quiet on stderr', async () => {
    const hydrated = join(tmp.dir, 'quiet.db');
    const r = await runCli([
      'query',
      replicaDir,
      'SELECT count(*) AS n FROM t',
      '--json',
      '--hydrate',
      hydrated,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([{ n: 12_500 }]);
    expect(Buffer.compare(readFileSync(hydrated), defined(primary.images.get(3)))).toBe(0);
    expect(existsSync(`${hydrated}.tmp`)).toBe(false);
    expectValidDatabase(hydrated, 12_500);
    await expectSameAsRestore(hydrated, 3);
  });

  it('with --verbose prints plain progress lines (no bar, no escapes) and the final state; a second run fetches only what changed', async () => {
    const hydrated = join(tmp.dir, 'verbose.db');
    const first = await runCli([
      'query',
      replicaDir,
      'SELECT max(id) AS m FROM t',
      '--hydrate',
      hydrated,
      '-v',
    ]);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('12500');
    expect(first.stderr.includes('\r') || first.stderr.includes('\x1b')).toBe(false);
    expect(first.stderr).toContain(`hydrated ${hydrated} at TXID ${formatTxid(3)}`);
    expect(first.stderr).toMatch(/^hydrating \[[#.]+\] +\d+% \d+\/\d+ pages/m);

    primary.db.exec("UPDATE t SET v = 'again' WHERE id = 7");
    await primary.sync();
    const second = await runCli([
      'query',
      replicaDir,
      'SELECT v FROM t WHERE id = 7',
      '--hydrate',
      hydrated,
      '-v',
    ]);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('again');
    // One UPDATE of one row: the leaf page and page 1, not the whole database again.
    const resumed = /resumes at TXID 0000000000000003: (\d+) of (\d+) pages to fetch/.exec(second.stderr);
    expect(resumed, second.stderr).not.toBeNull();
    expect(Number(defined(resumed)[1])).toBeLessThanOrEqual(4);
    expect(second.stderr).toContain(`hydrated ${hydrated} at TXID ${formatTxid(4)}`);
    expect(Buffer.compare(readFileSync(hydrated), defined(primary.images.get(4)))).toBe(0);
    expectValidDatabase(hydrated, 12_500);
    await expectSameAsRestore(hydrated, 4);
  });

  it('refuses to overwrite a file that is not a hydrated replica, with one line naming it', async () => {
    const precious = join(tmp.dir, 'precious.db');
    writeFileSync(precious, 'not yours');
    const r = await runCli(['query', replicaDir, 'SELECT 1', '--hydrate', precious]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringContaining('BAD_ARGUMENT')]);
    expect(r.stderr).toContain(precious);
    expect(readFileSync(precious, 'utf8')).toBe('not yours');
  });
});

describe('StatusLine', () => {
  function sink(isTTY: boolean) {
    const out: string[] = [];
    return { out, stream: { isTTY, write: (t: string) => out.push(t) } };
  }

  it('on a terminal redraws one line in place, and clears it around other output', () => {
    const err = sink(true);
    const stdout = sink(false);
    const status = new StatusLine(err.stream);
    status.update('a 10%');
    status.update('a 20%');
    status.print(stdout.stream, 'row\n');
    status.finish('done');
    expect(err.out).toEqual([
      '\ra 10%\x1b[K',
      '\ra 20%\x1b[K',
      '\r\x1b[K',
      '\ra 20%\x1b[K',
      '\rdone\x1b[K\n',
    ]);
    expect(stdout.out).toEqual(['row\n']);
  });

  it('elsewhere prints nothing unless asked, then whole lines at most once per interval', () => {
    const quiet = sink(false);
    const silent = new StatusLine(quiet.stream);
    silent.update('x');
    silent.finish('y');
    expect(quiet.out).toEqual([]);

    let now = 0;
    const err = sink(false);
    const status = new StatusLine(err.stream, { plain: true, plainIntervalMs: 1000, now: () => now });
    status.update('1');
    now = 500;
    status.update('2');
    now = 1000;
    status.update('3');
    now = 1200;
    status.finish('end');
    expect(err.out).toEqual(['1\n', '3\n', 'end\n']);
  });
});
