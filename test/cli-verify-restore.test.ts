/**
 * `ltxvfs verify` and `ltxvfs restore` as a user runs them: child processes of the built CLI
 * (stdout, stderr, exit status) on a replica made by `ltxvfs replicate --once` from a real
 * better-sqlite3 primary, then damaged the way real replicas get damaged. Expected rows come from
 * the primary itself (read with better-sqlite3 when each TXID was replicated), never from our
 * own decoder.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, runCli as runCliWith } from './support/cli.js';
import { adminS3Client, createTestBucket, describeS3, s3Env, type TestBucket } from './support/s3.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const runCli = (args: string[], env: Record<string, string> = {}) => runCliWith(args, { env });

const hex = (txid: number) => txid.toString(16).padStart(16, '0');
const l0Name = (min: number, max: number) => `${hex(min)}-${hex(max)}.ltx`;

interface PrimaryState {
  txid: number;
  rows: Array<{ id: number; v: string }>;
  /** A moment after this TXID was replicated and before the next one was. */
  after: string;
}

/**
 * A WAL-mode primary kept open by this process (so its WAL survives between runs), replicated
 * with `replicate --once` after each of four write batches: one L0 file per batch, TXIDs 1..4.
 */
async function replicateFourTxids(dir: string, replicaUrl: string, env: Record<string, string> = {}) {
  const dbPath = join(dir, 'primary.db');
  const db = new Database(dbPath);
  db.pragma('journal_mode = wal');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  const states: PrimaryState[] = [];
  for (let batch = 1; batch <= 4; batch++) {
    db.transaction(() => {
      for (let i = 0; i < 25; i++) insert.run(`batch ${batch} row ${i} ${'x'.repeat(40)}`);
    })();
    if (batch === 3) db.prepare('UPDATE t SET v = ? WHERE id = 1').run('changed in batch 3');
    // --no-compaction: the fixture is the L0 files alone (--once would compact what is due).
    const result = await runCli(['replicate', dbPath, replicaUrl, '--once', '--no-compaction'], env);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const rows = db.prepare('SELECT id, v FROM t ORDER BY id').all() as PrimaryState['rows'];
    // The header timestamp is taken during the sync; wait so that `after` is strictly later and
    // the next sync strictly later still (file mtimes and RFC 3339 times have ms resolution).
    await new Promise((r) => setTimeout(r, 30));
    states.push({ txid: batch, rows, after: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 30));
  }
  const listed = await runCli(['ls', replicaUrl, '--json'], env);
  expect(listed.code).toBe(0);
  const files = JSON.parse(listed.stdout) as Array<{ level: number; minTxid: string; maxTxid: string }>;
  expect(files.map((f) => `${f.level}:${f.minTxid}-${f.maxTxid}`)).toEqual(
    [1, 2, 3, 4].map((t) => `0:${hex(t)}-${hex(t)}`),
  );
  return { db, dbPath, states };
}

function rowsOf(path: string): PrimaryState['rows'] {
  const db = new Database(path, { readonly: true });
  try {
    expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
    return db.prepare('SELECT id, v FROM t ORDER BY id').all() as PrimaryState['rows'];
  } finally {
    db.close();
  }
}

/** verify must fail with exit 1 and name each expected problem on stdout. */
function expectProblems(result: CliResult, ...mentions: RegExp[]): void {
  expect(result.code).toBe(1);
  const problems = result.stdout.split('\n').filter((line) => line.startsWith('problem: '));
  expect(problems.length).toBeGreaterThanOrEqual(mentions.length);
  for (const mention of mentions) expect(problems.some((line) => mention.test(line))).toBe(true);
  expect(result.stdout).not.toMatch(/^ok:/m);
}

function flipByte(bytes: Uint8Array, offset: number): Uint8Array {
  const copy = Uint8Array.from(bytes);
  copy[offset] = (copy[offset] ?? 0) ^ 0x40;
  return copy;
}

