/**
 * better-sqlite3 is an optional peer dependency: a read-only install has no native module to
 * build. With the package hidden from the process (test/support/hide-better-sqlite3.mjs makes
 * both import and require fail as they do when it is not installed), the read side works and
 * the features that need it fail with one MISSING_DEPENDENCY line naming the package.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli as runCliWith } from './support/cli.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const runCli = (args: string[], hidden: boolean) => runCliWith(args, { preload: hidden ? [hide] : [] });

const projectRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const hide = join(projectRoot, 'test', 'support', 'hide-better-sqlite3.mjs');

describe('a reader-only install (no better-sqlite3)', () => {
  let tmp: TempDir;
  let dbPath: string;
  let replica: string;

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-no-bsq-');
    dbPath = join(tmp.dir, 'app.db');
    replica = join(tmp.dir, 'replica');
    const db = new Database(dbPath);
    db.pragma('journal_mode = wal');
    db.exec('CREATE TABLE t (x); INSERT INTO t VALUES (1), (2), (3)');
    db.close();
    const made = await runCli(['replicate', dbPath, replica, '--once'], false);
    expect(made.code).toBe(0);
  });

  afterAll(async () => {
    await tmp?.cleanup();
  });

  it('is what package.json declares: an optional peer dependency, not a dependency', () => {
    const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8'));
    expect(pkg.dependencies['better-sqlite3']).toBeUndefined();
    expect(pkg.peerDependencies['better-sqlite3']).toMatch(/^\^12\./);
    expect(pkg.peerDependenciesMeta['better-sqlite3']).toEqual({ optional: true });
  });

  it('the preload really hides the package', async () => {
    const probe = await new Promise<string>((resolve) => {
      execFile(
        process.execPath,
        [
          '--import',
          hide,
          '-e',
          "try { require('better-sqlite3'); console.log('found') } catch (e) { console.log(e.code) }",
        ],
        (_err, stdout) => resolve(stdout.trim()),
      );
    });
    expect(probe).toBe('MODULE_NOT_FOUND');
  });

  it('query, ls, verify and restore work without it', async () => {
    const query = await runCli(['query', replica, 'SELECT sum(x) AS s FROM t', '--json'], true);
    expect(query.stderr).toBe('');
    expect(JSON.parse(query.stdout)).toEqual([{ s: 6 }]);
    expect((await runCli(['ls', replica], true)).code).toBe(0);
    expect((await runCli(['verify', replica], true)).code).toBe(0);
    const out = join(tmp.dir, 'restored.db');
    expect((await runCli(['restore', replica, '-o', out], true)).code).toBe(0);
    const restored = new Database(out, { readonly: true });
    expect(restored.prepare('SELECT sum(x) AS s FROM t').get()).toEqual({ s: 6 });
    restored.close();
  });

  it('replicate, demo and restore --follow name the missing package', async () => {
    const cases: Array<[string[], string]> = [
      [['replicate', dbPath, replica, '--once'], 'the writer'],
      [['demo', '--duration', '1s'], 'ltxvfs demo'],
      [['restore', replica, '-o', join(tmp.dir, 'followed.db'), '--follow'], 'follow mode'],
    ];
    for (const [args, feature] of cases) {
      const result = await runCli(args, true);
      expect(result.code).toBe(1);
      const lines = result.stderr.trimEnd().split('\n');
      expect(lines.at(-1)).toMatch(
        new RegExp(
          `^ltxvfs: MISSING_DEPENDENCY: ${feature}.* needs the package "better-sqlite3", which is not installed: npm install better-sqlite3@12`,
        ),
      );
    }
  });
});
