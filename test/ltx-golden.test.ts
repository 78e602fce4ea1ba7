import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeLtxFile,
  decodePageFrame,
  encodeLtxFile,
  type LtxHeader,
  LtxStreamDecoder,
  lockPgno,
  parsePageIndexTail,
} from '../src/ltx/index.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { defined } from './support/defined.js';

const dir = join(import.meta.dirname, 'fixtures/litestream');
const zig = (name: string) => readFileSync(join(dir, 'nullstyle-ltx-zig/tests/fixtures', name));
const V1_PATH =
  'benbjohnson-litestream/testdata/store/open-and-write-snapshot/dbs/sqlite.db/ltx/000000000000000d-000000000000000d.ltx';

function filled(byte: number, n: number): Uint8Array {
  return new Uint8Array(n).fill(byte);
}

interface Known {
  file: string;
  header: Partial<LtxHeader>;
  pgnos: number[];
  /** Expected content of some pages (from SOURCES.md). */
  content?: Record<number, Uint8Array>;
  encodings: string[];
  post: bigint;
  fileChecksum: bigint;
}

const abcd1024 = new Uint8Array(1024).map((_, i) => 'abcd'.charCodeAt(i % 4));

// Known answers: test/fixtures/SOURCES.md (from the shared fixtures' SOURCES.md).
const KNOWN: Known[] = [
  {
    file: 'go_v3_snapshot_zero_page.ltx',
    header: { flags: 0, pageSize: 512, commit: 1, minTxid: 1, maxTxid: 1 },
    pgnos: [1],
    content: { 1: filled(0, 512) },
    encodings: ['lz4-block'],
    post: 0xefb1f44fecd99000n,
    fileChecksum: 0xeb5121d56d33a656n,
  },
  {
    file: 'go_v3_empty_snapshot.ltx',
    header: { flags: 0, pageSize: 512, commit: 0, minTxid: 1, maxTxid: 1 },
    pgnos: [],
    encodings: [],
    post: 0x8000000000000000n,
    fileChecksum: 0xef752d544ac8c48fn,
  },
  {
    file: 'go_v3_incremental.ltx',
    header: {
      flags: 0,
      pageSize: 512,
      commit: 3,
      minTxid: 2,
      maxTxid: 4,
      timestamp: -1000,
      preApplyChecksum: 0x8000000000001234n,
    },
    pgnos: [1, 3],
    content: { 1: filled(0x31, 512), 3: filled(0x33, 512) },
    encodings: ['lz4-block', 'lz4-block'],
    post: 0x8000000000005678n,
    fileChecksum: 0xd1f8ea546c262bd3n,
  },
  {
    file: 'go_v3_no_checksum.ltx',
    header: { flags: 2, pageSize: 4096, commit: 2, minTxid: 5, maxTxid: 5, timestamp: 2000 },
    pgnos: [2],
    content: { 2: filled(0xa5, 4096) },
    encodings: ['lz4-block'],
    post: 0n,
    fileChecksum: 0xc231c44dd37c4fc6n,
  },
  {
    file: 'go_v3_near_lock_page.ltx',
    header: {
      flags: 0,
      pageSize: 65536,
      commit: 16386,
      minTxid: 7,
      maxTxid: 8,
      timestamp: 3000,
      preApplyChecksum: 0x8000000000000111n,
    },
    pgnos: [16384, 16386],
    encodings: ['lz4-block', 'lz4-block'],
    post: 0x8000000000000222n,
    fileChecksum: 0xe2f9b76966a755f5n,
  },
  {
    file: 'go_v3_legacy_unflagged.ltx',
    header: { commit: 1, minTxid: 1, maxTxid: 1 },
    pgnos: [1],
    content: { 1: filled(0, 512) },
    encodings: ['lz4-frame'],
    post: 0xefb1f44fecd99000n,
    fileChecksum: 0xae80e1069c9bc795n,
  },
  {
    file: 'go_v3_legacy_mixed.ltx',
    header: { commit: 2, minTxid: 1, maxTxid: 1 },
    pgnos: [1, 2],
    encodings: ['lz4-frame', 'lz4-frame'],
    post: 0xff273ef830778b70n,
    fileChecksum: 0xc33c5c9b2434d957n,
  },
  {
    file: 'celld_v052_two_page_snapshot.ltx',
    header: { flags: 0, pageSize: 1024, commit: 2, minTxid: 1, maxTxid: 1, timestamp: 1000 },
    pgnos: [1, 2],
    content: { 1: filled(0x81, 1024), 2: abcd1024 },
    encodings: ['lz4-block', 'lz4-block'],
    post: 0xa09639bc718d9c58n,
    fileChecksum: 0xdc2f8726a386540en,
  },
];

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
}

