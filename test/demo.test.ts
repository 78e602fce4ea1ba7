import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * `ltxvfs demo` (= `npm start`) end to end, as a newcomer runs it: the built CLI in a child
 * process, a short --duration. It must tell the whole story, agree with the primary at the end,
 * exit 0, and leave nothing behind unless asked to.
 */
const CLI = path.resolve('dist/src/cli/main.js');

function runDemo(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, 'demo', ...args], { encoding: 'utf8', timeout: 90_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('ltxvfs demo', () => {
  const temps: TempDir[] = [];
  afterAll(async () => {
    for (const t of temps) await t.cleanup();
  });

  it('needs the built CLI (npm test builds it first)', () => {
    expect(existsSync(CLI), `${CLI} is missing: run \`npm run build\``).toBe(true);
  });

  it('tells the story, exits 0 and removes its temp dir', () => {
    const { status, stdout, stderr } = runDemo(['--duration', '8s']);
    expect(stderr).toBe('');
    expect(status).toBe(0);
    expect(stdout).toMatch(/primary\s+seeded 20,000 reviews/);
    expect(stdout).toMatch(/replicate first LTX file holds every page: TXID 0000000000000001/);
    expect(stdout).toMatch(/replica\s+opened in \d+ ms, first query answered \d+ ms later: #20000 /);
    expect(stdout).toMatch(/hydrate\s+done in [\d.]+ s: all \d+ pages/);
    // following: several reports, with TXIDs that only move forward
    const txids = [...stdout.matchAll(/replica\s+TXID ([0-9a-f]{16})\s+([\d,]+) reviews/g)].map((m) =>
      Number.parseInt(defined(m[1]), 16),
    );
    expect(txids.length).toBeGreaterThanOrEqual(4);
    for (let i = 1; i < txids.length; i++)
      expect(defined(txids[i])).toBeGreaterThanOrEqual(defined(txids[i - 1]));
    expect(defined(txids.at(-1))).toBeGreaterThan(defined(txids[0]));
    // history: the old version of review #1 differs from the latest one
    const history = [...stdout.matchAll(/history\s+(.+?)\s+-> (#1 .*)/g)];
    expect(history).toHaveLength(2);
    expect(defined(history[0])[1]).toMatch(/^file:replica\.db\?vfs=ltx&txid=[0-9a-f]{16}$/);
    expect(defined(history[1])[2]).toContain('Changed my mind after a second visit.');
    expect(defined(history[0])[2]).not.toContain('Changed my mind');
    expect(stdout).toMatch(/caught up at TXID [0-9a-f]{16}: ([\d,]+) reviews; the primary has \1 \(same\)/);
    expect(stdout).toContain('ltxvfs restore');
    const dir = /primary\s+(\S+)\/sandwiches\.db/.exec(stdout)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(defined(dir))).toBe(false);
  });

  it('--dir keeps a replica that SQLite and the other commands can use', async () => {
    const temp = await makeTempDir('ltxvfs-demo-test-');
    temps.push(temp);
    const dir = path.join(temp.dir, 'kept');
    const { status, stdout } = runDemo(['--duration', '3s', '--dir', dir]);
    expect(status).toBe(0);
    expect(stdout).toContain(`Kept everything in ${dir}`);
    const l0 = readdirSync(path.join(dir, 'replica', 'ltx', '0'));
    expect(l0).toContain('0000000000000001-0000000000000001.ltx');
    expect(l0.every((name) => /^[0-9a-f]{16}-[0-9a-f]{16}\.ltx$/.test(name))).toBe(true);
    // The replica's newest state equals the primary, as better-sqlite3 reads it after restore.
    const restored = path.join(temp.dir, 'restored.db');
    const restore = spawnSync(process.execPath, [CLI, 'restore', path.join(dir, 'replica'), '-o', restored], {
      encoding: 'utf8',
    });
    expect(restore.stderr).toBe('');
    expect(restore.status).toBe(0);
    const primary = new Database(path.join(dir, 'sandwiches.db'), { readonly: true });
    const copy = new Database(restored, { readonly: true });
    const sql = 'SELECT count(*) AS n, max(id) AS top, sum(rating) AS stars FROM reviews';
    expect(copy.prepare(sql).get()).toEqual(primary.prepare(sql).get());
    primary.close();
    copy.close();
  });
});
