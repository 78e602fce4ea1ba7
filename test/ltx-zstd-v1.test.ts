import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { crc64 } from '../src/ltx/checksum.js';
import { looksLikeLtxV1 } from '../src/ltx/v1.js';

// zstd pages before and after initialisation (a fresh module instance each time, so the state of
// other suites does not leak in), zstd frames built by hand from RFC 8878, and LTX v1 files built
// by hand from ltx-and-litestream.md §1.1 (4-byte page headers, raw pages, a 4-byte zero
// terminator, a 16-byte trailer whose last 8 bytes are bit 63 | CRC-64/GO-ISO of the rest; the
// CRC is held to its check value 0xb90956c775a41001 in ltx-codec).

async function freshZstd(): Promise<typeof import('../src/ltx/zstd.js')> {
  vi.resetModules();
  return import('../src/ltx/zstd.js');
}

function thrown(fn: () => unknown): { code: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    // The modules are fresh instances, so their LtxvfsError is another class than ours: the
    // error is checked by its name and code.
    const e = err as Error & { code?: string };
    return { code: e.name === 'LtxvfsError' ? e.code : undefined, message: e.message };
  }
  throw new Error('expected a throw');
}

/** A zstd frame (RFC 8878) with one raw block; `declare` the content size, or omit it. */
function rawZstdFrame(
  content: Uint8Array,
  declare: number | undefined,
  blockSize = content.length,
): Uint8Array {
  const head =
    declare === undefined
      ? [0x00, 0x58] // FHD: no content size, not single segment; window descriptor 2^(10+11)
      : [0x60, (declare - 256) & 0xff, (declare - 256) >> 8]; // single segment, 2-byte FCS (+256)
  const block = 1 | (blockSize << 3); // last block, raw, size
  return Uint8Array.from([
    0x28,
    0xb5,
    0x2f,
    0xfd,
    ...head,
    block & 0xff,
    (block >> 8) & 0xff,
    block >> 16,
    ...content,
  ]);
}

const page = new Uint8Array(512).map((_, i) => (i * 13 + 5) & 0xff);

describe('zstd pages', () => {
  it('before initZstd every use is LTX_ZSTD_UNINITIALIZED with how to fix it', async () => {
    const zstd = await freshZstd();
    expect(zstd.isZstdReady()).toBe(false);
    const message =
      'zstd page encoding used before initialisation: call `await initZstd()` from ltxvfs/ltx first';
    expect(thrown(() => zstd.zstdCompressPage(page))).toEqual({ code: 'LTX_ZSTD_UNINITIALIZED', message });
    expect(thrown(() => zstd.zstdDecompressPage(rawZstdFrame(page, 512), 512))).toEqual({
      code: 'LTX_ZSTD_UNINITIALIZED',
      message,
    });
  });

  it('through decodePageFrame the uninitialised error keeps its own message (no page prefix)', async () => {
    vi.resetModules();
    const { decodePageFrame } = await import('../src/ltx/page-frame.js');
    const payload = rawZstdFrame(page, 512);
    const frame = new Uint8Array(10 + payload.length);
    const v = new DataView(frame.buffer);
    v.setUint32(0, 4);
    v.setUint16(4, 0x8001);
    v.setUint32(6, payload.length);
    frame.set(payload, 10);
    expect(thrown(() => decodePageFrame(frame, 512)).code).toBe('LTX_ZSTD_UNINITIALIZED');
    expect(thrown(() => decodePageFrame(frame, 512)).message).toMatch(/^zstd page encoding used before/);
  });

  it('after initZstd (idempotent): hand-built frames decode; wrong ones are LTX_BAD_COMPRESSION', async () => {
    const zstd = await freshZstd();
    const first = zstd.initZstd();
    const second = zstd.initZstd();
    await Promise.all([first, second]);
    await zstd.initZstd();
    expect(zstd.isZstdReady()).toBe(true);
    expect(zstd.zstdDecompressPage(rawZstdFrame(page, 512), 512)).toEqual(page);
    expect(zstd.zstdDecompressPage(zstd.zstdCompressPage(page), 512)).toEqual(page);
    expect(thrown(() => zstd.zstdDecompressPage(rawZstdFrame(page, undefined), 512))).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: 'invalid zstd frame: declares no content size, expected the page size 512',
    });
    expect(thrown(() => zstd.zstdDecompressPage(rawZstdFrame(page.subarray(0, 511), 511), 512))).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: 'invalid zstd frame: declares 511 content size, expected the page size 512',
    });
    // Declares the page size but its block ends early, or holds a byte too few.
    for (const broken of [
      rawZstdFrame(page.subarray(0, 100), 512, 512),
      rawZstdFrame(page.subarray(0, 511), 512, 511),
    ]) {
      const e = thrown(() => zstd.zstdDecompressPage(broken, 512));
      expect(e.code).toBe('LTX_BAD_COMPRESSION');
      expect(e.message).toMatch(/^invalid zstd frame: /);
    }
  });
});

