import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeLtxFile, LtxStreamDecoder } from '../src/ltx/decoder.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { resealLtxFile } from './support/ltx-reseal.js';

// The whole-file and streaming decoders refuse each structural fault of an LTX file with one
// typed error naming where it is. The files are the golden ones (test/fixtures/SOURCES.md) with
// one edit each. go_v3_incremental.ltx (206 bytes; flags 0, page size 512, commit 3, TXIDs 2-4):
// frames of pages 1 and 3 at 100 and 134 (34 bytes each), the page-block terminator at 168, the
// index 01 64 22 03 86 01 22 00 at 174, its size field (8) at 182, the trailer at 190.

const dir = join(import.meta.dirname, 'fixtures/litestream/nullstyle-ltx-zig/tests/fixtures');
const golden = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
const incremental = golden('go_v3_incremental.ltx');

function edited(base: Uint8Array, edit: (b: Uint8Array, v: DataView) => void): Uint8Array {
  const b = new Uint8Array(base);
  edit(b, new DataView(b.buffer));
  return b;
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const u64 = (v: number) => {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v));
  return b;
};

function refusal(bytes: Uint8Array): { code: string | undefined; message: string } {
  try {
    decodeLtxFile(bytes);
  } catch (err) {
    return { code: isLtxvfsError(err) ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error('expected a refusal');
}

async function* chunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

async function streamRefusal(
  bytes: Uint8Array,
  size: number,
): Promise<{ code: string | undefined; message: string }> {
  try {
    await new LtxStreamDecoder(chunks(bytes, size)).trailer();
  } catch (err) {
    return { code: isLtxvfsError(err) ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error('expected a refusal');
}

const cases: [string, () => Uint8Array, string, string][] = [
  [
    'page number 0',
    () => edited(incremental, (_, v) => v.setUint32(100, 0)),
    'LTX_BAD_PAGE',
    'page number 0 at offset 100',
  ],
  [
    'pages not ascending',
    () => edited(incremental, (_, v) => v.setUint32(134, 1)),
    'LTX_PAGE_ORDER',
    'page 1 at offset 134 follows page 1: pages must ascend',
  ],
  [
    'a page beyond commit',
    () => edited(incremental, (_, v) => v.setUint32(134, 4)),
    'LTX_BAD_PAGE',
    'page 4 at offset 134 is beyond commit 3',
  ],
  [
    'the lock page stored',
    // go_v3_near_lock_page: 64 KiB pages 16384 and 16386; the lock page is 16385.
    () => edited(golden('go_v3_near_lock_page.ltx'), (_, v) => v.setUint32(100, 16385)),
    'LTX_BAD_PAGE',
    'page 16385 at offset 100 is the lock page',
  ],
  [
    'a snapshot missing a page',
    // celld_v052_two_page_snapshot: pages 1 and 2 of 1 KiB; with commit 3 and the second page
    // numbered 3, page 2 is missing.
    () =>
      edited(golden('celld_v052_two_page_snapshot.ltx'), (b, v) => {
        v.setUint32(12, 3);
        const second = 100 + 6 + 4 + v.getUint32(106);
        v.setUint32(second, 3);
        expect(b.length).toBe(211);
      }),
    'LTX_BAD_PAGE',
    'snapshot is missing page 2 (page 3 at offset 136)',
  ],
  [
    'a snapshot ending early',
    () => edited(golden('celld_v052_two_page_snapshot.ltx'), (_, v) => v.setUint32(12, 3)),
    'LTX_BAD_PAGE',
    'snapshot ends at page 2 (offset 173) but commit is 3: pages are missing',
  ],
  [
    'an index entry that disagrees with the frame',
    () => edited(incremental, (b) => void b.set([0x23], 176)),
    'LTX_BAD_INDEX',
    'page index entry at offset 174 says page 1 at 100 (35 bytes); the file has page 1 at 100 (34 bytes)',
  ],
  [
    'an index with fewer entries than pages',
    () => concat(incremental.subarray(0, 174), [0x01, 0x64, 0x22, 0x00], u64(4), incremental.subarray(190)),
    'LTX_BAD_INDEX',
    'page index ends at offset 177 after 1 entries, the file has 2 pages',
  ],
  [
    'an index with more entries than pages',
    () =>
      concat(
        incremental.subarray(0, 174),
        [0x01, 0x64, 0x22, 0x03, 0x86, 0x01, 0x22, 0x05, 0xa8, 0x01, 0x22, 0x00],
        u64(12),
        incremental.subarray(190),
      ),
    'LTX_BAD_INDEX',
    'page index at offset 181 has more entries than the 2 pages',
  ],
  [
    'a size field that disagrees with the index',
    () => edited(incremental, (_, v) => v.setBigUint64(182, 9n)),
    'LTX_BAD_INDEX',
    'page index size field at offset 182 says 9 bytes, the index has 8',
  ],
  [
    'a post-apply checksum without bit 63 (checksums on)',
    () => edited(incremental, (_, v) => v.setBigUint64(190, 0x5678n)),
    'LTX_BAD_CHECKSUM',
    'post-apply checksum 0x0000000000005678 at offset 190 lacks bit 63',
  ],
  [
    'a post-apply checksum with NoChecksum',
    () => {
      const b = golden('go_v3_no_checksum.ltx');
      return edited(b, (_, v) => v.setBigUint64(b.length - 16, 0x8000000000000001n));
    },
    'LTX_BAD_CHECKSUM',
    'post-apply checksum 0x8000000000000001 at offset 166 must be 0 with the NoChecksum flag',
  ],
  [
    'a file checksum without bit 63',
    () => edited(incremental, (_, v) => v.setBigUint64(198, 0x51f8ea546c262bd3n)),
    'LTX_BAD_CHECKSUM',
    'file checksum 0x51f8ea546c262bd3 lacks bit 63',
  ],
  [
    'a file checksum that does not match',
    () => edited(incremental, (_, v) => v.setBigUint64(198, 0x8000000000000001n)),
    'LTX_BAD_CHECKSUM',
    'file checksum mismatch: trailer says 0x8000000000000001, contents give 0xd1f8ea546c262bd3',
  ],
  [
    "a snapshot whose post-apply checksum is not its pages' (file checksum resealed)",
    () => {
      const b = golden('celld_v052_two_page_snapshot.ltx');
      return resealLtxFile(
        b,
        edited(b, (_, v) => v.setBigUint64(b.length - 16, 0x8000000000000001n)),
      );
    },
    'LTX_BAD_CHECKSUM',
    "post-apply checksum mismatch: trailer says 0x8000000000000001, the snapshot's pages give 0xa09639bc718d9c58",
  ],
  [
    'bytes after the trailer',
    () => concat(incremental, [0]),
    'LTX_BAD_INDEX',
    '1 unexpected bytes after the trailer at offset 206',
  ],
];

describe('decoder refusals (golden files with one edit)', () => {
  for (const [what, make, code, message] of cases) {
    it(`${what}: whole file and stream`, async () => {
      const bytes = make();
      expect(refusal(bytes)).toEqual({ code, message });
      for (const size of [1, 7, 64, bytes.length])
        expect(await streamRefusal(bytes, size), `chunks of ${size}`).toEqual({ code, message });
    });
  }

  it('the golden file itself decodes (the edits above are what is refused)', async () => {
    expect(decodeLtxFile(incremental).pages.map((p) => p.pgno)).toEqual([1, 3]);
    const d = new LtxStreamDecoder(chunks(incremental, 5));
    expect((await d.trailer()).index.length).toBe(2);
  });

  it('a file cut short says in which part and at which byte', () => {
    for (const [n, part] of [
      [0, 'header'],
      [99, 'header'],
      [100, 'page block'],
      [133, 'page block'],
      [170, 'page block'],
      [174, 'page index'],
      [181, 'page index'],
      [182, 'index size'],
      [189, 'index size'],
      [190, 'trailer'],
      [205, 'trailer'],
    ] as const) {
      expect(refusal(incremental.subarray(0, n)), `cut at ${n}`).toEqual({
        code: 'LTX_TRUNCATED',
        message: `LTX file truncated in the ${part} at offset ${n}`,
      });
    }
  });

  it('verify: false skips the checksums but not the structure', () => {
    const wrongSum = edited(incremental, (_, v) => v.setBigUint64(198, 0x8000000000000001n));
    expect(decodeLtxFile(wrongSum, { verify: false }).trailer.fileChecksum).toBe(0x8000000000000001n);
    const wrongIndex = edited(incremental, (b) => void b.set([0x23], 176));
    expect(() => decodeLtxFile(wrongIndex, { verify: false })).toThrow(/page index entry at offset 174/);
  });
});

describe('stream decoder use', () => {
  it('an empty or short stream ends before its header or trailer', async () => {
    await expect(new LtxStreamDecoder(chunks(new Uint8Array(0), 1)).header()).rejects.toMatchObject({
      code: 'LTX_TRUNCATED',
      message: 'LTX file truncated in the header at offset 0',
    });
    const d = new LtxStreamDecoder(chunks(incremental.subarray(0, 150), 10));
    expect((await d.header()).minTxid).toBe(2);
    await expect(d.trailer()).rejects.toMatchObject({
      code: 'LTX_TRUNCATED',
      message: 'LTX file truncated in the page block at offset 150',
    });
  });

  it('pages() can be iterated once; header() and trailer() give the golden values', async () => {
    const d = new LtxStreamDecoder(chunks(incremental, 13));
    const pgnos: number[] = [];
    for await (const p of d.pages()) pgnos.push(p.pgno);
    expect(pgnos).toEqual([1, 3]);
    await expect(d.pages().next()).rejects.toMatchObject({
      code: 'BAD_ARGUMENT',
      message: 'LtxStreamDecoder.pages() can be iterated only once',
    });
    expect((await d.header()).commit).toBe(3);
    const { trailer, index } = await d.trailer();
    expect(trailer.fileChecksum).toBe(0xd1f8ea546c262bd3n);
    expect(index).toEqual([
      { pgno: 1, offset: 100, size: 34 },
      { pgno: 3, offset: 134, size: 34 },
    ]);
  });

  it('trailer() after reading only some pages reads on to the end', async () => {
    const d = new LtxStreamDecoder(chunks(incremental, 3));
    const it = d.pages();
    expect((await it.next()).value?.pgno).toBe(1);
    expect((await d.trailer()).index.length).toBe(2);
  });
});