describe('golden LTX files (superfly/ltx output)', () => {
  for (const k of KNOWN) {
    describe(k.file, () => {
      const bytes = zig(k.file);

      it('decodes to its known header, pages and trailer', () => {
        const f = decodeLtxFile(bytes);
        expect(f.header).toMatchObject(k.header);
        expect(f.pages.map((p) => p.pgno)).toEqual(k.pgnos);
        expect(f.pages.map((p) => p.encoding)).toEqual(k.encodings);
        for (const p of f.pages) {
          expect(p.data.length).toBe(f.header.pageSize);
          const want = k.content?.[p.pgno];
          if (want) expect(Buffer.from(p.data).equals(Buffer.from(want))).toBe(true);
        }
        expect(f.trailer.postApplyChecksum).toBe(k.post);
        expect(f.trailer.fileChecksum).toBe(k.fileChecksum);
        expect(f.index.map((e) => e.pgno)).toEqual(k.pgnos);
      });

      it('gives the same through the streaming decoder, in 7-byte chunks', async () => {
        const d = new LtxStreamDecoder(chunked(bytes, 7));
        expect(await d.header()).toMatchObject(k.header);
        const pgnos: number[] = [];
        for await (const p of d.pages()) pgnos.push(p.pgno);
        expect(pgnos).toEqual(k.pgnos);
        expect((await d.trailer()).trailer.fileChecksum).toBe(k.fileChecksum);
      });

      it('random access: the tail gives the index, each frame decodes to the full-decode page', () => {
        const whole = decodeLtxFile(bytes);
        const tail = parsePageIndexTail(bytes.subarray(bytes.length - 40), bytes.length);
        let result = tail;
        if (tail.kind === 'need-more')
          result = parsePageIndexTail(bytes.subarray(tail.indexStart), bytes.length);
        if (result.kind !== 'ok') throw new Error('index not parsed');
        expect(result.index).toEqual(whole.index);
        expect(result.trailer.fileChecksum).toBe(k.fileChecksum);
        const full = parsePageIndexTail(bytes, bytes.length);
        expect(full.kind === 'ok' && full.header).toMatchObject(k.header);
        for (const [i, e] of result.index.entries()) {
          const page = decodePageFrame(
            bytes.subarray(e.offset, e.offset + e.size),
            whole.header.pageSize,
            e.pgno,
          );
          expect(Buffer.from(page).equals(Buffer.from(defined(whole.pages[i]).data))).toBe(true);
        }
      });

      it('re-encoding its pages (same header and encoding) reproduces the file byte for byte', () => {
        const f = decodeLtxFile(bytes);
        const encoding = f.pages[0]?.encoding ?? 'lz4-block';
        const again = encodeLtxFile(f.header, f.pages, {
          encoding,
          compressor: 'pierrec',
          postApplyChecksum: f.trailer.postApplyChecksum,
        });
        const back = decodeLtxFile(again);
        expect(back.trailer.fileChecksum).toBe(k.fileChecksum);
        expect(back.trailer.postApplyChecksum).toBe(k.post);
        // The 'pierrec' compressor reproduces pierrec/lz4's output, so the file is byte-identical.
        expect(Buffer.from(again).equals(bytes)).toBe(true);
      });
    });
  }

  it('lock page of 64 KiB pages is 16385 and is absent from the near-lock-page file', () => {
    expect(lockPgno(65536)).toBe(16385);
    expect(lockPgno(4096)).toBe(262145);
  });

  it('the legacy mixed file has a stored (uncompressed) block for page 2', () => {
    const bytes = zig('go_v3_legacy_mixed.ltx');
    const page2 = decodeLtxFile(bytes).index[1];
    // Frame: 6-byte page header, 7-byte frame header, then the u32 LE block size with bit 31.
    const word = new DataView(bytes.buffer, bytes.byteOffset).getUint32(defined(page2).offset + 13, true);
    expect(word >>> 31).toBe(1);
    expect(word & 0x7fffffff).toBe(512);
  });
});

describe('legacy LTX v1', () => {
  const bytes = readFileSync(join(dir, V1_PATH));

  it('is rejected by the whole-file decoder as an unsupported old LTX version', () => {
    let err: unknown;
    try {
      decodeLtxFile(bytes);
    } catch (e) {
      err = e;
    }
    expect(isLtxvfsError(err, 'LTX_UNSUPPORTED_VERSION')).toBe(true);
    expect((err as Error).message).toMatch(/old LTX version/);
  });

  it('is rejected by the streaming decoder the same way', async () => {
    const d = new LtxStreamDecoder(chunked(bytes, 1000));
    await expect(d.trailer()).rejects.toMatchObject({ code: 'LTX_UNSUPPORTED_VERSION' });
  });
});
