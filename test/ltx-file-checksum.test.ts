import { describe, expect, it } from 'vitest';
import {
  decodeLtxFile,
  encodeLtxFile,
  initZstd,
  LtxFileChecksum,
  type PageEncoding,
} from '../src/ltx/index.js';
import { isLtxvfsError } from '../src/util/errors.js';
import { seededRandom } from '../src/util/random.js';

await initZstd();

// The streaming file checksum must accept exactly what the encoder wrote (its trailer is the
// expected value) fed frame by frame, in any split, and after a resume from its saved progress.
function sample(encoding: PageEncoding): Uint8Array {
  const random = seededRandom(7);
  const pages = [1, 2, 5].map((pgno) => ({
    pgno,
    data: new Uint8Array(4096).map((_, i) => (i % 7 === 0 ? Math.floor(random() * 256) : pgno)),
  }));
  return encodeLtxFile(
    {
      flags: 2,
      pageSize: 4096,
      commit: 5,
      minTxid: 3,
      maxTxid: 3,
      timestamp: 1,
      preApplyChecksum: 0n,
      walOffset: 0,
      walSize: 0,
      walSalt1: 0,
      walSalt2: 0,
      nodeId: 0n,
    },
    pages,
    { encoding },
  );
}

function feed(bytes: Uint8Array, resumeAfterFrame: number | undefined, flip?: number): LtxFileChecksum {
  const file = new Uint8Array(bytes);
  const decoded = decodeLtxFile(bytes);
  if (flip !== undefined) file[flip] = (file[flip] ?? 0) ^ 1;
  let sum = new LtxFileChecksum(file.length).update(file.subarray(0, 100));
  let end = 100;
  decoded.pages.forEach((p, i) => {
    sum.updateFrame(file.subarray(p.offset, p.offset + p.size), p.data);
    end = p.offset + p.size;
    if (i === resumeAfterFrame) sum = new LtxFileChecksum(file.length, sum.progress());
  });
  sum.update(file.subarray(end, end + 3)).update(file.subarray(end + 3));
  return sum;
}

describe('LtxFileChecksum', () => {
  for (const encoding of ['lz4-block', 'lz4-frame', 'zstd'] as PageEncoding[]) {
    it(`${encoding}: matches the encoder's trailer frame by frame, also resumed mid-file`, () => {
      const bytes = sample(encoding);
      expect(() => feed(bytes, undefined).verify()).not.toThrow();
      expect(() => feed(bytes, 0).verify()).not.toThrow();
      expect(() => feed(bytes, 1).verify()).not.toThrow();
    });
  }

  it('a flipped header, index or trailer bit, or a short stream, is LTX_BAD_CHECKSUM', () => {
    const bytes = sample('lz4-block');
    for (const at of [13, bytes.length - 30, bytes.length - 12, bytes.length - 1]) {
      let err: unknown;
      try {
        feed(bytes, undefined, at).verify();
      } catch (e) {
        err = e;
      }
      expect(isLtxvfsError(err, 'LTX_BAD_CHECKSUM'), `flip at ${at}`).toBe(true);
    }
    const short = new LtxFileChecksum(bytes.length).update(bytes.subarray(0, bytes.length - 1));
    expect(() => short.verify()).toThrow(/arrived/);
  });
});
