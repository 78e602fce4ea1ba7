import { describe, expect, it } from 'vitest';
import {
  decodeLz4Frame,
  encodeLz4Frame,
  frameDescriptorChecksum,
  lz4FrameExtent,
} from '../src/ltx/lz4-frame.js';
import { xxh32 } from '../src/ltx/xxh32.js';
import { isLtxvfsError } from '../src/util/errors.js';

// Legacy page payloads: LZ4 frames built by hand from the LZ4 frame format (lz4's
// doc/lz4_Frame_format.md): magic 0x184D2204 LE, FLG (version 01, block independence, block
// checksum, content size, content checksum, reserved, dictionary ID), BD (block max size code
// 4..7 in bits 4-6), the header checksum (second byte of xxh32 of the descriptor), blocks (u32
// LE size, bit 31 = stored), end mark 0, the content checksum. xxh32 is held to the C reference
// in ltx-xxh32-known.

interface Block {
  bytes: number[];
  stored?: boolean;
  /** Block checksum to write (default the right one, when FLG asks for them). */
  checksum?: number;
}

function frame(
  opts: {
    flg?: number;
    bd?: number;
    hc?: number;
    contentSize?: number;
    blocks: Block[];
    contentChecksum?: number;
  },
  content?: Uint8Array,
): Uint8Array {
  const flg = opts.flg ?? 0x64;
  const bd = opts.bd ?? 0x40;
  const out: number[] = [0x04, 0x22, 0x4d, 0x18];
  const descriptor = [flg, bd];
  if (flg & 0x08) {
    const cs = opts.contentSize ?? 0;
    descriptor.push(cs & 0xff, (cs >> 8) & 0xff, (cs >> 16) & 0xff, cs >>> 24, 0, 0, 0, 0);
  }
  out.push(...descriptor, opts.hc ?? frameDescriptorChecksum(Uint8Array.from(descriptor)));
  const le = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  for (const b of opts.blocks) {
    out.push(...le((b.bytes.length | (b.stored ? 0x80000000 : 0)) >>> 0), ...b.bytes);
    if (flg & 0x10) out.push(...le(b.checksum ?? xxh32(Uint8Array.from(b.bytes)) >>> 0));
  }
  out.push(0, 0, 0, 0);
  if (flg & 0x04) out.push(...le(opts.contentChecksum ?? xxh32(content ?? new Uint8Array(0)) >>> 0));
  return Uint8Array.from(out);
}

const PAGE = 512;
const page = new Uint8Array(PAGE).map((_, i) => (i * 11 + 1) & 0xff);
const half = (k: 0 | 1) => Array.from(page.subarray(k * 256, k * 256 + 256));

