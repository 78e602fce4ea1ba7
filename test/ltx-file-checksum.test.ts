import { readFileSync } from 'node:fs';
import { join } from 'node:path';
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
import { thrown } from './support/thrown.js';

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

// Golden files (test/fixtures/SOURCES.md): their trailers hold superfly/ltx's file checksums, so
// feeding one in any split must verify, and the messages name what is wrong.
const goldenDir = join(import.meta.dirname, 'fixtures/litestream/nullstyle-ltx-zig/tests/fixtures');
const golden = (name: string) => new Uint8Array(readFileSync(join(goldenDir, name)));

/** The golden file streamed as header, frames (with their known decoded pages), then the rest. */
function feedGolden(bytes: Uint8Array, split: number): LtxFileChecksum {
  const decoded = decodeLtxFile(bytes);
  const sum = new LtxFileChecksum(bytes.length);
  sum.update(bytes.subarray(0, split)).update(bytes.subarray(split, 100));
  let end = 100;
  for (const p of decoded.pages) {
    sum.updateFrame(bytes.subarray(p.offset, p.offset + p.size), p.data);
    end = p.offset + p.size;
  }
  return sum.update(bytes.subarray(end));
}

describe('LtxFileChecksum over golden files and at its edges', () => {
  for (const name of [
    'go_v3_incremental.ltx',
    'go_v3_legacy_unflagged.ltx',
    'go_v3_legacy_mixed.ltx',
    'celld_v052_two_page_snapshot.ltx',
  ]) {
    it(`${name}: verifies (block and legacy frame prefixes hashed as the spec says)`, () => {
      const bytes = golden(name);
      for (const split of [0, 1, 50, 100]) expect(() => feedGolden(bytes, split).verify()).not.toThrow();
    });
  }

  it('a page-less file verifies fed as raw bytes in every split, also across the stored checksum', () => {
    const bytes = golden('go_v3_empty_snapshot.ltx');
    for (let a = 0; a <= bytes.length; a++) {
      for (const b of [a, Math.min(bytes.length, a + 1), Math.min(bytes.length, a + 5), bytes.length]) {
        const sum = new LtxFileChecksum(bytes.length)
          .update(bytes.subarray(0, a))
          .update(bytes.subarray(a, b))
          .update(bytes.subarray(b));
        expect(() => sum.verify(), `split ${a}/${b}`).not.toThrow();
      }
    }
  });

  it('a mismatch names both checksums (the trailer says 0xef752d544ac8c48f for this file)', () => {
    const bytes = golden('go_v3_empty_snapshot.ltx');
    bytes[bytes.length - 1] = 0x8e;
    const e = thrown(() => new LtxFileChecksum(bytes.length).update(bytes).verify());
    expect(e.code).toBe('LTX_BAD_CHECKSUM');
    expect(e.message).toBe(
      'file checksum mismatch: trailer says 0xef752d544ac8c48e, contents give 0xef752d544ac8c48f',
    );
    // A stored value with leading zero digits is shown at its full 16 digits.
    new DataView(bytes.buffer).setBigUint64(bytes.length - 8, 0x1abn);
    expect(thrown(() => new LtxFileChecksum(bytes.length).update(bytes).verify()).message).toBe(
      'file checksum mismatch: trailer says 0x00000000000001ab, contents give 0xef752d544ac8c48f',
    );
    const sameBytesOtherPage = golden('go_v3_incremental.ltx');
    const decoded = decodeLtxFile(sameBytesOtherPage);
    const first = decoded.pages[0];
    if (first === undefined) throw new Error('no page');
    const sum = new LtxFileChecksum(sameBytesOtherPage.length).update(sameBytesOtherPage.subarray(0, 100));
    // The checksum covers the decoded page, not the compressed bytes: a different page fails.
    sum.updateFrame(
      sameBytesOtherPage.subarray(first.offset, first.offset + first.size),
      new Uint8Array(512),
    );
    sum.update(sameBytesOtherPage.subarray(first.offset + first.size));
    expect(thrown(() => sum.verify()).message).toMatch(
      /^file checksum mismatch: trailer says 0xd1f8ea546c262bd3/,
    );
  });

  it('an object too small for a trailer, or not a whole number of bytes, is refused up front', () => {
    for (const size of [0, 15, -1, 100.5, Number.NaN, 2 ** 53]) {
      const e = thrown(() => new LtxFileChecksum(size));
      expect(e.code).toBe('LTX_BAD_CHECKSUM');
      expect(e.message).toBe(`a ${size}-byte object is too short to hold an LTX trailer`);
    }
    expect(() => new LtxFileChecksum(16)).not.toThrow();
  });

  it('resume only inside the checksummed part (0 ..= size - 8)', () => {
    expect(() => new LtxFileChecksum(100, { received: 0, crc: 0n })).not.toThrow();
    expect(() => new LtxFileChecksum(100, { received: 92, crc: 0n })).not.toThrow();
    for (const received of [-1, 93, 100]) {
      const e = thrown(() => new LtxFileChecksum(100, { received, crc: 0n }));
      expect(e.code).toBe('LTX_BAD_CHECKSUM');
      expect(e.message).toBe(`cannot resume a 100-byte object at byte ${received}`);
    }
    // A resumed stream continues from the saved CRC and byte count.
    const bytes = golden('go_v3_empty_snapshot.ltx');
    for (const at of [0, 1, 60, bytes.length - 8]) {
      const first = new LtxFileChecksum(bytes.length).update(bytes.subarray(0, at));
      const saved = first.progress();
      expect(saved?.received).toBe(at);
      const resumed = new LtxFileChecksum(bytes.length, saved).update(bytes.subarray(at));
      expect(() => resumed.verify(), `resume at ${at}`).not.toThrow();
    }
  });

  it('progress is available until the stored checksum bytes start arriving', () => {
    const bytes = golden('go_v3_empty_snapshot.ltx');
    const sum = new LtxFileChecksum(bytes.length);
    sum.update(bytes.subarray(0, bytes.length - 8));
    expect(sum.progress()?.received).toBe(bytes.length - 8);
    sum.update(bytes.subarray(bytes.length - 8, bytes.length - 7));
    expect(sum.progress()).toBeUndefined();
    const full = new LtxFileChecksum(bytes.length).update(bytes);
    expect(full.progress()).toBeUndefined();
  });

  it('more bytes than the object holds, or a frame reaching into the checksum, is refused', () => {
    const bytes = golden('go_v3_incremental.ltx');
    const over = thrown(() => new LtxFileChecksum(bytes.length).update(bytes).update(new Uint8Array(1)));
    expect(over).toEqual({
      code: 'LTX_BAD_CHECKSUM',
      message: `more than the ${bytes.length} bytes the object should hold`,
    });
    const frame = bytes.subarray(100, 120);
    const page = new Uint8Array(512);
    // A frame ending where the stored checksum starts is allowed; one byte further is not.
    const fits = new LtxFileChecksum(128).update(new Uint8Array(100));
    expect(() => fits.updateFrame(frame.subarray(0, 20), page)).not.toThrow();
    const intoTrailer = new LtxFileChecksum(127).update(new Uint8Array(100));
    expect(thrown(() => intoTrailer.updateFrame(frame, page))).toEqual({
      code: 'LTX_BAD_CHECKSUM',
      message: 'a page frame at byte 100 overlaps the trailer',
    });
    const pastEnd = new LtxFileChecksum(110).update(new Uint8Array(100));
    expect(thrown(() => pastEnd.updateFrame(frame, page)).message).toBe(
      'more than the 110 bytes the object should hold',
    );
    // Shorter than a page header (6 bytes) is not a frame.
    const short = new LtxFileChecksum(200).update(new Uint8Array(100));
    expect(thrown(() => short.updateFrame(frame.subarray(0, 5), page)).message).toBe(
      'a page frame at byte 100 overlaps the trailer',
    );
    expect(() =>
      new LtxFileChecksum(200).update(new Uint8Array(100)).updateFrame(frame.subarray(0, 6), page),
    ).not.toThrow();
  });

  it('a stream short of, or past, the stored checksum says how many bytes arrived', () => {
    const bytes = golden('go_v3_empty_snapshot.ltx');
    const short = new LtxFileChecksum(bytes.length).update(bytes.subarray(0, bytes.length - 3));
    expect(thrown(() => short.verify())).toEqual({
      code: 'LTX_BAD_CHECKSUM',
      message: `file checksum not checked: ${bytes.length - 3} of ${bytes.length} bytes arrived`,
    });
  });
});
