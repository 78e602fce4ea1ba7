/**
 * `replicate --once` from cron runs the compaction, snapshot and retention work that is due
 * (issue 10, "--once and compaction"), so L0 files do not pile up; `--no-compaction` leaves L0
 * only. Short configured intervals stand in for a day of cron runs: between runs the test waits
 * for the next L1 boundary (wall-clock truncation, as the scheduler computes it) to pass, so what
 * is due follows from the boundaries crossed, not from how fast the machine is.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLtxFileName } from '../src/ltx/names.js';
import { expectRestoreEquals } from './support/restore-compare.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-once-compaction-');
});
afterAll(() => tmp.cleanup());

/** Levels 1 s and 2 s, snapshots every 4 s, compacted L0 files kept 1 s. */
const SCHEDULE = ['--levels', '1s,2s', '--snapshot-interval', '4s', '--l0-retention', '1s'];
const L1_MS = 1000;

function replicateOnce(dbPath: string, replica: string, extra: string[]): void {
  const r = spawnSync(process.execPath, [cli, 'replicate', dbPath, replica, '--once', ...extra], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
}

/** The app writes in its own connection and closes (the WAL is checkpointed and deleted). */
function appWrites(dbPath: string, round: number): void {
  const db = new Database(dbPath);
  db.pragma('journal_mode = WAL');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, round INTEGER, v TEXT)');
  const ins = db.prepare('INSERT INTO t (round, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 0; i < 20; i++) ins.run(round, `row ${i} of round ${round} ${'x'.repeat(100)}`);
  })();
  db.close();
}

/** Resolves once the wall clock is past the next multiple of `ms` (a compaction boundary). */
async function pastNextBoundary(ms: number): Promise<void> {
  const next = (Math.floor(Date.now() / ms) + 1) * ms;
  while (Date.now() <= next) await new Promise((r) => setTimeout(r, next - Date.now() + 5));
}

/** File names (TXID ranges) per level directory of a file replica. */
function levels(replica: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const ltx = join(replica, 'ltx');
  for (const level of readdirSync(ltx)) {
    const names = readdirSync(join(ltx, level)).filter((n) => parseLtxFileName(n) !== null);
    if (names.length > 0) out.set(Number(level), names.sort());
  }
  return out;
}

/** The rows both sides of a restore are compared by. */
const ROWS = 'SELECT * FROM t ORDER BY id';

describe('replicate --once compacts what is due', () => {
  it('repeated --once runs over several boundaries produce L1, L2 and L9 files, L0 retention prunes, the replica restores', async () => {
    const dir = join(tmp.dir, 'compacting');
    mkdirSync(dir);
    const dbPath = join(dir, 'app.db');
    const replica = join(dir, 'replica');
    for (let round = 1; round <= 6; round++) {
      appWrites(dbPath, round);
      replicateOnce(dbPath, replica, SCHEDULE);
      await pastNextBoundary(L1_MS);
    }
    // One more run after the last boundary: everything before it is due for L1.
    replicateOnce(dbPath, replica, SCHEDULE);
    const held = levels(replica);
    expect(held.get(1)?.length ?? 0, JSON.stringify([...held])).toBeGreaterThan(0);
    expect(held.get(2)?.length ?? 0, JSON.stringify([...held])).toBeGreaterThan(0);
    expect(held.get(9)?.length ?? 0, JSON.stringify([...held])).toBeGreaterThan(0);
    // L0 retention ran: 6 syncs made 6 L0 files; those L1 covers and older than 1 s are gone.
    expect(held.get(0)?.length ?? 0, JSON.stringify([...held])).toBeLessThan(6);
    expectRestoreEquals(dbPath, replica, join(dir, 'restored.db'), ROWS);
    const v = spawnSync(process.execPath, [cli, 'verify', replica], { encoding: 'utf8' });
    expect(v.status, v.stdout + v.stderr).toBe(0);
  });

  it('--no-compaction leaves L0 files only', async () => {
    const dir = join(tmp.dir, 'no-compaction');
    mkdirSync(dir);
    const dbPath = join(dir, 'app.db');
    const replica = join(dir, 'replica');
    for (let round = 1; round <= 3; round++) {
      appWrites(dbPath, round);
      replicateOnce(dbPath, replica, [...SCHEDULE, '--no-compaction']);
      await pastNextBoundary(L1_MS);
    }
    replicateOnce(dbPath, replica, [...SCHEDULE, '--no-compaction']);
    expect([...levels(replica).keys()]).toEqual([0]);
    expect(levels(replica).get(0)).toHaveLength(3);
    expect(existsSync(join(replica, 'ltx', '1'))).toBe(false);
    expectRestoreEquals(dbPath, replica, join(dir, 'restored.db'), ROWS);
  });
});
