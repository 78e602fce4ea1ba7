import { describe, expect, it } from 'vitest';
import {
  decodeManifest,
  encodeManifest,
  encodePageIndex,
  inlineIndexBytes,
  isManifestFresh,
  type Manifest,
} from '../src/ltx/index.js';

function sample(): Manifest {
  const index = encodePageIndex([{ pgno: 3, offset: 100, size: 60 }]);
  return {
    format: 'ltxvfs-manifest',
    version: 1,
    writer: { id: 'a1b2c3', host: 'primary-1', pid: 4242 },
    generation: 17,
    txid: 12,
    pageSize: 4096,
    writtenAt: Date.UTC(2026, 11, 2, 12, 0, 0),
    staleAfterMs: 15_000,
    files: [
      {
        level: 9,
        minTxid: 1,
        maxTxid: 10,
        size: 9_000_000,
        timestamp: 1,
        commit: 2000,
        indexOffset: 8_980_000,
        indexSize: 19_976,
      },
      {
        level: 0,
        minTxid: 11,
        maxTxid: 12,
        size: 400,
        timestamp: 2,
        commit: 2000,
        indexOffset: 166,
        indexSize: index.length,
        index: Buffer.from(index).toString('base64'),
      },
    ],
    hot: { object: 'ltxvfs/hot.ltx', txid: 10, size: 80_000, pages: 14 },
  };
}

const invalid = expect.objectContaining({ code: 'MANIFEST_INVALID' });

describe('manifest format', () => {
  it('round-trips, carrying small page indexes byte for byte', () => {
    const m = sample();
    const back = decodeManifest(encodeManifest(m));
    expect(back).toEqual(m);
    const f = back.files[1];
    if (f === undefined) throw new Error('file missing');
    expect(Array.from(inlineIndexBytes(f) ?? [])).toEqual(
      Array.from(encodePageIndex([{ pgno: 3, offset: 100, size: 60 }])),
    );
  });

  it('a flipped byte that keeps the JSON valid is caught by the checksum', () => {
    const bytes = encodeManifest(sample());
    const text = new TextDecoder().decode(bytes);
    const flipped = new TextEncoder().encode(text.replace('"txid":12', '"txid":13'));
    expect(() => decodeManifest(flipped)).toThrow(invalid);
  });

  it('a truncated manifest is invalid at every length', () => {
    const bytes = encodeManifest(sample());
    for (let n = 0; n < bytes.length - 1; n += 7) {
      expect(() => decodeManifest(bytes.subarray(0, n))).toThrow(invalid);
    }
  });

  it('other JSON (a foreign object in the same place) is invalid', () => {
    expect(() => decodeManifest(new TextEncoder().encode('{"hello":1}'))).toThrow(invalid);
  });

  it('rejects inconsistent content on encode: hot pages newer than the files, levels out of order, txid mismatch', () => {
    const hot = sample();
    hot.hot = { object: 'ltxvfs/hot.ltx', txid: 13, size: 1, pages: 1 };
    expect(() => encodeManifest(hot)).toThrow(invalid);
    const order = sample();
    order.files.push({ ...order.files[1], minTxid: 5, maxTxid: 6 } as Manifest['files'][number]);
    expect(() => encodeManifest(order)).toThrow(invalid);
    const txid = sample();
    txid.txid = 99;
    expect(() => encodeManifest(txid)).toThrow(invalid);
    const version = { ...sample(), version: 2 } as unknown as Manifest;
    expect(() => encodeManifest(version)).toThrow(invalid);
  });

  it('freshness: within writtenAt + staleAfterMs, stale after', () => {
    const m = sample();
    expect(isManifestFresh(m, m.writtenAt + 15_000)).toBe(true);
    expect(isManifestFresh(m, m.writtenAt + 15_001)).toBe(false);
  });
});
