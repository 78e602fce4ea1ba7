import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeLtxFile } from '../src/ltx/decoder.js';
import {
  decodePageFrame,
  describeFrame,
  encodePageFrame,
  encodingOfFlags,
  maxSizedPayload,
  readPageHeader,
} from '../src/ltx/page-frame.js';
import { looksLikeLtxV1 } from '../src/ltx/v1.js';
import { initZstd } from '../src/ltx/zstd.js';
import { thrown } from './support/thrown.js';

await initZstd();

// Page frames as /work/shared/docs/ltx-and-litestream.md §1.4 lays them out: a 6-byte page header
// (u32 BE pgno, u16 BE flags: 0x0001 = a u32 BE size and a raw LZ4 block follow, 0 = one LZ4
// frame; ltxvfs's zstd pages 0x8001), checked against hand-built bytes and the golden files.

const fixtures = join(import.meta.dirname, 'fixtures/litestream');
const golden = (name: string) =>
  new Uint8Array(readFileSync(join(fixtures, 'nullstyle-ltx-zig/tests/fixtures', name)));

function u32be(b: Uint8Array, at: number): number {
  return new DataView(b.buffer, b.byteOffset).getUint32(at);
}

/** A size-prefixed frame with the given page header and payload, built by hand. */
function sizedFrame(pgno: number, flags: number, payload: Uint8Array, declared = payload.length): Uint8Array {
  const b = new Uint8Array(10 + payload.length);
  const v = new DataView(b.buffer);
  v.setUint32(0, pgno);
  v.setUint16(4, flags);
  v.setUint32(6, declared);
  b.set(payload, 10);
  return b;
}

/** One LZ4 block holding only literals: a token with 15 literals + the length extension. */
function literalBlock(data: Uint8Array): Uint8Array {
  const ext: number[] = [];
  let rest = data.length - 15;
  while (rest >= 255) {
    ext.push(255);
    rest -= 255;
  }
  ext.push(rest);
  return Uint8Array.from([0xf0, ...ext, ...data]);
}

const page512 = new Uint8Array(512).map((_, i) => (i * 7 + 3) & 0xff);