describe('ltxvfs verify and restore on a file replica', () => {
  let tmp: TempDir;
  let pristine: string;
  let states: PrimaryState[];
  let primary: Database.Database;
  let caseNo = 0;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-cli-verify-');
    pristine = join(tmp.dir, 'replica');
    const made = await replicateFourTxids(tmp.dir, pristine);
    primary = made.db;
    states = made.states;
  }, 120_000);

  afterAll(async () => {
    primary?.close();
    await tmp?.cleanup();
  });

  /** A copy of the undamaged replica to break in one way. */
  async function copyOfReplica(): Promise<{ dir: string; l0: string; l9: string }> {
    const dir = join(tmp.dir, `case-${caseNo++}`);
    await cp(pristine, dir, { recursive: true });
    return { dir, l0: join(dir, 'ltx', '0'), l9: join(dir, 'ltx', '9') };
  }

  it('says ok with exit 0 on the undamaged replica', async () => {
    const result = await runCli(['verify', pristine]);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok: 4 files/m);
    expect(result.stdout).not.toContain('problem:');
  });

  it('names a gap (a missing L0 file)', async () => {
    const r = await copyOfReplica();
    await unlink(join(r.l0, l0Name(3, 3)));
    const result = await runCli(['verify', r.dir]);
    expectProblems(result, new RegExp(`${hex(4)}-${hex(4)}\\.ltx: gap after .*${hex(2)}-${hex(2)}\\.ltx`));
  });

  it('names an overlap', async () => {
    const r = await copyOfReplica();
    // A second writer's file covering 3..4 next to the existing 3 and 4 (content of a real file).
    await cp(join(r.l0, l0Name(4, 4)), join(r.l0, l0Name(3, 4)));
    const result = await runCli(['verify', r.dir]);
    expectProblems(result, /overlaps/);
  });

  it('names a corrupt file', async () => {
    const r = await copyOfReplica();
    const path = join(r.l0, l0Name(2, 2));
    const bytes = await readFile(path);
    await writeFile(path, flipByte(bytes, Math.floor(bytes.length / 2)));
    const result = await runCli(['verify', r.dir]);
    expectProblems(result, new RegExp(`level 0 ${hex(2)}-${hex(2)}\\.ltx: LTX_`));
  });

  it('names a file whose header disagrees with its name', async () => {
    const r = await copyOfReplica();
    await rename(join(r.l0, l0Name(4, 4)), join(r.l0, l0Name(4, 5)));
    const result = await runCli(['verify', r.dir]);
    expectProblems(result, new RegExp(`${hex(4)}-${hex(5)}\\.ltx: header says TXIDs ${hex(4)}-${hex(4)}`));
  });

  it('names a snapshot that does not start at TXID 1', async () => {
    const r = await copyOfReplica();
    await cp(join(r.l0, l0Name(2, 2)), join(r.l9, l0Name(2, 2)), { recursive: true });
    const result = await runCli(['verify', r.dir]);
    expectProblems(result, new RegExp(`level 9 ${hex(2)}-${hex(2)}\\.ltx: a snapshot must start at TXID 1`));
  });

  it('restores every TXID with --txid to exactly the rows the primary had then', async () => {
    for (const state of states) {
      const out = join(tmp.dir, `at-${state.txid}.db`);
      const result = await runCli(['restore', pristine, '-o', out, '--txid', String(state.txid)]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(rowsOf(out)).toEqual(state.rows);
    }
    // The three TXID notations name the same state.
    for (const notation of ['0x2', hex(2)]) {
      const out = join(tmp.dir, `notation-${notation}.db`);
      expect((await runCli(['restore', pristine, '-o', out, '--txid', notation])).code).toBe(0);
      expect(rowsOf(out)).toEqual(states[1]?.rows);
    }
  });

  it('restores with --timestamp to the newest state created at or before that time', async () => {
    for (const state of states.slice(0, 3)) {
      const out = join(tmp.dir, `time-${state.txid}.db`);
      const result = await runCli(['restore', pristine, '-o', out, '--timestamp', state.after]);
      expect(result.stderr).toBe('');
      expect(result.code).toBe(0);
      expect(rowsOf(out)).toEqual(state.rows);
    }
  });

  it('refuses to overwrite an existing file without --force, and overwrites with it', async () => {
    const out = join(tmp.dir, 'existing.db');
    await writeFile(out, 'precious');
    const refused = await runCli(['restore', pristine, '-o', out]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    expect(refused.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(refused.stderr).toContain(out);
    expect(await readFile(out, 'utf8')).toBe('precious');
    const forced = await runCli(['restore', pristine, '-o', out, '--force']);
    expect(forced.code).toBe(0);
    expect(rowsOf(out)).toEqual(states[3]?.rows);
  });

  it('names the TXIDs the replica holds for an unknown TXID, and leaves no file behind', async () => {
    const out = join(tmp.dir, 'unknown.db');
    const result = await runCli(['restore', pristine, '-o', out, '--txid', '99']);
    expect(result.code).not.toBe(0);
    const line = result.stderr.trimEnd();
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toContain('TXID_NOT_AVAILABLE');
    expect(line).toContain(hex(99));
    expect(line).toContain(`${hex(1)}..${hex(4)}`);
    const left = (await readdir(tmp.dir)).filter((f) => f.startsWith('unknown.db'));
    expect(left).toEqual([]);
  });

  it('names an output path that cannot be written, before fetching anything', async () => {
    const missing = join(tmp.dir, 'no-such-dir', 'out.db');
    const noDir = await runCli(['restore', pristine, '-o', missing]);
    expect(noDir.code).toBe(1);
    expect(noDir.stderr.trimEnd()).toBe(
      `ltxvfs: RESTORE_OUTPUT: directory ${dirname(missing)} of ${missing} does not exist`,
    );
    const dir = join(tmp.dir, 'a-directory');
    await mkdir(dir);
    for (const extra of [[], ['--force']]) {
      const onDir = await runCli(['restore', pristine, '-o', dir, ...extra]);
      expect(onDir.code).toBe(1);
      expect(onDir.stderr).toMatch(/^ltxvfs: RESTORE_OUTPUT: .* is a directory/);
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it('names a full or read-only file system and leaves nothing behind (small tmpfs)', async (ctx) => {
    for (const [options, expected] of [
      ['size=4k', /RESTORE_OUTPUT: cannot write .*full\/out\.db: the disk is full \(ENOSPC\)/],
      ['size=64k,ro', /RESTORE_OUTPUT: cannot write .*full\/out\.db: the file system is read-only \(EROFS\)/],
    ] as const) {
      const mountPoint = join(tmp.dir, 'full');
      await mkdir(mountPoint, { recursive: true });
      const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mountPoint]);
      if (mounted.status !== 0) {
        console.warn(`[skipped] cannot mount a tmpfs here: ${mounted.stderr.toString().trim()}`);
        ctx.skip();
      }
      try {
        const out = join(mountPoint, 'out.db');
        const result = await runCli(['restore', pristine, '-o', out]);
        expect(result.code).toBe(1);
        expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
        expect(result.stderr).toMatch(expected);
        expect(await readdir(mountPoint)).toEqual([]);
      } finally {
        spawnSync('umount', [mountPoint]);
      }
    }
  });

  it('fails on a corrupt file mid-restore without leaving the output or a .tmp', async () => {
    const r = await copyOfReplica();
    const path = join(r.l0, l0Name(3, 3));
    const bytes = await readFile(path);
    await writeFile(path, flipByte(bytes, bytes.length - 20));
    const outDir = join(tmp.dir, 'corrupt-restore');
    await mkdir(outDir);
    const out = join(outDir, 'out.db');
    const result = await runCli(['restore', r.dir, '-o', out]);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(l0Name(3, 3));
    expect(await readdir(outDir)).toEqual([]);
  });
});

describeS3('ltxvfs verify and restore on an S3 replica', () => {
  let tmp: TempDir;
  let bucket: TestBucket;
  let states: PrimaryState[];
  let primary: Database.Database;
  const key = (min: number, max: number, level = 0) =>
    `${bucket.path}/${level.toString(16).padStart(4, '0')}/${l0Name(min, max)}`;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-cli-verify-s3-');
    bucket = await createTestBucket('cli-verify');
    const made = await replicateFourTxids(tmp.dir, bucket.url, s3Env());
    primary = made.db;
    states = made.states;
  }, 180_000);

  afterAll(async () => {
    primary?.close();
    await tmp?.cleanup();
  });

  it('verifies clean, restores a TXID, then names a corrupt object and a gap', async () => {
    const env = s3Env();
    const clean = await runCli(['verify', bucket.url], env);
    expect(clean.code).toBe(0);
    expect(clean.stdout).toMatch(/^ok: 4 files/m);

    const out = join(tmp.dir, 'at-2.db');
    expect((await runCli(['restore', bucket.url, '-o', out, '--txid', '2'], env)).code).toBe(0);
    expect(rowsOf(out)).toEqual(states[1]?.rows);

    const s3 = adminS3Client();
    const got = await s3.send(new GetObjectCommand({ Bucket: bucket.bucket, Key: key(2, 2) }));
    const bytes = await got.Body?.transformToByteArray();
    if (!bytes) throw new Error('empty object');
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket.bucket,
        Key: key(2, 2),
        Body: flipByte(bytes, Math.floor(bytes.length / 2)),
      }),
    );
    await s3.send(new DeleteObjectCommand({ Bucket: bucket.bucket, Key: key(3, 3) }));
    const damaged = await runCli(['verify', bucket.url], env);
    expectProblems(
      damaged,
      new RegExp(`level 0 ${hex(2)}-${hex(2)}\\.ltx: LTX_`),
      new RegExp(`${hex(4)}-${hex(4)}\\.ltx: gap after`),
    );
  });
});
