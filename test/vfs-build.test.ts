import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isLtxvfsError } from '../src/util/errors.js';
import { createLtx, defaultBuild, type WaSqliteBuild } from '../vfs/index.js';
import { rememberMethodNames } from '../vfs/module.js';
import { MemoryReplica } from './support/vfs-memory-replica.js';

// Which wa-sqlite build runs (JSPI where WebAssembly.Suspending exists, Asyncify otherwise), and
// that each build available on this Node answers like better-sqlite3 on the same bytes, through
// the VFS's synchronous hits and its awaited misses alike.

const hasJspi =
  typeof (globalThis as { WebAssembly?: { Suspending?: unknown } }).WebAssembly?.Suspending === 'function';
const dir = mkdtempSync(join(tmpdir(), 'ltxvfs-vfs-build-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const savedEnv = process.env.LTXVFS_WASM_BUILD;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.LTXVFS_WASM_BUILD;
  else process.env.LTXVFS_WASM_BUILD = savedEnv;
});

function buildDatabase(): { path: string; bytes: Uint8Array } {
  const path = join(dir, 'origin.db');
  const db = new Database(path);
  db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t(v)');
  const insert = db.prepare('INSERT INTO t VALUES (?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 5000; id++) insert.run(id, `v${(id * 7919) % 10007}-${'y'.repeat(id % 50)}`);
  })();
  db.close();
  return { path, bytes: new Uint8Array(readFileSync(path)) };
}

const origin = buildDatabase();
const SQL = [
  'SELECT * FROM t WHERE id = 4321',
  'SELECT id, v FROM t WHERE v > ? ORDER BY v LIMIT 50',
  'SELECT count(*) AS n, sum(length(v)) AS chars FROM t',
];

function oracle(sql: string): unknown[] {
  const db = new Database(origin.path, { readonly: true });
  try {
    return db.prepare(sql).all(...(sql.includes('?') ? ['v5'] : []));
  } finally {
    db.close();
  }
}

describe('wa-sqlite build', () => {
  it(`defaults to ${hasJspi ? 'JSPI' : 'Asyncify'} on Node ${process.versions.node}`, () => {
    delete process.env.LTXVFS_WASM_BUILD;
    expect(defaultBuild()).toBe(hasJspi ? 'jspi' : 'asyncify');
  });

  it('LTXVFS_WASM_BUILD picks a build, and a wrong value is BAD_ARGUMENT', () => {
    process.env.LTXVFS_WASM_BUILD = 'asyncify';
    expect(defaultBuild()).toBe('asyncify');
    process.env.LTXVFS_WASM_BUILD = 'wasm64';
    expect(() => defaultBuild()).toThrow(/LTXVFS_WASM_BUILD/);
    process.env.LTXVFS_WASM_BUILD = 'jspi';
    if (hasJspi) expect(defaultBuild()).toBe('jspi');
    else {
      let error: unknown;
      try {
        defaultBuild();
      } catch (err) {
        error = err;
      }
      expect(isLtxvfsError(error) && error.code === 'BAD_ARGUMENT').toBe(true);
    }
  });

  const builds: WaSqliteBuild[] = hasJspi ? ['asyncify', 'jspi'] : ['asyncify'];
  for (const build of builds) {
    for (const syncHits of [true, false]) {
      it(`${build}: queries equal better-sqlite3 (${syncHits ? 'pages at hand' : 'every page awaited'})`, async () => {
        process.env.LTXVFS_WASM_BUILD = build;
        const replica = new MemoryReplica();
        replica.push(1, origin.bytes);
        replica.syncHits = syncHits;
        const ltx = await createLtx({ instances: 1 });
        try {
          await ltx.registerReplica('r', replica);
          expect(ltx.vfsInstances.map((vfs) => vfs.build)).toEqual([build]);
          const db = await ltx.open('file:r?vfs=ltx');
          for (const sql of SQL) {
            const params = sql.includes('?') ? ['v5'] : [];
            expect(await db.all(sql, params)).toEqual(oracle(sql));
          }
          if (!syncHits) expect(replica.asyncReads).toBeGreaterThan(0);
          const stmt = await db.prepare('SELECT v FROM t WHERE id = ?');
          expect(await stmt.get(77)).toEqual(oracle('SELECT v FROM t WHERE id = 77')[0]);
          await stmt.finalize();
          // A pinned connection's first read awaits its view (the async path of xRead).
          const pinned = await ltx.open('file:r?vfs=ltx&txid=1');
          expect(await pinned.get('SELECT count(*) AS n FROM t')).toEqual({ n: 5000 });
        } finally {
          await ltx.close();
        }
      });
    }
  }
});

describe("wa-sqlite's glue with the VFS method names remembered", () => {
  it('applies to every build installed (a wa-sqlite release with other glue would be noticed here)', () => {
    for (const build of ['wa-sqlite', 'wa-sqlite-async', 'wa-sqlite-jspi']) {
      const source = readFileSync(
        createRequire(import.meta.url).resolve(`@journeyapps/wa-sqlite/dist/${build}.mjs`),
        'utf8',
      );
      const patched = rememberMethodNames(source);
      expect(patched, build).not.toBeNull();
      expect(patched?.includes('UTF8ToString(args.shift())'), build).toBe(false);
      expect(patched?.length, build).toBeGreaterThan(source.length);
    }
    // Glue of another shape loads unchanged.
    expect(rememberMethodNames('var adapters_support=function(){}')).toBeNull();
  });

  it('the glue answers every VFS call by its name: the queries above still equal better-sqlite3 on the plain build', async () => {
    const ltx = await createLtx({ instances: 1 });
    try {
      const replica = new MemoryReplica();
      replica.push(1, origin.bytes);
      await ltx.registerReplica('names.db', replica);
      const db = await ltx.open('file:names.db?vfs=ltx');
      const native = new Database(origin.path, { readonly: true });
      for (let round = 0; round < 2; round++) {
        for (const sql of SQL) {
          const params = sql.includes('?') ? ['v5'] : [];
          expect(await db.all(sql, params)).toEqual(native.prepare(sql).all(...params));
        }
      }
      // The second round ran on the synchronous build (every page was local by then).
      expect(db.fastPathCounts.fast).toBeGreaterThanOrEqual(SQL.length);
      native.close();
      await db.close();
    } finally {
      await ltx.close();
    }
  });
});