describe('page frame bytes', () => {
  for (const compressor of ['native', 'pierrec'] as const) {
    it(`lz4-block (${compressor}): pgno BE, flags 0x0001, size BE, then the block`, () => {
      const f = encodePageFrame(0xfedcba98, page512, 'lz4-block', compressor);
      expect(Array.from(f.subarray(0, 6))).toEqual([0xfe, 0xdc, 0xba, 0x98, 0x00, 0x01]);
      expect(u32be(f, 6)).toBe(f.length - 10);
      expect(decodePageFrame(f, 512, 0xfedcba98)).toEqual(page512);
    });

    it(`lz4-frame (${compressor}): flags 0, then an LZ4 frame with Litestream's descriptor`, () => {
      const f = encodePageFrame(7, page512, 'lz4-frame', compressor);
      // 04 22 4d 18 = magic 0x184D2204 LE; FLG 0x64, BD 0x40, header checksum 0xa7 (pierrec/lz4's).
      expect(Buffer.from(f.subarray(0, 13)).toString('hex')).toBe('00000007000004224d186440a7');
      expect(decodePageFrame(f, 512, 7)).toEqual(page512);
    });
  }

  it('the default compressor is the native one; an incompressible page fits the bound', () => {
    // For this page lz4-napi and the pierrec port produce different blocks (278 vs 290 bytes).
    const native = encodePageFrame(2, page512, 'lz4-block', 'native');
    const pierrec = encodePageFrame(2, page512, 'lz4-block', 'pierrec');
    expect(Buffer.from(encodePageFrame(2, page512, 'lz4-block')).equals(Buffer.from(native))).toBe(true);
    if (native.length === pierrec.length) throw new Error('expected the two compressors to differ here');
    let x = 0x12345678;
    const noise = new Uint8Array(512).map(() => {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      return x >>> 24;
    });
    for (const compressor of ['native', 'pierrec'] as const) {
      const f = encodePageFrame(3, noise, 'lz4-block', compressor);
      expect(u32be(f, 6)).toBe(f.length - 10);
      expect(decodePageFrame(f, 512, 3)).toEqual(noise);
    }
  });

  it('zstd: flags 0x8001, size BE, then a zstd frame (magic 28 b5 2f fd)', () => {
    const f = encodePageFrame(3, page512, 'zstd');
    expect(Buffer.from(f.subarray(0, 6)).toString('hex')).toBe('000000038001');
    expect(u32be(f, 6)).toBe(f.length - 10);
    expect(Buffer.from(f.subarray(10, 14)).toString('hex')).toBe('28b52ffd');
    expect(decodePageFrame(f, 512, 3)).toEqual(page512);
  });

  it('a hand-built literal-only block frame decodes (any valid block is accepted)', () => {
    const f = sizedFrame(0x80000001, 0x0001, literalBlock(page512));
    expect(decodePageFrame(f, 512, 0x80000001)).toEqual(page512);
    expect(decodePageFrame(f, 512)).toEqual(page512);
  });

  it('the golden files frames decode to their known pages (SOURCES.md)', () => {
    const f = golden('go_v3_legacy_unflagged.ltx');
    const e = decodeLtxFile(f).index[0];
    if (e === undefined) throw new Error('no index entry');
    expect(decodePageFrame(f.subarray(e.offset, e.offset + e.size), 512, 1)).toEqual(new Uint8Array(512));
  });

  it('flags and the size bounds (LZ4_COMPRESSBOUND; zstd pageSize + pageSize/128 + 128)', () => {
    expect(encodingOfFlags(0x0001)).toBe('lz4-block');
    expect(encodingOfFlags(0x0000)).toBe('lz4-frame');
    expect(encodingOfFlags(0x8001)).toBe('zstd');
    for (const f of [0x0002, 0x0003, 0x8000, 0x0101, 0xffff]) expect(encodingOfFlags(f)).toBeUndefined();
    expect(maxSizedPayload('lz4-block', 512)).toBe(530);
    expect(maxSizedPayload('lz4-block', 4096)).toBe(4128);
    expect(maxSizedPayload('lz4-block', 65536)).toBe(65809);
    expect(maxSizedPayload('zstd', 512)).toBe(644);
    expect(maxSizedPayload('zstd', 65536)).toBe(66176);
  });

  it('describeFrame: the file offset when known (0 included), else the length', () => {
    expect(describeFrame(0, 10)).toBe('at offset 0');
    expect(describeFrame(1234, 10)).toBe('at offset 1234');
    expect(describeFrame(-1, 10)).toBe('(frame of 10 bytes)');
    const buf = new Uint8Array(20);
    buf.set([0, 0, 0, 9, 0x00, 0x02], 4);
    expect(thrown(() => readPageHeader(buf, 4, 104))).toEqual({
      code: 'LTX_BAD_FLAGS',
      message: 'page 9 at offset 104: unknown page flags 0x0002',
    });
    expect(readPageHeader(Uint8Array.of(0, 0, 1, 0, 0x80, 0x01), 0, 0)).toEqual({
      pgno: 256,
      flags: 0x8001,
      encoding: 'zstd',
    });
  });
});

