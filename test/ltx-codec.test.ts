import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { beforeAll, describe, expect, it, type TestContext } from 'vitest';
import {
  crc64,
  databaseChecksum,
  decodeLtxFile,
  decodePageFrame,
  encodeLtxFile,
  frameDescriptorChecksum,
  initZstd,
  type LtxHeader,
  LtxStreamDecoder,
  type Lz4Compressor,
  lockPgno,
  lz4Bound,
  lz4CompressBlock,
  lz4CompressNative,
  lz4CompressorKind,
  lz4DecoderKind,
  lz4DecompressBlock,
  lz4DecompressPage,
  type PageEncoding,
  pageChecksum,
  parsePageIndexTail,
  xxh32,
} from '../src/ltx/index.js';
import { decodeLz4Frame, encodeLz4Frame } from '../src/ltx/lz4-frame.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { defined } from './support/defined.js';
import {
  commandAvailable,
  referenceToolMissing,
  skipOrFailForMissingTool,
} from './support/reference-tools.js';

beforeAll(async () => {
  await initZstd();
});

const ascii = (s: string) => new TextEncoder().encode(s);

describe('published test vectors', () => {
  it('CRC-64/GO-ISO check value of "123456789" is 0xB90956C775A41001', () => {
    expect(crc64(ascii('123456789'))).toBe(0xb90956c775a41001n);
  });

  it('CRC-64 continues from a seed like Go crc64.Update', () => {
    const whole = crc64(ascii('123456789'));
    expect(crc64(ascii('6789'), crc64(ascii('12345')))).toBe(whole);
    // Every split point, across the 8-byte fast path.
    const data = new Uint8Array(100).map((_, i) => (i * 37 + 11) & 0xff);
    const ref = crc64(data);
    for (let i = 0; i <= data.length; i++)
      expect(crc64(data.subarray(i), crc64(data.subarray(0, i)))).toBe(ref);
  });

  it('CRC-64 of any length at any alignment equals a bit-by-bit reference', () => {
    // Straight from the definition (reflected, poly 0xD800000000000000, init/xorout all ones):
    // independent of the table-driven code and its 32-bit word reads.
    const reference = (data: Uint8Array): bigint => {
      let crc = 0xffffffffffffffffn;
      for (const byte of data) {
        crc ^= BigInt(byte);
        for (let k = 0; k < 8; k++) crc = crc & 1n ? (crc >> 1n) ^ 0xd800000000000000n : crc >> 1n;
      }
      return crc ^ 0xffffffffffffffffn;
    };
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 300 }),
        fc.integer({ min: 0, max: 7 }),
        (u, skip) => {
          const data = u.subarray(Math.min(skip, u.length));
          expect(crc64(data)).toBe(reference(data));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('xxh32("") = 0x02CC5D05 and xxh32(512 zero bytes) = 0x32C153DE', () => {
    expect(xxh32(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(xxh32(new Uint8Array(512))).toBe(0x32c153de);
  });

  it('xxh32 reads aligned (32-bit words) and unaligned (bytes) input alike', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 200 }),
        fc.integer({ min: 1, max: 3 }),
        (u, shift) => {
          const shifted = new Uint8Array(u.length + shift).subarray(shift);
          shifted.set(u);
          expect(xxh32(shifted)).toBe(xxh32(u));
        },
      ),
      { numRuns: 200 },
    );
    const zeros = new Uint8Array(513).subarray(1);
    expect(xxh32(zeros)).toBe(0x32c153de);
  });

  it('frame descriptor checksum of FLG 0x64 / BD 0x40 is 0xA7', () => {
    expect(frameDescriptorChecksum(Uint8Array.of(0x64, 0x40))).toBe(0xa7);
  });

  it('database checksum of one zero 512-byte page is 0xEFB1F44FECD99000; empty is 0x8000000000000000', () => {
    expect(databaseChecksum([{ pgno: 1, data: new Uint8Array(512) }])).toBe(0xefb1f44fecd99000n);
    expect(databaseChecksum([])).toBe(0x8000000000000000n);
    expect(pageChecksum(1, new Uint8Array(512))).toBe(0xefb1f44fecd99000n);
  });
});