function refusal(f: Uint8Array, size = PAGE): { code: string | undefined; message: string } {
  try {
    decodeLz4Frame(f, 0, f.length, size);
  } catch (err) {
    return { code: isLtxvfsError(err) ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error('expected a refusal');
}

describe('legacy LZ4 frames, hand-built', () => {
  it("Litestream's descriptor (FLG 0x64, BD 0x40) has header checksum 0xa7", () => {
    expect(frameDescriptorChecksum(Uint8Array.of(0x64, 0x40))).toBe(0xa7);
    const ours = encodeLz4Frame(page, 'pierrec');
    expect(Array.from(ours.subarray(0, 7))).toEqual([0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7]);
  });

  it('decodes stored blocks, two blocks, block checksums and a declared content size', () => {
    const one = frame({ blocks: [{ bytes: Array.from(page), stored: true }] }, page);
    expect(decodeLz4Frame(one, 0, one.length, PAGE)).toEqual(page);
    const two = frame(
      {
        blocks: [
          { bytes: half(0), stored: true },
          { bytes: half(1), stored: true },
        ],
      },
      page,
    );
    expect(decodeLz4Frame(two, 0, two.length, PAGE)).toEqual(page);
    const checked = frame(
      {
        flg: 0x74,
        blocks: [
          { bytes: half(0), stored: true },
          { bytes: half(1), stored: true },
        ],
      },
      page,
    );
    expect(decodeLz4Frame(checked, 0, checked.length, PAGE)).toEqual(page);
    const sized = frame(
      { flg: 0x6c, contentSize: PAGE, blocks: [{ bytes: Array.from(page), stored: true }] },
      page,
    );
    expect(decodeLz4Frame(sized, 0, sized.length, PAGE)).toEqual(page);
    expect(lz4FrameExtent(sized, 0, sized.length, PAGE)).toBe(sized.length);
    // No content checksum (FLG 0x60), and dependent blocks (FLG 0x44) with a compressed second
    // block that copies from the first: 'A' + offset 256, match 15 + 237 + 4 = 256 bytes.
    const plain = frame({ flg: 0x60, blocks: [{ bytes: Array.from(page), stored: true }] });
    expect(decodeLz4Frame(plain, 0, plain.length, PAGE)).toEqual(page);
    const first = half(0);
    const dependent = frame(
      { flg: 0x44, blocks: [{ bytes: first, stored: true }, { bytes: [0x0f, 0x00, 0x01, 237, 0x00] }] },
      Uint8Array.from([...first, ...first]),
    );
    // A sequence of zero literals may end a block.
    expect(Array.from(decodeLz4Frame(dependent, 0, dependent.length, PAGE))).toEqual([...first, ...first]);
    const dependentOk = frame(
      { flg: 0x44, blocks: [{ bytes: first, stored: true }, { bytes: [0x0f, 0x00, 0x01, 236, 0x10, 7] }] },
      Uint8Array.from([...first, ...first.slice(0, 255), 7]),
    );
    expect(Array.from(decodeLz4Frame(dependentOk, 0, dependentOk.length, PAGE))).toEqual([
      ...first,
      ...first.slice(0, 255),
      7,
    ]);
  });

  it('refuses each malformed frame with LTX_BAD_COMPRESSION saying what', () => {
    const good = () => frame({ blocks: [{ bytes: Array.from(page), stored: true }] }, page);
    const edit = (f: Uint8Array, at: number, v: number) => {
      const b = new Uint8Array(f);
      b[at] = v;
      return b;
    };
    const cases: [Uint8Array, string][] = [
      [edit(good(), 0, 0x05), 'bad magic 0x184d2205'],
      [frame({ flg: 0xa4, blocks: [] }), 'unsupported frame version in FLG 0xa4'],
      [frame({ flg: 0x24, blocks: [] }), 'unsupported frame version in FLG 0x24'],
      [frame({ flg: 0x66, blocks: [] }), 'reserved bit set in FLG 0x66'],
      [frame({ flg: 0x65, blocks: [] }), 'dictionary frames are not supported'],
      [
        frame({ bd: 0xc0, blocks: [{ bytes: Array.from(page), stored: true }] }, page),
        'reserved bits set in BD 0xc0',
      ],
      [
        frame({ bd: 0x41, blocks: [{ bytes: Array.from(page), stored: true }] }, page),
        'reserved bits set in BD 0x41',
      ],
      [
        frame({ bd: 0x30, blocks: [{ bytes: Array.from(page), stored: true }] }, page),
        'invalid block maximum size code 3',
      ],
      [
        frame({ hc: 0x00, blocks: [{ bytes: Array.from(page), stored: true }] }, page),
        'descriptor checksum 0x00 should be 0xa7',
      ],
      [
        frame({ flg: 0x6c, contentSize: 511, blocks: [{ bytes: Array.from(page), stored: true }] }, page),
        'content size 511 is not the page size 512',
      ],
      [
        frame({ flg: 0x74, blocks: [{ bytes: Array.from(page), stored: true, checksum: 1 }] }, page),
        'block checksum mismatch',
      ],
      [
        frame({ blocks: [{ bytes: Array.from(page), stored: true }], contentChecksum: 0x1234 }, page),
        `content checksum 0x${(xxh32(page) >>> 0).toString(16)} does not match 0x1234`,
      ],
      [
        frame({ blocks: [{ bytes: half(0), stored: true }] }, page),
        'decompressed to 256 bytes, expected the page size 512',
      ],
      [
        frame(
          {
            blocks: [
              { bytes: Array.from(page), stored: true },
              { bytes: [1], stored: true },
            ],
          },
          page,
        ),
        'decompressed data larger than the page',
      ],
    ];
    for (const [f, what] of cases) {
      expect(refusal(f), what).toEqual({
        code: 'LTX_BAD_COMPRESSION',
        message: `invalid LZ4 frame: ${what}`,
      });
    }
  });

  it('a block larger than the maximum BD allows (64 KiB) is refused', () => {
    const bytes = new Array(65537).fill(0);
    const f = frame({ blocks: [{ bytes, stored: true }] });
    expect(refusal(f, 65536).message).toBe(
      "invalid LZ4 frame: block of 65537 bytes exceeds the frame's maximum 65536",
    );
  });

  it('lengths: truncated frames say how much they need, trailing bytes are refused, absurd sizes stop early', () => {
    const f = frame({ blocks: [{ bytes: Array.from(page), stored: true }] }, page);
    expect(lz4FrameExtent(f, 0, 6, PAGE)).toBe(-7);
    expect(lz4FrameExtent(f, 0, 7, PAGE)).toBe(-11);
    expect(lz4FrameExtent(f, 0, 11, PAGE)).toBe(-(11 + 512 + 4));
    expect(lz4FrameExtent(f, 0, f.length - 1, PAGE)).toBe(-f.length);
    expect(lz4FrameExtent(f, 0, f.length, PAGE)).toBe(f.length);
    expect(refusal(f.subarray(0, f.length - 1))).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: `invalid LZ4 frame: frame truncated: needs at least ${f.length} bytes, has ${f.length - 1}`,
    });
    const longer = new Uint8Array(f.length + 2);
    longer.set(f);
    expect(refusal(longer)).toEqual({
      code: 'LTX_BAD_COMPRESSION',
      message: 'invalid LZ4 frame: 2 unexpected bytes after the end of the frame',
    });
    // A block size word claiming 1 GiB: refused from the 11 bytes before it, without waiting.
    const huge = Uint8Array.from([0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0, 0, 0, 0x40]);
    expect(() => lz4FrameExtent(huge, 0, huge.length, PAGE)).toThrow(
      'invalid LZ4 frame: frame longer than 594 bytes for a 512-byte page',
    );
  });
});
