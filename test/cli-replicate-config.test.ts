import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openReplicaClient } from '../src/storage/index.js';
import { defined } from './support/defined.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

// `ltxvfs replicate --config` through the built CLI (npm test builds dist/ first).
const cli = join(import.meta.dirname, '..', 'dist', 'src', 'cli', 'main.js');
let tmp: TempDir;
beforeAll(async () => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: build first (npm run build; npm test does it)`);
  tmp = await makeTempDir('ltxvfs-config-cli-');
});
afterAll(() => tmp.cleanup());

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { timeout: 30_000 }, (_e, _out, stderr) =>
      resolve({ code: child.exitCode, stderr }),
    );
  });
}

describe('ltxvfs replicate --config', () => {
  it('replicates every database of the file to its own replica', async () => {
    for (const name of ['a', 'b']) {
      const db = new Database(join(tmp.dir, `${name}.db`));
      db.pragma('journal_mode = WAL');
      db.exec(`CREATE TABLE t (x); INSERT INTO t VALUES ('${name}')`);
      db.close();
    }
    const file = join(tmp.dir, 'ltxvfs.yml');
    writeFileSync(
      file,
      `levels: [1s, 2s]\ndbs:\n  - path: a.db\n    replica: { url: ${join(tmp.dir, 'ra')} }\n  - path: b.db\n    replica: { url: "file://${join(tmp.dir, 'rb')}" }\n`,
    );
    const result = await run(['replicate', '--config', file, '--once']);
    expect(result.code, result.stderr).toBe(0);
    for (const [replica, row] of [
      ['ra', 'a'],
      ['rb', 'b'],
    ]) {
      const files = await openReplicaClient(join(tmp.dir, defined(replica))).listFiles(0);
      expect(files.map((f) => [f.minTxid, f.maxTxid])).toEqual([[1, 1]]);
      // each replica holds its own database (not the other's, not an empty one)
      const out = join(tmp.dir, `${replica}-restored.db`);
      const restored = await run(['restore', join(tmp.dir, defined(replica)), '-o', out]);
      expect(restored.code, restored.stderr).toBe(0);
      const db = new Database(out, { readonly: true });
      expect(db.prepare('SELECT x FROM t').all()).toEqual([{ x: row }]);
      db.close();
    }
  });

  it.each([
    [
      'dbs:\n  - path: a.db\n    replica: { url: /tmp/x }\n    snapshot: { intervall: 1h }\n',
      [],
      /dbs\[0\]\.snapshot\.intervall: unknown key/,
    ],
    [
      'levels: [5m, 30s]\ndbs:\n  - path: a.db\n    replica: { url: /tmp/x }\n',
      [],
      /levels\[1\] \(L2\).*shorter than L1/,
    ],
    [
      'dbs:\n  - path: a.db\n    replica: { url: /tmp/x }\n',
      ['--levels', '1s'],
      /set --levels in the file instead/,
    ],
  ])('refuses a bad configuration at start-up: %s %s', async (text, extra, message) => {
    const file = join(tmp.dir, 'bad.yml');
    writeFileSync(file, text);
    const result = await run(['replicate', '--config', file, ...extra]);
    expect(result.code).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/CONFIG_INVALID/);
    expect(lines[0]).toMatch(message);
    expect(lines[0]).toContain('bad.yml');
  });

  it('refuses bad flags without a config file', async () => {
    const result = await run([
      'replicate',
      join(tmp.dir, 'a.db'),
      join(tmp.dir, 'rc'),
      '--levels',
      '30s,5m,1m',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/CONFIG_INVALID.*--levels\[2\] \(L3\)/);
  });

  it('refuses bad compaction flags with --once too, before writing anything', async () => {
    const replica = join(tmp.dir, 'rd');
    const result = await run(['replicate', join(tmp.dir, 'a.db'), replica, '--once', '--retention', '5x']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/--retention/);
    expect(existsSync(replica)).toBe(false);
  });
});
