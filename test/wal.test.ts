import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { isLtxvfsError } from '../src/util/errors.js';
import {
  bytesWalSource,
  decodeFrameHeader,
  decodeWalHeader,
  encodeFrameHeader,
  encodeWalHeader,
  readWalFrame,
  scanWal,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WAL_MAGIC_BE,
  walChecksum,
  walFrameSize,
  walPositionAt,
  walSaltPairs,
  walStartPosition,
} from '../src/wal/index.js';
import { defined, flipByte } from './support/defined.js';

const FIXTURES = join(import.meta.dirname, 'fixtures/litestream/benbjohnson-litestream/testdata/wal-reader');
const fixture = (name: string) => new Uint8Array(readFileSync(join(FIXTURES, name, 'wal')));
const tmp = mkdtempSync(join(tmpdir(), 'ltxvfs-wal-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('WAL golden files (Litestream testdata, known answers in SOURCES.md)', () => {
  it('ok: header fields and three valid frames (1,0) (2,2) (2,2)', () => {
    const bytes = fixture('ok');
    const header = decodeWalHeader(bytes);
    expect(header.bigEndianChecksum).toBe(false);
    expect(header.pageSize).toBe(4096);
    expect(header.version).toBe(3007000);
    expect(header.salt1).toBe(0x4875a40b);
    expect(header.salt2).toBe(0xa38de4f5);
    const scan = scanWal(bytesWalSource(bytes), header, walStartPosition(header));
    expect(scan.frames).toBe(3);
    expect(scan.transactions).toBe(2);
    expect(scan.commit).toBe(2);
    expect(scan.end.offset).toBe(12392);
    expect(scan.endReason).toBe('eof');
    expect([...scan.pages.keys()].sort()).toEqual([1, 2]);
    // page data offsets from wal_reader_test.go: frame 1 data at 56, frame 3 data at 8296
    expect(defined(scan.pages.get(1)).offset + WAL_FRAME_HEADER_SIZE).toBe(56);
    expect(defined(scan.pages.get(2)).offset + WAL_FRAME_HEADER_SIZE).toBe(8296);
    const src = bytesWalSource(bytes);
    expect(readWalFrame(src, header, defined(scan.pages.get(2)))).toEqual(bytes.subarray(8296, 12392));
    const frameHeaders = [32, 32 + 4120, 32 + 2 * 4120].map((o) => decodeFrameHeader(bytes.subarray(o)));
    expect(frameHeaders.map((h) => [h.pgno, h.commit])).toEqual([
      [1, 0],
      [2, 2],
      [2, 2],
    ]);
    // the final position's checksum is the one stored in the last frame
    expect(scan.end.checksum1).toBe(defined(frameHeaders[2]).checksum1);
    expect(scan.end.checksum2).toBe(defined(frameHeaders[2]).checksum2);
  });

  it('reading from an offset seeds the checksum from the previous frame', () => {
    const bytes = fixture('ok');
    const header = decodeWalHeader(bytes);
    const src = bytesWalSource(bytes);
    const mid = defined(walPositionAt(src, header, 32 + 2 * 4120));
    expect(mid).not.toBeNull();
    const scan = scanWal(src, header, mid);
    expect(scan.frames).toBe(1);
    expect(scan.transactions).toBe(1);
    expect(defined(scan.pages.get(2)).offset).toBe(32 + 2 * 4120);
    // a wrong seed makes the first frame invalid: end of WAL, not an error
    const bad = scanWal(src, header, { ...mid, checksum1: mid.checksum1 ^ 1 });
    expect(bad.commit).toBeNull();
    expect(bad.endReason).toBe('checksum');
    expect(walPositionAt(src, header, 33)).toBeNull();
    expect(walPositionAt(src, header, 32 + 4 * 4120)).toBeNull();
  });

  it('salt-mismatch and frame-checksum-mismatch: only frame 1 is valid (no commit)', () => {
    for (const [name, reason] of [
      ['salt-mismatch', 'salt'],
      ['frame-checksum-mismatch', 'checksum'],
    ] as const) {
      const bytes = fixture(name);
      const header = decodeWalHeader(bytes);
      const scan = scanWal(bytesWalSource(bytes), header, walStartPosition(header));
      expect(scan.commit, name).toBeNull();
      expect(scan.frames).toBe(0);
      expect(scan.pages.size).toBe(0);
      expect(scan.end.offset).toBe(32);
      expect(scan.endReason).toBe(reason);
      expect(scan.stoppedAt).toBe(32 + 4120);
    }
  });

  it('frame-salts: two valid frames and three distinct salt pairs', () => {
    const bytes = fixture('frame-salts');
    const header = decodeWalHeader(bytes);
    expect(header.salt1).toBe(0x1b9a294b);
    expect(header.salt2).toBe(0x37f91916);
    const scan = scanWal(bytesWalSource(bytes), header, walStartPosition(header));
    expect(scan.stoppedAt).toBe(32 + 2 * 4120);
    expect(walSaltPairs(bytesWalSource(bytes), header.pageSize)).toEqual([
      { salt1: 0x1b9a294b, salt2: 0x37f91916 },
      { salt1: 0x1b9a294a, salt2: 0x031f195e },
      { salt1: 0x1b9a2949, salt2: 0x13b3dd67 },
    ]);
  });

  it('bad headers are WAL_BAD_HEADER errors naming the file', () => {
    const bytes = fixture('ok').slice(0, 32);
    const cases: Uint8Array[] = [
      bytes.subarray(0, 10),
      Uint8Array.from(bytes),
      Uint8Array.from(bytes),
      Uint8Array.from(bytes),
    ];
    defined(cases[1])[0] = 0; // magic
    defined(cases[2])[10] = 0x11; // page size
    flipByte(defined(cases[3]), 20, 1); // salt -> checksum mismatch
    for (const c of cases) {
      let caught: unknown;
      try {
        decodeWalHeader(c, 'db.sqlite-wal');
      } catch (err) {
        caught = err;
      }
      expect(isLtxvfsError(caught, 'WAL_BAD_HEADER')).toBe(true);
      expect((caught as Error).message).toContain('db.sqlite-wal');
    }
  });
});

