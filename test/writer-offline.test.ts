/**
 * Changes made while no replicator runs (issue 10, defect 1): a cron-style `replicate --once`,
 * an application in another process that writes and closes (SQLite checkpoints and deletes the
 * WAL on the last close), truncates the WAL, writes in rollback mode or VACUUMs, then
 * `replicate --once` again. Each time the restored replica must hold what the primary holds, as
 * SQLite itself reads both files.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type TempDir } from './support/tmp.js';

const root = join(import.meta.dirname, '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

let tmp: TempDir;
beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-offline-');
});
afterAll(() => tmp.cleanup());

/** The application: a separate process with its own better-sqlite3 connection. */
function app(dbPath: string, script: string): void {
  const code = `
    const Database = require('better-sqlite3');
    const db = new Database(${JSON.stringify(dbPath)});
    ${script}
    db.close();
  `;
  execFileSync(process.execPath, ['-e', code], { cwd: root, stdio: 'pipe' });
}

function replicateOnce(dbPath: string, replica: string): void {
  const r = spawnSync(process.execPath, [cli, 'replicate', dbPath, replica, '--once'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

/** Every table's rows and the schema, as SQLite reads the file. */
function contents(path: string): unknown {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    const schema = db.prepare('SELECT type, name, sql FROM sqlite_schema ORDER BY name').all() as {
      type: string;
      name: string;
    }[];
    const rows: Record<string, unknown[]> = {};
    for (const s of schema)
      if (s.type === 'table') rows[s.name] = db.prepare(`SELECT * FROM "${s.name}" ORDER BY rowid`).all();
    return {
      schema,
      rows,
      integrity: db.pragma('integrity_check', { simple: true }),
      pageSize: db.pragma('page_size', { simple: true }),
      pageCount: db.pragma('page_count', { simple: true }),
    };
  } finally {
    db.close();
  }
}

/** The replica's L0 files in TXID order, as `ltxvfs ls --json` lists them. */
function listL0(replica: string): { minTxid: number; maxTxid: number; size: number }[] {
  const r = spawnSync(process.execPath, [cli, 'ls', replica, '--level', '0', '--json'], { encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  const files = JSON.parse(r.stdout) as {
    minTxid: string | number;
    maxTxid: string | number;
    size: number;
  }[];
  return files
    .map((f) => ({
      minTxid: Number.parseInt(String(f.minTxid), 16),
      maxTxid: Number.parseInt(String(f.maxTxid), 16),
      size: f.size,
    }))
    .sort((a, b) => a.minTxid - b.minTxid);
}

function expectRestoreEqualsPrimary(dbPath: string, replica: string, label: string): void {
  const out = join(tmp.dir, `${label}-restored.db`);
  const r = spawnSync(process.execPath, [cli, 'restore', replica, '-o', out, '--force'], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  const primary = contents(dbPath);
  expect(contents(out)).toEqual(primary);
}

function setup(name: string, walMode: boolean) {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  const dbPath = join(dir, 'app.db');
  const replica = join(dir, 'replica');
  app(
    dbPath,
    `${walMode ? "db.pragma('journal_mode = WAL');" : ''}
     db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
     const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
     for (let i = 0; i < 20; i++) ins.run('first ' + i);`,
  );
  replicateOnce(dbPath, replica);
  expectRestoreEqualsPrimary(dbPath, replica, `${name}-0`);
  return { dbPath, replica };
}

const insert50 = `{
  const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
  db.transaction(() => { for (let i = 0; i < 50; i++) ins.run('offline ' + i + ' ' + 'x'.repeat(200)); })(); }`;

describe('replicate --once sees changes made while no replicator ran', () => {
  for (const walAtFirstSync of [true, false]) {
    const mode = walAtFirstSync ? 'wal' : 'rollback-first';
    it(`${mode}: the app writes 50 rows and closes (WAL checkpointed and deleted)`, () => {
      const { dbPath, replica } = setup(`deleted-${mode}`, walAtFirstSync);
      for (let round = 1; round <= 3; round++) {
        app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50}`);
        expect(existsSync(`${dbPath}-wal`)).toBe(false);
        replicateOnce(dbPath, replica);
        expectRestoreEqualsPrimary(dbPath, replica, `deleted-${mode}-${round}`);
      }
    });
  }

  it('the app truncates the WAL (wal_checkpoint(TRUNCATE)) before it closes', () => {
    const { dbPath, replica } = setup('truncated', true);
    for (let round = 1; round <= 2; round++) {
      app(
        dbPath,
        `db.pragma('journal_mode = WAL'); ${insert50}
         db.pragma('wal_checkpoint(TRUNCATE)');
         // exit without closing: the WAL file stays behind, 0 bytes long
         process.exit(0);`,
      );
      expect(statSync(`${dbPath}-wal`).size).toBe(0);
      replicateOnce(dbPath, replica);
      expectRestoreEqualsPrimary(dbPath, replica, `truncated-${round}`);
    }
  });

  it('the app writes in rollback-journal mode', () => {
    const { dbPath, replica } = setup('rollback', true);
    for (let round = 1; round <= 2; round++) {
      app(dbPath, `db.pragma('journal_mode = DELETE'); ${insert50}`);
      replicateOnce(dbPath, replica);
      expectRestoreEqualsPrimary(dbPath, replica, `rollback-${round}`);
    }
  });

  it('an offline VACUUM, in rollback and in WAL mode', () => {
    const { dbPath, replica } = setup('vacuum', true);
    app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50} db.exec('DELETE FROM t WHERE id % 2 = 0');`);
    replicateOnce(dbPath, replica);
    app(dbPath, `db.pragma('journal_mode = DELETE'); db.exec('VACUUM');`);
    replicateOnce(dbPath, replica);
    expectRestoreEqualsPrimary(dbPath, replica, 'vacuum-1');
    app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50} db.exec('VACUUM');`);
    replicateOnce(dbPath, replica);
    expectRestoreEqualsPrimary(dbPath, replica, 'vacuum-2');
  });

  for (const walAtFirstSync of [true, false]) {
    const mode = walAtFirstSync ? 'wal' : 'rollback-first';
    it(`${mode}: an offline page_size change (rollback mode, page_size, VACUUM, back to WAL)`, () => {
      const { dbPath, replica } = setup(`page-size-${mode}`, walAtFirstSync);
      // Up (4096 -> 8192), then down (8192 -> 1024, more pages than before), then 4096 again with
      // rows written in WAL mode after the change and the WAL left behind (not checkpointed).
      const steps: { size: number; keepWal: boolean }[] = [
        { size: 8192, keepWal: false },
        { size: 1024, keepWal: false },
        { size: 4096, keepWal: true },
      ];
      for (const [round, step] of steps.entries()) {
        app(
          dbPath,
          `db.pragma('journal_mode = DELETE');
           db.pragma('page_size = ${step.size}');
           db.exec('VACUUM');
           db.pragma('journal_mode = WAL');
           ${insert50}
           ${step.keepWal ? 'process.exit(0);' : ''}`,
        );
        expect(new Database(dbPath, { readonly: true }).pragma('page_size', { simple: true })).toBe(
          step.size,
        );
        replicateOnce(dbPath, replica);
        expectRestoreEqualsPrimary(dbPath, replica, `page-size-${mode}-${round}`);
        // The VFS reads it too (its chain starts at the L9 snapshot written at the change).
        const q = spawnSync(
          process.execPath,
          [cli, 'query', replica, 'SELECT * FROM t ORDER BY id', '--json'],
          {
            encoding: 'utf8',
          },
        );
        expect(q.status, q.stderr).toBe(0);
        expect(JSON.parse(q.stdout)).toEqual((contents(dbPath) as { rows: { t: unknown[] } }).rows.t);
      }
      const v = spawnSync(process.execPath, [cli, 'verify', replica], { encoding: 'utf8' });
      expect(v.status, v.stdout + v.stderr).toBe(0);
      // With only the L0 files (no L9 snapshot, no compaction output), restore walks the L0
      // chain across every page size change.
      const l0Only = join(tmp.dir, `page-size-${mode}-l0-only`);
      cpSync(replica, l0Only, { recursive: true });
      for (const level of readdirSync(join(l0Only, 'ltx')))
        if (level !== '0') rmSync(join(l0Only, 'ltx', level), { recursive: true });
      rmSync(join(l0Only, 'ltxvfs'), { recursive: true, force: true });
      expectRestoreEqualsPrimary(dbPath, l0Only, `page-size-${mode}-l0-only`);
    }, 180_000); // 8 CLI runs and 7 restores: minutes on a loaded 2-core machine
  }

  it('an offline VACUUM that shrinks the file to a fraction, then rows written in WAL mode', () => {
    const { dbPath, replica } = setup('vacuum-shrink', true);
    app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50} ${insert50} ${insert50}`);
    replicateOnce(dbPath, replica);
    app(dbPath, `db.pragma('journal_mode = WAL'); db.exec('DELETE FROM t WHERE id > 5'); db.exec('VACUUM');`);
    replicateOnce(dbPath, replica);
    expectRestoreEqualsPrimary(dbPath, replica, 'vacuum-shrink-1');
    app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50} process.exit(0);`);
    replicateOnce(dbPath, replica);
    expectRestoreEqualsPrimary(dbPath, replica, 'vacuum-shrink-2');
  });

  it('a restart with no local state (.app.db-ltxvfs removed): the TXIDs continue, the next L0 holds every page', () => {
    const { dbPath, replica } = setup('no-local-state', true);
    app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50}`);
    replicateOnce(dbPath, replica);
    const before = listL0(replica);
    rmSync(join(tmp.dir, 'no-local-state', '.app.db-ltxvfs'), { recursive: true, force: true });
    app(dbPath, `db.pragma('journal_mode = WAL'); ${insert50}`);
    replicateOnce(dbPath, replica);
    const after = listL0(replica);
    const last = before.at(-1);
    const added = after.slice(before.length);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(added.length, JSON.stringify(after)).toBeGreaterThanOrEqual(1);
    // The sequence goes on from the replica's newest TXID, with no gap and no reuse.
    expect(added[0]?.minTxid).toBe((last?.maxTxid ?? 0) + 1);
    for (let i = 1; i < added.length; i++) expect(added[i]?.minTxid).toBe((added[i - 1]?.maxTxid ?? 0) + 1);
    // Snapshot-style: with no local state the writer cannot prove which pages changed, so the
    // first new L0 carries every page of the database, as many as SQLite counts in the file.
    const first = added[0];
    const name = `${(first?.minTxid ?? 0).toString(16).padStart(16, '0')}-${(first?.maxTxid ?? 0).toString(16).padStart(16, '0')}.ltx`;
    const inspected = spawnSync(
      process.execPath,
      [cli, 'inspect', join(replica, 'ltx', '0', name), '--json'],
      {
        encoding: 'utf8',
      },
    );
    expect(inspected.status, inspected.stderr).toBe(0);
    const pages = (JSON.parse(inspected.stdout) as { pages: { pgno: number }[] }).pages.map((p) => p.pgno);
    const db = new Database(dbPath, { readonly: true });
    const pageCount = db.pragma('page_count', { simple: true }) as number;
    db.close();
    expect(pageCount).toBeGreaterThan(3);
    expect(pages).toEqual(Array.from({ length: pageCount }, (_, i) => i + 1));
    expectRestoreEqualsPrimary(dbPath, replica, 'no-local-state');
  });

  it('a rollback-journal database is switched to WAL mode by replicate (file header bytes 18-19 = 2)', () => {
    const { dbPath } = setup('switched', false);
    const header = Buffer.alloc(20);
    const fd = openSync(dbPath, 'r');
    try {
      readSync(fd, header, 0, 20, 0);
    } finally {
      closeSync(fd);
    }
    // https://www.sqlite.org/fileformat2.html: read/write versions 2 = WAL, 1 = rollback journal.
    expect([header[18], header[19]]).toEqual([2, 2]);
  });
});
