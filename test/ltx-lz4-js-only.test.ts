/**
 * The JS-only LZ4 path end to end: `LTXVFS_LZ4=js` (what a machine without lz4-napi's prebuilt
 * binaries gets) for every child process of the built CLI: `replicate --once` compresses with the
 * JS compressor, `restore` and `query` decode with the JS decoder. The rows come from the
 * better-sqlite3 primary; the restored file is also compared byte for byte with what lz4-napi
 * (a second implementation, lz4_flex) decodes from the same objects, and a replica lz4-napi wrote
 * is decoded by the JS path.
 */
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lz4CompressorKind } from '../src/ltx/lz4-block.js';
import { cliPath, runCli } from './support/cli.js';
import { skipOrFailForMissingTool } from './support/reference-tools.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const JS = { LTXVFS_LZ4: 'js' };
const NATIVE = { LTXVFS_LZ4: '' };

interface Row {
  id: number;
  v: string;
  b: Buffer;
}

describe('LZ4 in JavaScript only (LTXVFS_LZ4=js), end to end through the CLI', () => {
  let tmp: TempDir;
  let primary: Database.Database;
  let rows: Row[];
  const jsReplica = () => join(tmp.dir, 'replica-js');
  const nativeReplica = () => join(tmp.dir, 'replica-native');

  beforeAll(async () => {
    tmp = await makeTempDir('ltxvfs-lz4-js-');
    // Two primaries with the same rows, one replicated by each codec (a replicator keeps its
    // own state next to its database, so one primary cannot feed two replicas).
    const primaries = [
      { path: join(tmp.dir, 'primary-js.db'), replica: jsReplica(), env: JS },
      { path: join(tmp.dir, 'primary-native.db'), replica: nativeReplica(), env: NATIVE },
    ].map((p) => {
      const db = new Database(p.path);
      db.pragma('journal_mode = wal');
      db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL, b BLOB NOT NULL)');
      return { ...p, db, insert: db.prepare('INSERT INTO t (v, b) VALUES (?, ?)') };
    });
    // Text that compresses well and blobs that do not: both branches of the compressor.
    for (let batch = 1; batch <= 3; batch++) {
      const batchRows = Array.from({ length: 200 }, (_, i) => [
        `batch ${batch} row ${i} ${'abc'.repeat(i % 50)}`,
        randomBytes(300),
      ]);
      for (const p of primaries) {
        p.db.transaction(() => {
          for (const [v, b] of batchRows) p.insert.run(v, b);
        })();
        const result = await runCli(['replicate', p.path, p.replica, '--once'], { env: p.env });
        expect(result.stderr).toBe('');
        expect(result.code).toBe(0);
      }
    }
    const [first, second] = primaries;
    if (first === undefined || second === undefined) throw new Error('two primaries');
    primary = first.db;
    second.db.close();
    rows = primary.prepare('SELECT id, v, b FROM t ORDER BY id').all() as Row[];
  }, 120_000);

  afterAll(async () => {
    primary?.close();
    await tmp?.cleanup();
  });

  it('LTXVFS_LZ4=js really selects the JS decoder and compressor in a child process', async () => {
    const { execFileSync } = await import('node:child_process');
    const module = join(cliPath, '..', '..', 'ltx', 'lz4-block.js');
    const probe = `const m = await import(${JSON.stringify(module)}); console.log(m.lz4DecoderKind, m.lz4CompressorKind);`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', probe], {
      env: { ...process.env, ...JS },
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('js pierrec');
  });

  it('restores what the JS compressor wrote with the JS decoder: the primary rows, integrity ok', async () => {
    const out = join(tmp.dir, 'js-js.db');
    const result = await runCli(['restore', jsReplica(), '-o', out], { env: JS });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^restored TXID 0000000000000003 /);
    const db = new Database(out, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.prepare('SELECT id, v, b FROM t ORDER BY id').all()).toEqual(rows);
    } finally {
      db.close();
    }
  });

  it('lz4-napi decodes the JS-written objects to the same bytes, and the JS path decodes what lz4-napi wrote', async (ctx) => {
    if (lz4CompressorKind !== 'native')
      skipOrFailForMissingTool(
        ctx,
        'lz4-napi',
        'an optional dependency with prebuilt binaries: npm ci installs it',
      );
    const jsJs = join(tmp.dir, 'js-js-2.db');
    const jsNative = join(tmp.dir, 'js-native.db');
    const nativeJs = join(tmp.dir, 'native-js.db');
    for (const [replica, out, env] of [
      [jsReplica(), jsJs, JS],
      [jsReplica(), jsNative, NATIVE],
      [nativeReplica(), nativeJs, JS],
    ] as const) {
      const result = await runCli(['restore', replica, '-o', out], { env });
      expect(result.code, result.stderr).toBe(0);
    }
    const reference = await readFile(jsJs);
    expect(reference.length).toBeGreaterThan(3 * 200 * 300);
    expect(Buffer.compare(await readFile(jsNative), reference)).toBe(0);
    const db = new Database(nativeJs, { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      expect(db.prepare('SELECT id, v, b FROM t ORDER BY id').all()).toEqual(rows);
    } finally {
      db.close();
    }
  });

  it('ltxvfs query reads pages through the JS decoder (the VFS path) and answers as SQLite does', async () => {
    const sql = 'SELECT count(*) AS n, sum(length(v)) AS chars, hex(max(b)) AS top FROM t';
    const expected = primary.prepare(sql).get() as { n: number; chars: number; top: string };
    expect(expected.n).toBe(600);
    const result = await runCli(['query', jsReplica(), sql, '--json'], { env: JS });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([expected]);
  });
});