/** A db + WAL pair written by real SQLite, copied while the writer keeps the WAL open. */
function makeSqliteWal(name: string, pageSize: number, work: (db: Database.Database) => void) {
  const dir = join(tmp, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'db.sqlite');
  const db = new Database(path);
  db.pragma(`page_size = ${pageSize}`);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  work(db);
  const dbBytes = new Uint8Array(readFileSync(path));
  const walBytes = new Uint8Array(readFileSync(`${path}-wal`));
  db.close();
  return { dbBytes, walBytes, dir };
}

/** SQLite's own view: checkpoint a copy and return the database file. */
function sqliteCheckpointed(dir: string, dbBytes: Uint8Array, walBytes: Uint8Array): Uint8Array {
  const path = join(dir, `oracle-${Math.random().toString(36).slice(2)}.db`);
  writeFileSync(path, dbBytes);
  writeFileSync(`${path}-wal`, walBytes);
  const db = new Database(path);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return new Uint8Array(readFileSync(path));
}

function applyScan(dbBytes: Uint8Array, walBytes: Uint8Array): Uint8Array {
  const header = decodeWalHeader(walBytes);
  const src = bytesWalSource(walBytes);
  const scan = scanWal(src, header, walStartPosition(header), {
    chunkBytes: 3 * walFrameSize(header.pageSize),
  });
  const commit = scan.commit ?? dbBytes.length / header.pageSize;
  const out = new Uint8Array(commit * header.pageSize);
  out.set(dbBytes.subarray(0, Math.min(dbBytes.length, out.length)));
  for (const ref of scan.pages.values()) {
    out.set(defined(readWalFrame(src, header, ref)), (ref.pgno - 1) * header.pageSize);
  }
  return out;
}

/** Rewrites a little-endian-checksum WAL with big-endian checksums (magic 0x377f0683). */
function toBigEndianWal(wal: Uint8Array): Uint8Array {
  const h = decodeWalHeader(wal);
  const out = new Uint8Array(wal.length);
  out.set(encodeWalHeader({ ...h, magic: WAL_MAGIC_BE }));
  const fresh = decodeWalHeader(out);
  let [s0, s1] = [fresh.checksum1, fresh.checksum2];
  const frameSize = walFrameSize(h.pageSize);
  for (let off = WAL_HEADER_SIZE; off + frameSize <= wal.length; off += frameSize) {
    const fh = decodeFrameHeader(wal.subarray(off));
    if (fh.salt1 !== h.salt1 || fh.salt2 !== h.salt2) break;
    const page = wal.subarray(off + WAL_FRAME_HEADER_SIZE, off + frameSize);
    const first8 = encodeFrameHeader({ ...fh, checksum1: 0, checksum2: 0 }).subarray(0, 8);
    [s0, s1] = walChecksum(first8, true, s0, s1);
    [s0, s1] = walChecksum(page, true, s0, s1);
    out.set(encodeFrameHeader({ ...fh, checksum1: s0, checksum2: s1 }), off);
    out.set(page, off + WAL_FRAME_HEADER_SIZE);
  }
  return out;
}

