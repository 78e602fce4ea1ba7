/**
 * The edges of src/wal that the WAL suites pass through without pinning down (found by
 * `npm run mutate`): the header's validation with its exact messages, page sizes at and beyond
 * the limits, the WAL checksum against a second implementation of SQLite's formula (both byte
 * orders, aligned and unaligned data, seeds), frame offsets by arithmetic, readWalHeader's
 * "SQLite ignores this WAL" answers, and FileWalSource over a real file (positional and short
 * reads, identity = the file's dev/ino, closed for good). The header comes from a WAL that
 * SQLite itself wrote.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { isLtxvfsError } from '../src/util/errors.js';
import {
  bytesWalSource,
  decodeWalHeader,
  encodeWalHeader,
  FileWalSource,
  readWalHeader,
  WAL_FORMAT_VERSION,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
  walChecksum,
  walFrameOffset,
  walFrameSize,
} from '../src/wal/index.js';

const dir = mkdtempSync(join(tmpdir(), 'ltxvfs-wal-edges-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The first 32 bytes of a WAL that SQLite wrote, and the page size it was asked for. */
let walCount = 0;
function sqliteWalHeader(pageSize: number): Uint8Array {
  const path = join(dir, `h-${pageSize}-${walCount++}.db`);
  const db = new Database(path);
  db.pragma(`page_size = ${pageSize}`);
  db.pragma('journal_mode = WAL');
  db.pragma('wal_autocheckpoint = 0');
  db.exec('CREATE TABLE t(x); INSERT INTO t VALUES (1)');
  const header = new Uint8Array(readFileSync(`${path}-wal`)).slice(0, 32);
  db.close();
  return header;
}

function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return isLtxvfsError(err) ? `${err.code}: ${err.message}` : `not typed: ${String(err)}`;
  }
  return 'no error';
}

/** SQLite's walChecksumBytes, written again from the file-format document. */
function referenceChecksum(data: Uint8Array, bigEndian: boolean, s0: number, s1: number): [number, number] {
  const byte = (i: number) => data[i] ?? 0;
  const word = (i: number) =>
    bigEndian
      ? (byte(i) * 2 ** 24 + (byte(i + 1) << 16) + (byte(i + 2) << 8) + byte(i + 3)) >>> 0
      : (byte(i + 3) * 2 ** 24 + (byte(i + 2) << 16) + (byte(i + 1) << 8) + byte(i)) >>> 0;
  let a = BigInt(s0);
  let b = BigInt(s1);
  const mod = 2n ** 32n;
  for (let i = 0; i + 8 <= data.length; i += 8) {
    a = (a + BigInt(word(i)) + b) % mod;
    b = (b + BigInt(word(i + 4)) + a) % mod;
  }
  return [Number(a), Number(b)];
}