const hasLz4Cli = commandAvailable('lz4', ['--version']);
const LZ4_CLI_HINT = 'npm test installs it with apt; or apt-get install lz4';
// LTXVFS_LZ4=js forces the JS codec on purpose; only then is a missing lz4-napi not a failure.
const jsForced = process.env.LTXVFS_LZ4 === 'js';
const LZ4_NAPI_HINT = 'an optional dependency with prebuilt binaries: npm ci installs it';

/** The native compressor's checks: skipped on purpose when JS is forced, else lz4-napi must load. */
function requireNativeLz4(ctx: TestContext): void {
  if (lz4CompressorKind === 'native') return;
  if (jsForced) ctx.skip('LTXVFS_LZ4=js forces the JS codec, there is no native compressor to check');
  skipOrFailForMissingTool(ctx, 'lz4-napi', LZ4_NAPI_HINT);
}

describe('LZ4 against the reference lz4 command (C implementation)', () => {
  if (!hasLz4Cli) {
    referenceToolMissing('the `lz4` command', LZ4_CLI_HINT);
    return;
  }
  const samples = [
    new Uint8Array(4096),
    new Uint8Array(4096).map((_, i) => (i * 7) & 0xff),
    new Uint8Array(4096).map(() => Math.floor(Math.random() * 256)),
    ascii('SQLite format 3\0'.repeat(256)),
    new Uint8Array(65536).map((_, i) => (i % 1000 < 500 ? i & 3 : (i * 2654435761) >>> 24)),
  ];

  it('our legacy frames decompress with `lz4 -d` to the original pages', () => {
    const frames = samples.map((s) => encodeLz4Frame(s));
    const joined = Buffer.concat(frames);
    const r = spawnSync('lz4', ['-d', '-c'], { input: joined, maxBuffer: 1 << 24 });
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, Buffer.concat(samples))).toBe(0);
  });

  it('natively compressed pages, wrapped in legacy frames, decompress with `lz4 -d`', (ctx) => {
    requireNativeLz4(ctx);
    const frames = samples.map((s) => encodeLz4Frame(s, 'native'));
    const r = spawnSync('lz4', ['-d', '-c'], { input: Buffer.concat(frames), maxBuffer: 1 << 24 });
    expect(r.status).toBe(0);
    expect(Buffer.compare(r.stdout, Buffer.concat(samples))).toBe(0);
  });

  it('frames from `lz4` (4 MiB blocks, content size, block checksums, dependent blocks) decode', () => {
    for (const flags of [[], ['--content-size'], ['-BX'], ['-BD', '-B4'], ['--no-frame-crc']]) {
      for (const s of samples) {
        const r = spawnSync('lz4', ['-c', '-z', ...flags], { input: s });
        expect(r.status).toBe(0);
        const frame = new Uint8Array(r.stdout);
        expect(Buffer.from(decodeLz4Frame(frame, 0, frame.length, s.length)).equals(Buffer.from(s))).toBe(
          true,
        );
      }
    }
  });
});

