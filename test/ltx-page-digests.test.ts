import { describe, expect, it } from 'vitest';
import {
  computePageDigests,
  decodeLtxFile,
  decodePageDigests,
  encodePageDigests,
  layoutDigest,
  type PageDigests,
  pageDigest,
  pageDigestsObjectName,
} from '../src/ltx/index.js';
import { defined } from './support/defined.js';
import { ltxFileBytes, tagPage } from './support/ltx-spec.js';

async function* chunksOf(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const invalid = expect.objectContaining({ code: 'PAGE_DIGESTS_INVALID' });

describe('page digests (sidecar of a large LTX object)', () => {
  it('a page digest is xxh32 of the page (known answers of the xxHash reference)', () => {
    const enc = new TextEncoder();
    expect(pageDigest(new Uint8Array(0))).toBe(0x02cc5d05);
    expect(pageDigest(enc.encode('a'))).toBe(0x550d7456);
    expect(pageDigest(enc.encode('abc'))).toBe(0x32d153ff);
  });

  it('computed from the bytes of an LTX file, streamed in odd chunks: one digest per page in index order, the trailer checksum, the layout of the index', async () => {
    const pgnos = [1, 2, 5, 9, 40];
    const bytes = ltxFileBytes({
      pageSize: 1024,
      minTxid: 3,
      maxTxid: 17,
      pages: pgnos.map((pgno) => ({ pgno })),
    });
    const d = await computePageDigests(2, chunksOf(bytes, 333), bytes.length);
    const decoded = decodeLtxFile(bytes);
    expect(d.level).toBe(2);
    expect([d.minTxid, d.maxTxid, d.objectSize]).toEqual([3, 17, bytes.length]);
    expect(d.fileChecksum).toBe(decoded.trailer.fileChecksum);
    // The trailer's last 8 bytes are the file checksum, read here straight from the bytes.
    expect(d.fileChecksum).toBe(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(bytes.length - 8));
    expect([...d.digests]).toEqual(pgnos.map((pgno) => pageDigest(tagPage(1024, pgno))));
    const idx = decoded.index;
    expect(d.layout).toBe(
      layoutDigest(
        idx.map((e) => e.pgno),
        idx.map((e) => e.offset),
        idx.map((e) => e.size),
      ),
    );
  });

  it('a corrupt LTX file gets no digests (its checksum fails while they are computed)', async () => {
    const bytes = ltxFileBytes({ pageSize: 512, pages: [{ pgno: 1 }, { pgno: 2 }] });
    bytes[150] = (bytes[150] ?? 0) ^ 0x10;
    await expect(computePageDigests(1, chunksOf(bytes, 64), bytes.length)).rejects.toMatchObject({
      code: expect.stringMatching(/^LTX_/),
    });
  });

  const sample: PageDigests = {
    level: 9,
    minTxid: 1,
    maxTxid: 0x1_0000_0001,
    objectSize: 5_000_000,
    fileChecksum: 0x8123456789abcdefn,
    layout: 0xdeadbeef,
    digests: Uint32Array.of(0, 1, 0xffffffff, 0x12345678),
  };

  it('round-trips, and every single flipped bit, truncation or extension is PAGE_DIGESTS_INVALID', () => {
    const bytes = encodePageDigests(sample);
    expect(bytes.length).toBe(56 + 4 * 4 + 4);
    expect(decodePageDigests(bytes)).toEqual(sample);
    for (let at = 0; at < bytes.length; at++) {
      for (let bit = 0; bit < 8; bit++) {
        const flipped = bytes.slice();
        flipped[at] = defined(flipped[at], 'byte') ^ (1 << bit);
        expect(() => decodePageDigests(flipped, 'x')).toThrow(invalid);
      }
    }
    expect(() => decodePageDigests(bytes.subarray(0, bytes.length - 1))).toThrow(invalid);
    expect(() => decodePageDigests(new Uint8Array([...bytes, 0]))).toThrow(invalid);
    expect(() => decodePageDigests(new Uint8Array(10))).toThrow(invalid);
  });

  it('the error names its source', () => {
    expect(() => decodePageDigests(new Uint8Array(3), 's3://b/p ltxvfs/digests/L9/x')).toThrow(
      /s3:\/\/b\/p ltxvfs\/digests\/L9\/x/,
    );
  });

  it('lives under ltxvfs/digests/, outside every level prefix Litestream lists', () => {
    expect(pageDigestsObjectName({ level: 3, minTxid: 0x10, maxTxid: 0x2f })).toBe(
      'ltxvfs/digests/L3/0000000000000010-000000000000002f',
    );
  });
});