describe('decodePageFrame refuses bad frames with one typed error', () => {
  const good = sizedFrame(5, 0x0001, literalBlock(page512));

  it('shorter than a page header and one payload byte: LTX_TRUNCATED', () => {
    for (const n of [0, 5, 6]) {
      expect(thrown(() => decodePageFrame(good.subarray(0, n), 512))).toEqual({
        code: 'LTX_TRUNCATED',
        message: `page frame (frame of ${n} bytes) is shorter than a page header and payload`,
      });
    }
    // Seven bytes get past that check (and then lack the size field).
    expect(thrown(() => decodePageFrame(good.subarray(0, 7), 512))).toEqual({
      code: 'LTX_TRUNCATED',
      message: 'page 5 (frame of 7 bytes): frame truncated, needs 10 bytes',
    });
  });

  it('a size-prefixed frame of exactly 10 bytes, and a cut legacy frame, say how many bytes they need', () => {
    expect(thrown(() => decodePageFrame(sizedFrame(5, 0x0001, new Uint8Array(0), 1), 512))).toEqual({
      code: 'LTX_TRUNCATED',
      message: 'page 5 (frame of 10 bytes): frame truncated, needs 11 bytes',
    });
    const legacy = encodePageFrame(5, page512, 'lz4-frame', 'pierrec');
    // 6-byte page header + 4 of the 7 bytes an LZ4 frame needs before its length is known.
    expect(thrown(() => decodePageFrame(legacy.subarray(0, 10), 512))).toEqual({
      code: 'LTX_TRUNCATED',
      message: 'page 5 (frame of 10 bytes): frame truncated, needs 13 bytes',
    });
    expect(thrown(() => decodePageFrame(legacy.subarray(0, legacy.length - 1), 512))).toEqual({
      code: 'LTX_TRUNCATED',
      message: `page 5 (frame of ${legacy.length - 1} bytes): frame truncated, needs ${legacy.length} bytes`,
    });
  });

  it('unknown page flags: LTX_BAD_FLAGS naming page and flags', () => {
    for (const [flags, hex] of [
      [0x0002, '0002'],
      [0x8000, '8000'],
      [0x0101, '0101'],
    ] as const) {
      const f = sizedFrame(5, flags, literalBlock(page512));
      expect(thrown(() => decodePageFrame(f, 512))).toEqual({
        code: 'LTX_BAD_FLAGS',
        message: `page 5 (frame of ${f.length} bytes): unknown page flags 0x${hex}`,
      });
    }
  });

  it('another page than the index says: LTX_BAD_PAGE', () => {
    expect(thrown(() => decodePageFrame(good, 512, 6))).toEqual({
      code: 'LTX_BAD_PAGE',
      message: 'page frame holds page 5, expected page 6',
    });
  });

  it('a declared size of 0 or above the bound: LTX_BAD_PAGE; the bound itself is allowed', () => {
    for (const [flags, max] of [
      [0x0001, 530],
      [0x8001, 644],
    ] as const) {
      for (const declared of [0, max + 1, 0xffffffff]) {
        const f = sizedFrame(5, flags, new Uint8Array(8), declared);
        expect(thrown(() => decodePageFrame(f, 512))).toEqual({
          code: 'LTX_BAD_PAGE',
          message: `page 5 (frame of ${f.length} bytes): compressed size ${declared} is outside 1..${max} for a 512-byte page`,
        });
      }
      const atBound = sizedFrame(5, flags, new Uint8Array(8), max);
      expect(thrown(() => decodePageFrame(atBound, 512)).message).toBe(
        `page 5 (frame of 18 bytes): frame truncated, needs ${max + 10} bytes`,
      );
    }
  });

  it('fewer bytes than declared: LTX_TRUNCATED; more: LTX_BAD_PAGE with both lengths', () => {
    const short = good.subarray(0, good.length - 1);
    expect(thrown(() => decodePageFrame(short, 512))).toEqual({
      code: 'LTX_TRUNCATED',
      message: `page 5 (frame of ${short.length} bytes): frame truncated, needs ${good.length} bytes`,
    });
    const long = new Uint8Array(good.length + 1);
    long.set(good);
    expect(thrown(() => decodePageFrame(long, 512))).toEqual({
      code: 'LTX_BAD_PAGE',
      message: `page 5 (frame of ${long.length} bytes): frame is ${good.length} bytes, index says ${long.length}`,
    });
  });

  it('a payload that does not decode to the page: LTX_BAD_COMPRESSION prefixed with the page', () => {
    // A valid block of 511 literals: one byte short of the page.
    const f = sizedFrame(5, 0x0001, literalBlock(page512.subarray(0, 511)));
    const e = thrown(() => decodePageFrame(f, 512));
    expect(e.code).toBe('LTX_BAD_COMPRESSION');
    expect(e.message).toMatch(/^page 5 \(frame of \d+ bytes\): invalid LZ4 block: /);
    const z = encodePageFrame(5, page512, 'zstd');
    const zOther = thrown(() => decodePageFrame(z, 1024));
    expect(zOther).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: `page 5 (frame of ${z.length} bytes): invalid zstd frame: declares 512 content size, expected the page size 1024`,
    });
    const lf = encodePageFrame(5, page512, 'lz4-frame', 'pierrec');
    lf[6] = 0x05;
    expect(thrown(() => decodePageFrame(lf, 512))).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: `page 5 (frame of ${lf.length} bytes): invalid LZ4 frame: bad magic 0x184d2205`,
    });
  });
});

