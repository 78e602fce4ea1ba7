import { describe, expect, it } from 'vitest';
import {
  describeLtxFile,
  formatLtxFileName,
  isContiguous,
  LTX_NAME_PATTERN,
  lockPgno,
  MAX_COMPACTION_LEVEL,
  MAX_LEVEL,
  parseLtxFileName,
  SNAPSHOT_LEVEL,
} from '../src/ltx/names.js';

// Litestream's LTX file names (`<min as 16 lowercase hex>-<max as 16 lowercase hex>.ltx`, the
// names of the golden files in test/fixtures and of every replica Litestream writes) and SQLite's
// lock page (the page holding byte 0x40000000, PENDING_BYTE, per SQLite's file-format docs).

describe('LTX file names', () => {
  it('formats TXIDs as two 16-digit lowercase hex numbers (known names)', () => {
    expect(formatLtxFileName(1, 1)).toBe('0000000000000001-0000000000000001.ltx');
    expect(formatLtxFileName(13, 13)).toBe('000000000000000d-000000000000000d.ltx');
    expect(formatLtxFileName(0xabc, 0x12345)).toBe('0000000000000abc-0000000000012345.ltx');
    expect(formatLtxFileName(1, Number.MAX_SAFE_INTEGER)).toBe('0000000000000001-001fffffffffffff.ltx');
  });

  it('parses the names Litestream writes', () => {
    expect(parseLtxFileName('000000000000000d-000000000000000d.ltx')).toEqual({ minTxid: 13, maxTxid: 13 });
    expect(parseLtxFileName('0000000000000001-00000000000003e8.ltx')).toEqual({ minTxid: 1, maxTxid: 1000 });
    expect(parseLtxFileName('00000000000000ff-0000000000000100.ltx')).toEqual({ minTxid: 255, maxTxid: 256 });
    expect(parseLtxFileName('0000000000000000-0000000000000000.ltx')).toEqual({ minTxid: 0, maxTxid: 0 });
    expect(parseLtxFileName('0000000000000001-001fffffffffffff.ltx')).toEqual({
      minTxid: 1,
      maxTxid: Number.MAX_SAFE_INTEGER,
    });
  });

  it('round-trips: parse(format(min, max)) is (min, max)', () => {
    for (const [min, max] of [
      [1, 1],
      [2, 9],
      [0x10, 0xfff],
      [123456789, 987654321],
      [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
    ] as const) {
      expect(parseLtxFileName(formatLtxFileName(min, max))).toEqual({ minTxid: min, maxTxid: max });
    }
  });

  it('rejects (null) every other shape, so listings skip it', () => {
    for (const name of [
      '',
      '.ltx',
      '000000000000000d-000000000000000d', // no extension
      '000000000000000d-000000000000000d.LTX',
      '000000000000000d-000000000000000d.ltx.tmp', // trailing characters
      '000000000000000d-000000000000000d.ltxx',
      'x000000000000000d-000000000000000d.ltx', // leading characters
      '/000000000000000d-000000000000000d.ltx',
      '00000000000000d-000000000000000d.ltx', // 15 digits
      '000000000000000d-00000000000000d.ltx',
      '0000000000000000d-000000000000000d.ltx', // 17 digits
      '000000000000000d-0000000000000000d.ltx',
      'd-d.ltx',
      '000000000000000D-000000000000000d.ltx', // uppercase hex
      '000000000000000d-000000000000000D.ltx',
      '000000000000000g-000000000000000d.ltx', // not hex
      '000000000000000d-000000000000000g.ltx',
      '000000000000000d_000000000000000d.ltx', // wrong separator
      '000000000000000d000000000000000d.ltx',
      '000000000000000d-000000000000000dxltx', // the dot is literal
      '0000000000000002-0000000000000001.ltx', // min > max
      '0000000000000001-0020000000000000.ltx', // max = 2^53: not exact as a number
      '0020000000000000-0020000000000000.ltx',
      'ffffffffffffffff-ffffffffffffffff.ltx',
    ]) {
      expect(parseLtxFileName(name), name).toBeNull();
    }
    expect(LTX_NAME_PATTERN.test('000000000000000d-000000000000000d.ltx')).toBe(true);
    expect(LTX_NAME_PATTERN.test('000000000000000d-000000000000000d.ltx\n')).toBe(false);
  });

  it('describes a file by level and name', () => {
    expect(describeLtxFile({ level: 3, minTxid: 2, maxTxid: 17 })).toBe(
      'level 3 0000000000000002-0000000000000011.ltx',
    );
  });

  it('levels: 0..9, 9 the snapshots, 1..8 compactions', () => {
    expect([MAX_LEVEL, SNAPSHOT_LEVEL, MAX_COMPACTION_LEVEL]).toEqual([9, 9, 8]);
  });

  it('lock page: the page holding byte 0x40000000 (1-based)', () => {
    // 0x40000000 / pageSize, plus one: SQLite's PENDING_BYTE_PAGE.
    expect(lockPgno(512)).toBe(2097153);
    expect(lockPgno(1024)).toBe(1048577);
    expect(lockPgno(4096)).toBe(262145);
    expect(lockPgno(65536)).toBe(16385);
  });

  it('contiguity: the next file starts at or before prevMax + 1', () => {
    expect(isContiguous(5, 6)).toBe(true);
    expect(isContiguous(5, 5)).toBe(true);
    expect(isContiguous(5, 1)).toBe(true);
    expect(isContiguous(5, 7)).toBe(false);
    expect(isContiguous(0, 1)).toBe(true);
    expect(isContiguous(0, 2)).toBe(false);
  });
});