/** An LTX v1 file: header (magic, page size), 4-byte pgno + raw page per page, 0, trailer. */
function v1File(pageSize: number, pgnos: number[], magic = 'LTX1', terminator = true): Uint8Array {
  const size = 100 + pgnos.length * (4 + pageSize) + (terminator ? 4 : 0) + 16;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  for (let i = 0; i < 4; i++) b[i] = magic.charCodeAt(i);
  v.setUint32(8, pageSize);
  let p = 100;
  for (const pgno of pgnos) {
    v.setUint32(p, pgno);
    b.fill(pgno & 0xff, p + 4, p + 4 + pageSize);
    p += 4 + pageSize;
  }
  v.setBigUint64(size - 8, (1n << 63n) | crc64(b.subarray(0, size - 8)));
  return b;
}

describe('LTX v1 detection (hand-built files)', () => {
  it('recognises v1 files of any size down to the empty one (120 bytes)', () => {
    expect(looksLikeLtxV1(v1File(512, []))).toBe(true);
    expect(v1File(512, []).length).toBe(120);
    expect(looksLikeLtxV1(v1File(512, [1, 2]))).toBe(true);
    expect(looksLikeLtxV1(v1File(65536, [1]))).toBe(true);
    const real = new Uint8Array(
      readFileSync(
        join(
          import.meta.dirname,
          'fixtures/litestream/benbjohnson-litestream/testdata/store/open-and-write-snapshot/dbs/sqlite.db/ltx/000000000000000d-000000000000000d.ltx',
        ),
      ),
    );
    expect(looksLikeLtxV1(real)).toBe(true);
  });

  it('a valid checksum is not enough: magic, page size and structure must hold too', () => {
    for (const magic of ['XTX1', 'LXX1', 'LTY1', 'LTX2']) {
      expect(looksLikeLtxV1(v1File(512, [1], magic)), magic).toBe(false);
    }
    expect(looksLikeLtxV1(v1File(1000, [1]))).toBe(false);
    expect(looksLikeLtxV1(v1File(256, []))).toBe(false);
    // No terminator: the pages run into the trailer.
    expect(looksLikeLtxV1(v1File(512, [1, 2], 'LTX1', false))).toBe(false);
    expect(looksLikeLtxV1(v1File(512, [], 'LTX1', false))).toBe(false);
    // Bytes between the terminator and the trailer.
    const longer = v1File(512, [1]);
    const padded = new Uint8Array(longer.length + 4);
    padded.set(longer.subarray(0, longer.length - 16));
    padded.set(longer.subarray(longer.length - 16), longer.length - 12);
    new DataView(padded.buffer).setBigUint64(
      padded.length - 8,
      (1n << 63n) | crc64(padded.subarray(0, padded.length - 8)),
    );
    expect(looksLikeLtxV1(padded)).toBe(false);
    // The checksum without bit 63.
    const noFlag = v1File(512, [1]);
    noFlag[noFlag.length - 8] = (noFlag[noFlag.length - 8] ?? 0) & 0x7f;
    expect(looksLikeLtxV1(noFlag)).toBe(false);
    expect(looksLikeLtxV1(v1File(512, []).subarray(0, 119))).toBe(false);
  });
});