describe('a bad legacy LZ4 frame header names its page (was: the bare codec message)', () => {
  it('whole-file decode and random access say which page and where', () => {
    const bytes = golden('go_v3_legacy_unflagged.ltx');
    const e = decodeLtxFile(bytes).index[0];
    if (e === undefined) throw new Error('no index entry');
    expect(e.offset).toBe(100);
    const broken = new Uint8Array(bytes);
    broken[106] = 0x05; // first magic byte of the LZ4 frame after the 6-byte page header
    expect(thrown(() => decodeLtxFile(broken))).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: 'page 1 at offset 100: invalid LZ4 frame: bad magic 0x184d2205',
    });
    const frame = broken.subarray(e.offset, e.offset + e.size);
    expect(thrown(() => decodePageFrame(frame, 512, 1))).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: `page 1 (frame of ${e.size} bytes): invalid LZ4 frame: bad magic 0x184d2205`,
    });
  });
});

describe('LTX v1 detection', () => {
  const v1 = new Uint8Array(
    readFileSync(
      join(
        fixtures,
        'benbjohnson-litestream/testdata/store/open-and-write-snapshot/dbs/sqlite.db/ltx/000000000000000d-000000000000000d.ltx',
      ),
    ),
  );

  it('recognises the v1 file litestream kept in its testdata, and no v3 golden file', () => {
    expect(looksLikeLtxV1(v1)).toBe(true);
    const padded = new Uint8Array(v1.length + 3);
    padded.set(v1, 3);
    expect(looksLikeLtxV1(padded.subarray(3))).toBe(true);
    for (const name of ['go_v3_empty_snapshot.ltx', 'go_v3_incremental.ltx', 'go_v3_legacy_unflagged.ltx']) {
      expect(looksLikeLtxV1(golden(name)), name).toBe(false);
    }
  });

  it('any change to its structure or checksum makes it not v1', () => {
    const changed = (edit: (b: Uint8Array) => void): Uint8Array => {
      const b = new Uint8Array(v1);
      edit(b);
      return b;
    };
    expect(looksLikeLtxV1(v1.subarray(0, v1.length - 1))).toBe(false);
    expect(looksLikeLtxV1(v1.subarray(0, 119))).toBe(false);
    expect(looksLikeLtxV1(new Uint8Array(120))).toBe(false);
    for (const at of [0, 1, 2, 3])
      expect(looksLikeLtxV1(changed((b) => (b[at] = 0x20))), `magic ${at}`).toBe(false);
    expect(looksLikeLtxV1(changed((b) => (b[10] = 0x11)))).toBe(false); // page size 0x1100 region
    expect(looksLikeLtxV1(changed((b) => (b[v1.length - 1] = (b[v1.length - 1] ?? 0) ^ 1)))).toBe(false);
    expect(looksLikeLtxV1(changed((b) => (b[150] = (b[150] ?? 0) ^ 1)))).toBe(false);
    const longer = new Uint8Array(v1.length + 4);
    longer.set(v1);
    expect(looksLikeLtxV1(longer)).toBe(false);
  });
});