describe('WAL header validation', () => {
  it("decodes SQLite's own header: magic, version, page size; any flipped byte is a checksum or field error", () => {
    for (const pageSize of [512, 4096, 65536]) {
      const bytes = sqliteWalHeader(pageSize);
      const h = decodeWalHeader(bytes);
      expect(h.pageSize).toBe(pageSize);
      expect(h.version).toBe(3007000);
      expect([WAL_MAGIC_LE, WAL_MAGIC_BE]).toContain(h.magic);
      expect(h.bigEndianChecksum).toBe(h.magic === WAL_MAGIC_BE);
      expect(readWalHeader(bytesWalSource(bytes))).toEqual(h);
    }
  });

  it('names the file and the defect exactly', () => {
    const good = sqliteWalHeader(4096);
    const h = decodeWalHeader(good);
    expect(errorOf(() => decodeWalHeader(good.subarray(0, 31)))).toBe(
      'WAL_BAD_HEADER: WAL: header is 31 bytes, expected 32',
    );
    expect(errorOf(() => decodeWalHeader(new Uint8Array(0), 'app.db-wal'))).toBe(
      'WAL_BAD_HEADER: app.db-wal: header is 0 bytes, expected 32',
    );
    const badMagic = Uint8Array.from(good);
    badMagic[3] = 0x84;
    expect(errorOf(() => decodeWalHeader(badMagic, 'x-wal'))).toBe(
      `WAL_BAD_HEADER: x-wal: bad magic 0x${((h.magic & ~0xff) | 0x84).toString(16)}`,
    );
    const version = encodeWalHeader({ ...h, version: 3007001 });
    expect(errorOf(() => decodeWalHeader(version, 'x-wal'))).toBe(
      'WAL_BAD_HEADER: x-wal: unsupported WAL format version 3007001',
    );
    const salted = Uint8Array.from(good);
    salted[17] = (salted[17] ?? 0) ^ 1;
    expect(errorOf(() => decodeWalHeader(salted, 'x-wal'))).toBe(
      'WAL_BAD_HEADER: x-wal: header checksum mismatch',
    );
    expect(readWalHeader(bytesWalSource(salted))).toBeNull();
    expect(readWalHeader(bytesWalSource(good.subarray(0, 31)))).toBeNull();
    expect(readWalHeader(null)).toBeNull();
    expect(WAL_FORMAT_VERSION).toBe(3007000);
  });

  it('page sizes: powers of two from 512 to 65536 only', () => {
    const h = decodeWalHeader(sqliteWalHeader(4096));
    for (let size = 512; size <= 65536; size *= 2) {
      expect(decodeWalHeader(encodeWalHeader({ ...h, pageSize: size })).pageSize).toBe(size);
    }
    for (const size of [0, 1, 256, 511, 513, 768, 3000, 4095, 65535, 65537, 98304, 131072]) {
      expect(errorOf(() => decodeWalHeader(encodeWalHeader({ ...h, pageSize: size }), 'w'))).toBe(
        `WAL_BAD_HEADER: w: invalid page size ${size}`,
      );
    }
  });

  it('frame sizes and offsets by arithmetic', () => {
    expect(walFrameSize(4096)).toBe(4120);
    expect(walFrameOffset(0, 4096)).toBe(32);
    expect(walFrameOffset(1, 4096)).toBe(32 + 4120);
    expect(walFrameOffset(1000, 512)).toBe(32 + 1000 * 536);
  });
});

describe("walChecksum equals SQLite's formula written again", () => {
  it('both byte orders, any alignment, any seed; only whole 8-byte units count', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.integer({ min: 0, max: 7 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 0, max: 0xffffffff }),
        (bytes, shift, bigEndian, s0, s1) => {
          // the same bytes at an offset `shift` into a buffer: aligned and unaligned views
          const buffer = new Uint8Array(bytes.length + 8);
          buffer.set(bytes, shift);
          const view = buffer.subarray(shift, shift + bytes.length);
          expect(walChecksum(view, bigEndian, s0, s1)).toEqual(referenceChecksum(view, bigEndian, s0, s1));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('FileWalSource over a real file', () => {
  it('reads positionally, short at the end, knows its size and identity, and is closed for good', () => {
    const path = join(dir, 'source.bin');
    const content = Uint8Array.from({ length: 10_000 }, (_, i) => (i * 7 + 3) & 0xff);
    writeFileSync(path, content);
    const source = new FileWalSource(path);
    expect(source.path).toBe(path);
    expect(source.size()).toBe(10_000);
    expect(Buffer.from(source.read(0, 10))).toEqual(Buffer.from(content.subarray(0, 10)));
    expect(Buffer.from(source.read(4321, 1000))).toEqual(Buffer.from(content.subarray(4321, 5321)));
    const tail = source.read(9_990, 100);
    expect(tail.length).toBe(10);
    expect(Buffer.from(tail)).toEqual(Buffer.from(content.subarray(9_990)));
    expect(source.read(20_000, 10).length).toBe(0);
    const whole = source.read(0, 10_000);
    expect(whole.length).toBe(10_000);
    expect(Buffer.from(whole)).toEqual(Buffer.from(content));
    const st = statSync(path);
    expect(source.identity()).toEqual({ dev: st.dev, ino: st.ino });
    // it grows under the reader: the size follows the file, not the open
    writeFileSync(path, Buffer.concat([content, Buffer.alloc(50, 1)]));
    expect(source.size()).toBe(10_050);
    source.close();
    expect(() => source.read(0, 1)).toThrow(/EBADF/);
  });
});
