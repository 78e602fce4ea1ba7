import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeLtxFile, encodeHotPages, hotPageNumbers, type PageReader } from '../src/ltx/index.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

/**
 * Hot pages against SQLite's own account of its pages (the dbstat virtual table): page 1, every
 * page of sqlite_schema, every interior b-tree page.
 */
let tmp: TempDir;
let image: Buffer;
let pageSize: number;
let expected: number[];

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-hot-pages-');
  const path = join(tmp.dir, 'db.sqlite');
  const db = new Database(path);
  db.pragma('journal_mode = DELETE');
  // Enough tables with long definitions that sqlite_schema itself needs interior pages.
  for (let t = 0; t < 120; t++) {
    db.exec(`CREATE TABLE t${t} (id INTEGER PRIMARY KEY, v TEXT, ${'pad_column_name_'.repeat(8)}${t} TEXT)`);
  }
  db.exec('CREATE TABLE big (id INTEGER PRIMARY KEY, k TEXT, v TEXT)');
  db.exec('CREATE INDEX big_k ON big (k)');
  const insert = db.prepare('INSERT INTO big (id, k, v) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let id = 1; id <= 60_000; id++) insert.run(id, `key-${(id * 7919) % 60_000}`, 'x'.repeat(40));
  })();
  pageSize = db.pragma('page_size', { simple: true }) as number;
  const rows = db.prepare('SELECT name, pageno, pagetype FROM dbstat').all() as {
    name: string;
    pageno: number;
    pagetype: string;
  }[];
  expected = [
    ...new Set(
      rows.filter((r) => r.name === 'sqlite_schema' || r.pagetype === 'internal').map((r) => r.pageno),
    ),
  ].sort((a, b) => a - b);
  db.close();
  image = readFileSync(path);
}, 60_000);

afterAll(async () => {
  await tmp.cleanup();
});

const reader =
  (): PageReader =>
  (pgno: number): Uint8Array =>
    new Uint8Array(image.subarray((pgno - 1) * pageSize, pgno * pageSize));

describe('hot pages', () => {
  it('the fixture has a multi-page schema and interior pages of both kinds', () => {
    expect(expected.length).toBeGreaterThan(10);
    expect(image[100]).toBe(0x05); // page 1, the schema root, is an interior table page
    const types = new Set(expected.map((p) => image[(p - 1) * pageSize + (p === 1 ? 100 : 0)]));
    expect(types.has(0x02)).toBe(true);
    expect(types.has(0x05)).toBe(true);
    expect(types.has(0x0d)).toBe(true); // schema leaves
  });

  it('are exactly page 1, the schema pages and the interior pages dbstat reports', () => {
    const commit = image.length / pageSize;
    expect(hotPageNumbers(commit, pageSize, reader())).toEqual(expected);
  });

  it('encode as a valid LTX file whose pages are the database pages', () => {
    const commit = image.length / pageSize;
    const file = encodeHotPages({
      txid: 7,
      commit,
      pageSize,
      timestamp: Date.UTC(2026, 0, 2),
      read: reader(),
    });
    const decoded = decodeLtxFile(file.bytes);
    expect(decoded.header.minTxid).toBe(7);
    expect(decoded.header.maxTxid).toBe(7);
    expect(decoded.header.commit).toBe(commit);
    expect(decoded.pages.map((p) => p.pgno)).toEqual(expected);
    for (const p of decoded.pages) {
      expect(
        Buffer.compare(Buffer.from(p.data), image.subarray((p.pgno - 1) * pageSize, p.pgno * pageSize)),
      ).toBe(0);
    }
    // The file is small next to the database (the estimate: ~0.3% of pages).
    expect(file.bytes.length).toBeLessThan(image.length / 10);
    if (process.env.LTXVFS_HOT_PAGES_OUT) writeFileSync(process.env.LTXVFS_HOT_PAGES_OUT, file.bytes);
  });

  it('refuse TXID 1 (a file starting at TXID 1 is a snapshot and must hold every page)', () => {
    expect(() => encodeHotPages({ txid: 1, commit: 1, pageSize, timestamp: 0, read: reader() })).toThrow(
      expect.objectContaining({ code: 'LTX_ENCODE' }),
    );
  });
});