describe('LZ4 block codec', () => {
  it(`page decoder in use (${lz4DecoderKind}) agrees with the JS decoder; garbage gives typed errors only`, () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4 }),
        fc.uint8Array({ minLength: 1, maxLength: 600 }),
        fc.nat(),
        (log, junk, n) => {
          const pageSize = 512 << log;
          const page = new Uint8Array(pageSize).map(
            (_, i) => defined(junk[(i * 7 + n) % junk.length]) ^ (i >> 6),
          );
          const block = new Uint8Array(lz4Bound(pageSize));
          const len = lz4CompressBlock(page, block);
          expect(Buffer.from(lz4DecompressPage(block, 0, len, pageSize)).equals(Buffer.from(page))).toBe(
            true,
          );
          try {
            lz4DecompressPage(junk, 0, junk.length, pageSize);
          } catch (err) {
            expect(isLtxvfsError(err, 'LTX_BAD_COMPRESSION')).toBe(true);
          }
          // a truncated block cannot end exactly at one page: it must fail, typed
          const cut = block.subarray(0, Math.max(1, len - 1 - (n % 8)));
          let failure: unknown;
          try {
            lz4DecompressPage(cut, 0, cut.length, pageSize);
          } catch (err) {
            failure = err;
          }
          expect(isLtxvfsError(failure, 'LTX_BAD_COMPRESSION'), String(failure)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('a block must decode to exactly one page and end exactly at its frame (page decoder and JS decoder)', () => {
    // 'a', then a match of offset 1 and length 507, then four literals: 512 bytes of 'a'.
    const valid = [0x1f, 0x61, 1, 0, 255, 233, 0x40, 0x61, 0x61, 0x61, 0x61];
    const cases: Record<string, number[]> = {
      'ends with a match': [0x1f, 0x61, 1, 0, 255, 237],
      'one trailing byte': [...valid, 0x00],
      'trailing bytes': [...valid, 0x00, 0x00, 0x00],
      'short (479 bytes)': [0x1f, 0x61, 1, 0, 255, 200, 0x40, 0x61, 0x61, 0x61, 0x61],
      'long (513 bytes)': [0x1f, 0x61, 1, 0, 255, 234, 0x40, 0x61, 0x61, 0x61, 0x61],
    };
    // The next frame's bytes follow the block, as in a file: the decoder must not read into them.
    const next = [0x40, 0x62, 0x62, 0x62, 0x62];
    const ok = Uint8Array.from([...valid, ...next]);
    expect(Buffer.from(lz4DecompressPage(ok, 0, valid.length, 512)).equals(Buffer.alloc(512, 0x61))).toBe(
      true,
    );
    for (const [name, block] of Object.entries(cases)) {
      const buf = Uint8Array.from([...block, ...next]);
      const decoders = {
        [lz4DecoderKind]: () => lz4DecompressPage(buf, 0, block.length, 512),
        js: () => {
          const out = new Uint8Array(512);
          const n = lz4DecompressBlock(buf, 0, block.length, out, 0, 512);
          if (n !== 512) throw new Error(`JS decoder returned ${n} bytes for '${name}' without an error`);
        },
      };
      for (const [kind, decode] of Object.entries(decoders)) {
        const err = (() => {
          try {
            decode();
            return undefined;
          } catch (e) {
            return e;
          }
        })();
        expect(
          isLtxvfsError(err, 'LTX_BAD_COMPRESSION') || kind === 'js',
          `${kind}: ${name}: ${String(err)}`,
        ).toBe(true);
        if (kind === 'js' && name !== 'short (479 bytes)') {
          expect(isLtxvfsError(err, 'LTX_BAD_COMPRESSION'), `${kind}: ${name}: ${String(err)}`).toBe(true);
        }
      }
    }
    // The JS decoder names the real defect instead of reading the next frame's byte as a token.
    const tail = Uint8Array.from([...(cases['ends with a match'] ?? []), ...next]);
    expect(() => lz4DecompressBlock(tail, 0, 6, new Uint8Array(512), 0, 512)).toThrow(/ends with a match/);
  });

  it('native compressor blocks (lz4-napi) decode with the JS decoder, within lz4Bound', (ctx) => {
    requireNativeLz4(ctx);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 1, maxLength: 5000 }),
          fc
            .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 65536 }))
            .map(([unit, n]) => new Uint8Array(n).map((_, i) => defined(unit[i % unit.length]) ^ (i >> 9))),
        ),
        (data) => {
          const block = lz4CompressNative(data);
          if (!block) throw new Error('native compressor gave no block');
          expect(block.length).toBeLessThanOrEqual(lz4Bound(data.length));
          const back = new Uint8Array(data.length);
          expect(lz4DecompressBlock(block, 0, block.length, back, 0, back.length)).toBe(data.length);
          expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('round-trips arbitrary data up to 64 KiB, within lz4Bound', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ minLength: 0, maxLength: 70 }),
          fc.uint8Array({ minLength: 0, maxLength: 5000 }),
          fc
            .tuple(fc.uint8Array({ minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 65536 }))
            .map(([unit, n]) => new Uint8Array(n).map((_, i) => defined(unit[i % unit.length]))),
        ),
        (data) => {
          const out = new Uint8Array(lz4Bound(data.length));
          const n = lz4CompressBlock(data, out);
          expect(n).toBeLessThanOrEqual(lz4Bound(data.length));
          const back = new Uint8Array(data.length);
          expect(lz4DecompressBlock(out, 0, n, back, 0, back.length)).toBe(data.length);
          expect(Buffer.from(back).equals(Buffer.from(data))).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

type PageSpec = { pgno: number; data: Uint8Array };

/** Pages that exercise every codec path: zeros, runs, text-like, random. */
const pageContent = (pageSize: number) =>
  fc.oneof(
    fc.constant(new Uint8Array(pageSize)),
    fc.integer({ min: 0, max: 255 }).map((b) => new Uint8Array(pageSize).fill(b)),
    fc
      .uint8Array({ minLength: 1, maxLength: 64 })
      .map((u) => new Uint8Array(pageSize).map((_, i) => defined(u[i % u.length]))),
    fc.integer().map((seed) => {
      let x = seed | 1;
      return new Uint8Array(pageSize).map(() => {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        return x & 0xff;
      });
    }),
  );

const ENCODINGS: PageEncoding[] = ['lz4-block', 'lz4-frame', 'zstd'];

const fileSpec = fc
  .record({
    pageSizeLog: fc.integer({ min: 9, max: 16 }),
    encoding: fc.constantFrom(...ENCODINGS),
    snapshot: fc.boolean(),
    noChecksum: fc.boolean(),
    commit: fc.integer({ min: 1, max: 12 }),
    compressor: fc.constantFrom<Lz4Compressor>('native', 'pierrec'),
    seed: fc.integer(),
  })
  .chain((s) => {
    const pageSize = 2 ** s.pageSizeLog;
    const pgnos = s.snapshot
      ? fc.constant(Array.from({ length: s.commit }, (_, i) => i + 1))
      : fc.uniqueArray(fc.integer({ min: 1, max: s.commit }), { minLength: 0, maxLength: s.commit });
    return pgnos.chain((list) =>
      fc
        .tuple(
          ...[...list]
            .sort((a, b) => a - b)
            .map((pgno) => pageContent(pageSize).map((data) => ({ pgno, data }))),
        )
        .map((pages: PageSpec[]) => ({ ...s, pageSize, pages })),
    );
  });

function headerFor(s: {
  pageSize: number;
  commit: number;
  snapshot: boolean;
  noChecksum: boolean;
}): LtxHeader {
  return {
    flags: s.noChecksum ? 2 : 0,
    pageSize: s.pageSize,
    commit: s.commit,
    minTxid: s.snapshot ? 1 : 5,
    maxTxid: s.snapshot ? 3 : 9,
    timestamp: 1_700_000_000_123,
    preApplyChecksum: s.snapshot || s.noChecksum ? 0n : 0x8000000000000abcn,
    walOffset: 32,
    walSize: 4152,
    walSalt1: 0xdeadbeef,
    walSalt2: 7,
    nodeId: 0n,
  };
}

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

describe('LTX round trip (property)', () => {
  it('random page sets, page sizes 512..65536, all encodings: encode -> decode (whole, stream, random access)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fileSpec,
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 24, max: 3000 }),
        async (s, chunk, tailLen) => {
          const header = headerFor(s);
          const post = s.noChecksum ? undefined : s.snapshot ? undefined : 0x8000000000000defn;
          const file = encodeLtxFile(header, s.pages, {
            encoding: s.encoding,
            compressor: s.compressor,
            postApplyChecksum: post,
          });
          const f = decodeLtxFile(file);
          expect(f.header).toEqual(header);
          expect(f.pages.map((p) => p.pgno)).toEqual(s.pages.map((p) => p.pgno));
          for (const [i, p] of f.pages.entries()) {
            expect(p.encoding).toBe(s.encoding);
            expect(Buffer.from(p.data).equals(Buffer.from(defined(s.pages[i]).data))).toBe(true);
          }
          if (!s.noChecksum && s.snapshot)
            expect(f.trailer.postApplyChecksum).toBe(databaseChecksum(s.pages));
          // Streaming, in arbitrary chunk sizes.
          const d = new LtxStreamDecoder(chunks(file, chunk));
          expect(await d.header()).toEqual(header);
          let i = 0;
          for await (const p of d.pages())
            expect(Buffer.from(p.data).equals(Buffer.from(defined(s.pages[i++]).data))).toBe(true);
          expect(i).toBe(s.pages.length);
          expect((await d.trailer()).trailer).toEqual(f.trailer);
          // Random access from a tail of arbitrary length.
          const tail = file.subarray(Math.max(0, file.length - tailLen));
          let t = parsePageIndexTail(tail, file.length);
          if (t.kind === 'need-more') {
            expect(t.indexStart).toBeLessThan(file.length - tail.length);
            t = parsePageIndexTail(file.subarray(t.indexStart), file.length);
          }
          if (t.kind !== 'ok') throw new Error('index not parsed after need-more');
          expect(t.index).toEqual(f.index);
          for (const [k, e] of t.index.entries()) {
            const page = decodePageFrame(file.subarray(e.offset, e.offset + e.size), s.pageSize, e.pgno);
            expect(Buffer.from(page).equals(Buffer.from(defined(s.pages[k]).data))).toBe(true);
            if (s.encoding === 'lz4-block') {
              // Whichever decoder is in use above, the JS decoder reads the same block too.
              const js = new Uint8Array(s.pageSize);
              lz4DecompressBlock(file, e.offset + 10, e.offset + e.size, js, 0, s.pageSize);
              expect(Buffer.from(js).equals(Buffer.from(defined(s.pages[k]).data))).toBe(true);
            }
          }
        },
      ),
      { numRuns: 120 },
    );
  });

  it('the lock page is refused by the encoder; pages on both sides of it round-trip', () => {
    const pageSize = 65536;
    const lock = lockPgno(pageSize);
    const header = { ...headerFor({ pageSize, commit: lock + 1, snapshot: false, noChecksum: true }) };
    expect(() => encodeLtxFile(header, [{ pgno: lock, data: new Uint8Array(pageSize) }])).toThrow(
      /lock page/,
    );
    const f = decodeLtxFile(
      encodeLtxFile(header, [
        { pgno: lock - 1, data: new Uint8Array(pageSize) },
        { pgno: lock + 1, data: new Uint8Array(pageSize).fill(1) },
      ]),
    );
    expect(f.pages.map((p) => p.pgno)).toEqual([lock - 1, lock + 1]);
  });

  it('encoder rejects out-of-order pages, wrong sizes, pages beyond commit and incomplete snapshots', () => {
    const h = headerFor({ pageSize: 512, commit: 3, snapshot: false, noChecksum: true });
    const p = (pgno: number, n = 512) => ({ pgno, data: new Uint8Array(n) });
    expect(() => encodeLtxFile(h, [p(2), p(1)])).toThrow(expect.objectContaining({ code: 'LTX_PAGE_ORDER' }));
    expect(() => encodeLtxFile(h, [p(2), p(2)])).toThrow(expect.objectContaining({ code: 'LTX_PAGE_ORDER' }));
    expect(() => encodeLtxFile(h, [p(1, 511)])).toThrow(expect.objectContaining({ code: 'LTX_ENCODE' }));
    expect(() => encodeLtxFile(h, [p(4)])).toThrow(/beyond the commit/);
    const snap = headerFor({ pageSize: 512, commit: 3, snapshot: true, noChecksum: true });
    expect(() => encodeLtxFile(snap, [p(1), p(3)])).toThrow(/missing page 2/);
    expect(() => encodeLtxFile(snap, [p(1), p(2)])).toThrow(/every page/);
    expect(() => encodeLtxFile({ ...h, flags: 3 }, [])).toThrow(
      expect.objectContaining({ code: 'LTX_ENCODE' }),
    );
    expect(() => encodeLtxFile(h, [], { postApplyChecksum: 0x8000000000000001n })).toThrow(/NoChecksum/);
  });
});