describe('WALs written by SQLite (better-sqlite3): applying committed frames equals SQLite checkpoint', () => {
  for (const pageSize of [512, 4096, 65536]) {
    it(`page size ${pageSize}: inserts, updates, deletes, an uncommitted tail`, () => {
      const { dbBytes, walBytes, dir } = makeSqliteWal(`ps${pageSize}`, pageSize, (db) => {
        db.exec('CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, b BLOB)');
        const ins = db.prepare('INSERT INTO t(v, b) VALUES (?, randomblob(?))');
        for (let i = 0; i < 60; i++) ins.run(`row ${i}`, (i * 97) % 3000);
        db.exec('UPDATE t SET v = v || v WHERE id % 3 = 0');
        db.exec('DELETE FROM t WHERE id % 5 = 0');
      });
      const ours = applyScan(dbBytes, walBytes);
      expect(Buffer.from(ours).equals(Buffer.from(sqliteCheckpointed(dir, dbBytes, walBytes)))).toBe(true);
      // An uncommitted tail (half a transaction) is ignored, as SQLite ignores it.
      const header = decodeWalHeader(walBytes);
      const scan = scanWal(bytesWalSource(walBytes), header, walStartPosition(header));
      const frameSize = walFrameSize(pageSize);
      const lastFrame = walBytes.subarray(walBytes.length - frameSize);
      const tail = Uint8Array.from(lastFrame);
      tail[7] = 0; // clear the commit field of a copy of the last frame
      const withTail = new Uint8Array(walBytes.length + frameSize);
      withTail.set(walBytes);
      withTail.set(tail, walBytes.length);
      const scan2 = scanWal(bytesWalSource(withTail), header, walStartPosition(header));
      expect(scan2.end).toEqual(scan.end);
      expect(scan2.commit).toBe(scan.commit);
    });
  }

  it('big-endian checksums (magic 0x377f0683): SQLite accepts our rewrite and so do we', () => {
    const { dbBytes, walBytes, dir } = makeSqliteWal('be', 1024, (db) => {
      db.exec('CREATE TABLE t(v)');
      for (let i = 0; i < 20; i++) db.prepare('INSERT INTO t VALUES (?)').run('x'.repeat(i * 50));
    });
    const be = toBigEndianWal(walBytes);
    expect(decodeWalHeader(be).bigEndianChecksum).toBe(true);
    const expected = sqliteCheckpointed(dir, dbBytes, walBytes);
    // SQLite itself validates the rewritten checksums: it applies every frame only if all verify.
    expect(Buffer.from(sqliteCheckpointed(dir, dbBytes, be)).equals(Buffer.from(expected))).toBe(true);
    expect(Buffer.from(applyScan(dbBytes, be)).equals(Buffer.from(expected))).toBe(true);
  });

  it('maxBytes stops at a commit boundary and the rest continues from there', () => {
    const { walBytes } = makeSqliteWal('limit', 1024, (db) => {
      db.exec('CREATE TABLE t(v)');
      for (let i = 0; i < 30; i++) db.prepare('INSERT INTO t VALUES (?)').run('y'.repeat(2000));
    });
    const header = decodeWalHeader(walBytes);
    const src = bytesWalSource(walBytes);
    const whole = scanWal(src, header, walStartPosition(header));
    const first = scanWal(src, header, walStartPosition(header), { maxBytes: 10_000 });
    expect(first.endReason).toBe('limit');
    expect(first.end.offset).toBeGreaterThanOrEqual(32 + 10_000);
    expect(first.end.offset).toBeLessThan(whole.end.offset);
    const rest = scanWal(src, header, first.end);
    expect(rest.end).toEqual(whole.end);
    expect(first.transactions + rest.transactions).toBe(whole.transactions);
  });
});
