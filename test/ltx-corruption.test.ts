import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeHeader,
  decodeLtxFile,
  decodePageFrame,
  encodeLtxFile,
  initZstd,
  type LtxHeader,
  LtxStreamDecoder,
  type PageEncoding,
  parsePageIndexTail,
} from '../src/ltx/index.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { defined, flipByte } from './support/defined.js';

// The samples below are built at load time, zstd included.
await initZstd();

const goldenDir = join(import.meta.dirname, 'fixtures/litestream/nullstyle-ltx-zig/tests/fixtures');

function header(over: Partial<LtxHeader> = {}): LtxHeader {
  return {
    flags: 2,
    pageSize: 512,
    commit: 3,
    minTxid: 7,
    maxTxid: 7,
    timestamp: 1234,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
    ...over,
  };
}

function pages(): Array<{ pgno: number; data: Uint8Array }> {
  let x = 12345;
  const noise = new Uint8Array(512).map(() => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x >>> 24;
  });
  const text = new TextEncoder().encode(
    'CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);'.repeat(12).slice(0, 512),
  );
  return [
    { pgno: 1, data: text },
    { pgno: 3, data: noise },
  ];
}

const SAMPLES: Array<[string, Uint8Array]> = [
  ...(['lz4-block', 'lz4-frame', 'zstd'] as PageEncoding[]).map(
    (encoding) => [encoding, encodeLtxFile(header(), pages(), { encoding })] as [string, Uint8Array],
  ),
  [
    'snapshot with checksums',
    encodeLtxFile(header({ flags: 0, minTxid: 1, commit: 2 }), [
      defined(pages()[0]),
      { pgno: 2, data: defined(pages()[1]).data },
    ]),
  ],
  ['golden legacy_mixed', new Uint8Array(readFileSync(join(goldenDir, 'go_v3_legacy_mixed.ltx')))],
  ['golden incremental', new Uint8Array(readFileSync(join(goldenDir, 'go_v3_incremental.ltx')))],
];

/** Runs fn; a thrown error must be an LtxvfsError. Returns the result or the error. */
function attempt<T>(fn: () => T): { ok: true; value: T } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    if (!isLtxvfsError(error)) throw new Error(`untyped error: ${String(error)}`, { cause: error });
    return { ok: false, error };
  }
}

async function attemptAsync<T>(
  fn: () => Promise<T>,
): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  try {
    return { ok: true, value: await fn() };
  } catch (error) {
    if (!isLtxvfsError(error)) throw new Error(`untyped error: ${String(error)}`, { cause: error });
    return { ok: false, error };
  }
}

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function streamDecode(bytes: Uint8Array): Promise<Uint8Array[]> {
  const d = new LtxStreamDecoder(chunks(bytes, 61));
  await d.header();
  const out: Uint8Array[] = [];
  for await (const p of d.pages()) out.push(p.data);
  await d.trailer();
  return out;
}

/** Random access the way the VFS does it: tail -> index, then one frame per page. */
function randomAccess(bytes: Uint8Array): Array<{ pgno: number; data: Uint8Array }> {
  const h = decodeHeader(bytes.subarray(0, 100));
  let t = parsePageIndexTail(bytes.subarray(Math.max(0, bytes.length - 64)), bytes.length);
  if (t.kind === 'need-more') t = parsePageIndexTail(bytes.subarray(t.indexStart), bytes.length);
  if (t.kind !== 'ok') throw new Error('need-more twice');
  return t.index.map((e) => ({
    pgno: e.pgno,
    data: decodePageFrame(bytes.subarray(e.offset, e.offset + e.size), h.pageSize, e.pgno),
  }));
}

function samePages(
  a: Array<{ pgno: number; data: Uint8Array }>,
  b: Array<{ pgno: number; data: Uint8Array }>,
) {
  return (
    a.length === b.length &&
    a.every(
      (p, i) => p.pgno === defined(b[i]).pgno && Buffer.from(p.data).equals(Buffer.from(defined(b[i]).data)),
    )
  );
}

describe('corruption: every single-byte flip', () => {
  for (const [name, original] of SAMPLES) {
    it(`${name} (${original.length} bytes): typed error, or identical content; random access never returns wrong pages unnoticed`, async () => {
      const reference = decodeLtxFile(original);
      let detected = 0;
      for (let i = 0; i < original.length; i++) {
        for (const mask of [0x01, 0xff]) {
          const bad = original.slice();
          flipByte(bad, i, mask);
          const full = attempt(() => decodeLtxFile(bad));
          if (full.ok) {
            // Undetectable by design only if nothing a reader sees changed (e.g. an equivalent LZ4 match offset).
            expect(full.value.header).toEqual(reference.header);
            expect(full.value.trailer).toEqual(reference.trailer);
            expect(samePages(full.value.pages, reference.pages)).toBe(true);
          } else detected++;
          const stream = await attemptAsync(() => streamDecode(bad));
          expect(stream.ok).toBe(full.ok);
          const ra = attempt(() => randomAccess(bad));
          if (ra.ok && !samePages(ra.value, reference.pages)) {
            // Random access cannot see the file checksum; full verification must catch it.
            expect(full.ok).toBe(false);
          }
        }
      }
      expect(detected).toBeGreaterThan(original.length * 1.5);
    });
  }
});

