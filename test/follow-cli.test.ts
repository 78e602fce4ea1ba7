/**
 * `ltxvfs restore --follow` refuses what it cannot honour with one clear line and exit 1, and
 * leaves the output file as it was.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileReplicaClient } from '../src/storage/index.js';
import { fillTable, TestPrimary } from './support/replica-fixture.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
let tmp: TempDir;
let replicaDir: string;

const hide = join(import.meta.dirname, 'support', 'hide-better-sqlite3.mjs');

function run(
  args: string[],
  preload: string[] = [],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...preload, cli, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
  tmp = await makeTempDir('ltxvfs-follow-cli-');
  replicaDir = join(tmp.dir, 'replica');
  const client = new FileReplicaClient(replicaDir);
  const primary = new TestPrimary(client, tmp.dir);
  fillTable(primary.db, 50, 50);
  await primary.sync();
  primary.close();
  await client.close();
});

afterAll(async () => {
  await tmp?.cleanup();
});

describe('restore --follow arguments', () => {
  it.each([
    [['--follow', '--txid', '1'], /BAD_ARGUMENT: --follow follows the latest state/],
    [['--follow', '--timestamp', '2026-01-01T00:00:00Z'], /BAD_ARGUMENT: --follow follows the latest state/],
    [['--follow-interval', '1s'], /BAD_ARGUMENT: --follow-interval and --verbose need --follow/],
    [['--follow', '--follow-interval', 'soon'], /BAD_ARGUMENT: invalid --follow-interval "soon"/],
    [['--follow', '--follow-interval', '0'], /BAD_ARGUMENT: --follow-interval must be positive/],
  ])('%j is refused with one line', async (extra, message) => {
    const out = join(tmp.dir, 'never.db');
    const r = await run(['restore', replicaDir, '-o', out, ...extra]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(message);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses an existing file that is not a followed copy, and leaves it alone', async () => {
    const out = join(tmp.dir, 'mine.db');
    writeFileSync(out, 'precious');
    const r = await run(['restore', replicaDir, '-o', out, '-f']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/BAD_ARGUMENT: .*mine\.db already exists and is not a followed copy .*--force/);
    expect(readFileSync(out, 'utf8')).toBe('precious');
  });

  it('without better-sqlite3 fails before restoring anything: no file, no state file', async () => {
    const out = join(tmp.dir, 'no-package.db');
    const r = await run(['restore', replicaDir, '-o', out, '--follow'], ['--import', hide]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/MISSING_DEPENDENCY: follow mode .*better-sqlite3/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${out}.ltxvfs-follow.json`)).toBe(false);
    expect(existsSync(`${out}.ltxvfs-follow-init`)).toBe(false);
  });
});