describe('corruption: every truncation', () => {
  for (const [name, original] of SAMPLES) {
    it(`${name}: every proper prefix fails with a typed error in every decoder`, async () => {
      const expected = randomAccess(original);
      for (let n = 0; n < original.length; n++) {
        const cut = original.subarray(0, n);
        const full = attempt(() => decodeLtxFile(cut));
        expect(full.ok).toBe(false);
        const stream = await attemptAsync(() => streamDecode(cut));
        expect(stream.ok).toBe(false);
        // As if the listing reported the shorter size: a typed failure, or (when only bytes no
        // page read needs are gone) exactly the original pages, never different ones.
        const random = attempt(() => randomAccess(cut));
        if (random.ok) expect(samePages(random.value, expected), `prefix of ${n} bytes`).toBe(true);
      }
      const err = attempt(() => decodeLtxFile(original.subarray(0, original.length - 1)));
      expect(!err.ok && (err.error as { code: string }).code).toMatch(
        /LTX_TRUNCATED|LTX_BAD_INDEX|LTX_BAD_CHECKSUM/,
      );
    });
  }
});

describe('corruption: named errors', () => {
  const [, file] = defined(SAMPLES[0]);
  const code = (bytes: Uint8Array) => {
    const r = attempt(() => decodeLtxFile(bytes));
    return r.ok ? 'decoded' : (r.error as { code: string; message: string });
  };
  const patched = (at: number, ...values: number[]) => {
    const b = file.slice();
    b.set(values, at);
    return b;
  };

  it('bad magic, flags, page size, TXIDs', () => {
    expect(code(patched(0, 0x4d))).toMatchObject({
      code: 'LTX_BAD_MAGIC',
      message: expect.stringMatching(/magic/),
    });
    expect(code(patched(7, 0x03))).toMatchObject({
      code: 'LTX_BAD_FLAGS',
      message: expect.stringMatching(/flags 0x3/),
    });
    expect(code(patched(10, 0x03))).toMatchObject({
      code: 'LTX_BAD_HEADER',
      message: expect.stringMatching(/page size/),
    });
    expect(code(patched(23, 0x00))).toMatchObject({
      code: 'LTX_BAD_HEADER',
      message: expect.stringMatching(/minTxid/),
    });
  });

  it('page flags, page order, compressed size, file checksum, trailing bytes', () => {
    expect(code(patched(105, 0x03))).toMatchObject({
      code: 'LTX_BAD_FLAGS',
      message: expect.stringMatching(/page 1 at offset 100/),
    });
    const second = defined(decodeLtxFile(file).index[1]).offset;
    expect(code(patched(second + 3, 0x01))).toMatchObject({
      code: 'LTX_PAGE_ORDER',
      message: expect.stringMatching(/page 1 at offset/),
    });
    expect(code(patched(106, 0xff, 0xff, 0xff, 0xff))).toMatchObject({
      code: 'LTX_BAD_PAGE',
      message: expect.stringMatching(/compressed size 4294967295/),
    });
    expect(code(patched(file.length - 1, defined(file.at(-1)) ^ 1))).toMatchObject({
      code: 'LTX_BAD_CHECKSUM',
    });
    expect(code(Buffer.concat([file, new Uint8Array(3)]))).toMatchObject({
      message: expect.stringMatching(/3 unexpected bytes/),
    });
  });

  it('a page index size field of 2^60 is refused without allocating', () => {
    const b = file.slice();
    new DataView(b.buffer).setBigUint64(b.length - 24, 1n << 60n);
    expect(() => parsePageIndexTail(b, b.length)).toThrow(expect.objectContaining({ code: 'LTX_BAD_INDEX' }));
    expect(code(b)).toMatchObject({ code: 'LTX_BAD_INDEX' });
  });

  it('random bytes never crash any decoder (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.boolean(), async (junk, withMagic) => {
        const bytes = withMagic ? Buffer.concat([file.subarray(0, 100), junk]) : junk;
        attempt(() => decodeLtxFile(bytes));
        await attemptAsync(() => streamDecode(bytes));
        attempt(() => randomAccess(bytes));
        attempt(() => decodePageFrame(junk, 512));
        for (const size of [24, 200])
          attempt(() => parsePageIndexTail(junk.subarray(Math.max(0, junk.length - size)), junk.length));
      }),
      { numRuns: 500 },
    );
  });
});
