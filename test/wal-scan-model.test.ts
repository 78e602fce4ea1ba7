/**
 * scanWal, walPositionAt, readWalFrame and walSaltPairs against a frame-by-frame model written
 * from SQLite's rules (walDecodeFrame: salts must match the header, then a non-zero page number,
 * then the cumulative checksum over the frame header's first 8 bytes and the page; the first
 * frame that fails ends the WAL; only committed transactions count; pages beyond the last
 * commit's database size are dropped). The WALs are synthetic, built here byte by byte with that
 * checksum written again (both byte orders), with one random defect (a foreign salt, page 0, a
 * flipped page byte, a cut frame) and random read chunking, byte limits and start positions.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bytesWalSource,
  decodeWalHeader,
  encodeWalHeader,
  readWalFrame,
  scanWal,
  WAL_FORMAT_VERSION,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
  type WalHeader,
  walPositionAt,
  walSaltPairs,
  walStartPosition,
} from '../src/wal/index.js';

const PAGE = 512;
const FRAME = 24 + PAGE;

function checksum(data: Uint8Array, bigEndian: boolean, s0: number, s1: number): [number, number] {
  const byte = (i: number) => data[i] ?? 0;
  const word = (i: number) =>
    bigEndian
      ? (byte(i) * 2 ** 24 + (byte(i + 1) << 16) + (byte(i + 2) << 8) + byte(i + 3)) >>> 0
      : (byte(i + 3) * 2 ** 24 + (byte(i + 2) << 16) + (byte(i + 1) << 8) + byte(i)) >>> 0;
  let a = s0;
  let b = s1;
  for (let i = 0; i + 8 <= data.length; i += 8) {
    a = (a + word(i) + b) % 2 ** 32;
    b = (b + word(i + 4) + a) % 2 ** 32;
  }
  return [a, b];
}

interface FrameSpec {
  pgno: number;
  /** Database size after this frame when it ends a transaction, else 0. */
  commit: number;
  fill: number;
}

type Defect = { kind: 'none' } | { kind: 'salt' | 'pgno' | 'checksum' | 'cut'; frame: number };

function buildWal(frames: FrameSpec[], bigEndian: boolean, defect: Defect, oldTail: number) {
  const headerBytes = encodeWalHeader({
    magic: bigEndian ? WAL_MAGIC_BE : WAL_MAGIC_LE,
    version: WAL_FORMAT_VERSION,
    pageSize: PAGE,
    checkpointSeq: 3,
    salt1: 0x11223344,
    salt2: 0x55667788,
  });
  const header = decodeWalHeader(headerBytes);
  // a leftover frame of an older generation after the valid ones (other salts), `oldTail` times
  const total = frames.length + oldTail;
  const out = new Uint8Array(32 + total * FRAME);
  out.set(headerBytes);
  const view = new DataView(out.buffer);
  let [s0, s1] = [header.checksum1, header.checksum2];
  frames.forEach((f, i) => {
    const at = 32 + i * FRAME;
    view.setUint32(at, f.pgno);
    view.setUint32(at + 4, f.commit);
    view.setUint32(at + 8, header.salt1);
    view.setUint32(at + 12, header.salt2);
    out.fill((f.fill + i) & 0xff, at + 24, at + FRAME);
    out[at + 24] = i & 0xff; // pages differ even with one fill
    [s0, s1] = checksum(out.subarray(at, at + 8), bigEndian, s0, s1);
    [s0, s1] = checksum(out.subarray(at + 24, at + FRAME), bigEndian, s0, s1);
    view.setUint32(at + 16, s0);
    view.setUint32(at + 20, s1);
  });
  for (let i = frames.length; i < total; i++) {
    const at = 32 + i * FRAME;
    view.setUint32(at, 1);
    view.setUint32(at + 4, 1);
    view.setUint32(at + 8, 0xdeadbeef);
    view.setUint32(at + 12, i);
  }
  let bytes = out;
  if (defect.kind !== 'none' && defect.frame < frames.length) {
    const at = 32 + defect.frame * FRAME;
    if (defect.kind === 'salt') view.setUint32(at + 12, header.salt2 ^ 1);
    if (defect.kind === 'pgno') view.setUint32(at, 0);
    if (defect.kind === 'checksum') out[at + 24 + 100] = (out[at + 24 + 100] ?? 0) ^ 0x40;
    if (defect.kind === 'cut') bytes = out.subarray(0, at + 100);
  }
  return { bytes, header };
}

/** Frame by frame, from `from` (a frame offset with its seed checksum). */
function model(
  bytes: Uint8Array,
  header: WalHeader,
  from: { offset: number; s0: number; s1: number },
  maxBytes: number,
) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  let [s0, s1] = [from.s0, from.s1];
  const committed = new Map<number, { offset: number; checksum1: number; checksum2: number }>();
  let pending = new Map<number, { offset: number; checksum1: number; checksum2: number }>();
  let end = { offset: from.offset, checksum1: from.s0, checksum2: from.s1 };
  let commit: number | null = null;
  let frames = 0;
  let pendingFrames = 0;
  let transactions = 0;
  let at = from.offset;
  let endReason = 'eof';
  for (;;) {
    if (at >= bytes.length) break;
    if (at + FRAME > bytes.length) {
      endReason = 'short';
      break;
    }
    if (view.getUint32(at + 8) !== header.salt1 || view.getUint32(at + 12) !== header.salt2) {
      endReason = 'salt';
      break;
    }
    const pgno = view.getUint32(at);
    if (pgno === 0) {
      endReason = 'pgno';
      break;
    }
    [s0, s1] = checksum(bytes.subarray(at, at + 8), header.bigEndianChecksum, s0, s1);
    [s0, s1] = checksum(bytes.subarray(at + 24, at + FRAME), header.bigEndianChecksum, s0, s1);
    if (s0 !== view.getUint32(at + 16) || s1 !== view.getUint32(at + 20)) {
      endReason = 'checksum';
      break;
    }
    pending.set(pgno, { offset: at, checksum1: s0, checksum2: s1 });
    pendingFrames++;
    at += FRAME;
    const size = view.getUint32(at - FRAME + 4);
    if (size !== 0) {
      for (const [p, ref] of pending) committed.set(p, ref);
      pending = new Map();
      frames += pendingFrames;
      pendingFrames = 0;
      transactions++;
      commit = size;
      end = { offset: at, checksum1: s0, checksum2: s1 };
      if (at - from.offset >= maxBytes) {
        endReason = 'limit';
        break;
      }
    }
  }
  const pages = [...committed]
    .filter(([p]) => commit === null || p <= commit)
    .map(([pgno, ref]) => ({ pgno, ...ref }))
    .sort((a, b) => a.pgno - b.pgno);
  return {
    end,
    commit,
    pages,
    frames,
    transactions,
    endReason,
    stoppedAt: endReason === 'limit' ? end.offset : at,
  };
}

const walArb = fc.record({
  txs: fc.array(
    fc.record({
      pages: fc.array(fc.integer({ min: 1, max: 12 }), { minLength: 1, maxLength: 5 }),
      size: fc.integer({ min: 1, max: 14 }),
    }),
    { minLength: 0, maxLength: 6 },
  ),
  uncommittedTail: fc.array(fc.integer({ min: 1, max: 12 }), { maxLength: 3 }),
  bigEndian: fc.boolean(),
  defect: fc.oneof(
    fc.constant<Defect>({ kind: 'none' }),
    fc.record({
      kind: fc.constantFrom('salt' as const, 'pgno' as const, 'checksum' as const, 'cut' as const),
      frame: fc.integer({ min: 0, max: 25 }),
    }),
  ),
  oldTail: fc.integer({ min: 0, max: 2 }),
  chunkFrames: fc.integer({ min: 1, max: 8 }),
  maxTx: fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
  startTx: fc.integer({ min: 0, max: 3 }),
  fill: fc.integer({ min: 0, max: 255 }),
});

describe('scanWal equals a frame-by-frame model of SQLite rules', () => {
  it('any WAL, defect, chunking, byte limit and start position', () => {
    fc.assert(
      fc.property(walArb, (w) => {
        const frames: FrameSpec[] = [];
        const commitEnds: number[] = [];
        for (const tx of w.txs) {
          tx.pages.forEach((pgno, i) => {
            frames.push({ pgno, commit: i === tx.pages.length - 1 ? tx.size : 0, fill: w.fill });
          });
          commitEnds.push(32 + frames.length * FRAME);
        }
        for (const pgno of w.uncommittedTail) frames.push({ pgno, commit: 0, fill: w.fill });
        const { bytes, header } = buildWal(frames, w.bigEndian, w.defect, w.oldTail);
        const source = bytesWalSource(bytes);
        // start at the header or after one of the first transactions (where the WAL has it)
        const startOffset = w.startTx === 0 ? 32 : (commitEnds[w.startTx - 1] ?? 32);
        const position = walPositionAt(source, header, startOffset);
        // The position is the checksum stored in the frame header just before it, when that
        // header is there and carries this WAL's salts.
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
        const previous = startOffset - FRAME;
        const readable = startOffset === 32 || previous + 24 <= bytes.length;
        const seeded = !readable
          ? undefined
          : startOffset === 32
            ? { offset: 32, s0: header.checksum1, s1: header.checksum2 }
            : { offset: startOffset, s0: view.getUint32(previous + 16), s1: view.getUint32(previous + 20) };
        const prevSaltOk =
          startOffset === 32 ||
          (readable &&
            view.getUint32(previous + 8) === header.salt1 &&
            view.getUint32(previous + 12) === header.salt2);
        if (seeded === undefined || !prevSaltOk) {
          expect(position).toBeNull();
          return;
        }
        expect(position).toEqual({ offset: seeded.offset, checksum1: seeded.s0, checksum2: seeded.s1 });
        const from = position ?? walStartPosition(header);
        const maxBytes = w.maxTx === undefined ? Number.POSITIVE_INFINITY : w.maxTx * FRAME;
        const scan = scanWal(source, header, from, {
          chunkBytes: w.chunkFrames * FRAME,
          ...(w.maxTx === undefined ? {} : { maxBytes }),
        });
        const expected = model(bytes, header, seeded, maxBytes);
        expect(scan.start).toEqual(from);
        expect({
          end: scan.end,
          commit: scan.commit,
          pages: [...scan.pages.values()].sort((a, b) => a.pgno - b.pgno),
          frames: scan.frames,
          transactions: scan.transactions,
          endReason: scan.endReason,
          stoppedAt: scan.stoppedAt,
        }).toEqual(expected);
        // every committed page reads back, and only while its frame is unchanged
        for (const ref of scan.pages.values()) {
          const page = readWalFrame(source, header, ref);
          expect(page && Buffer.from(page)).toEqual(
            Buffer.from(bytes.subarray(ref.offset + 24, ref.offset + FRAME)),
          );
          expect(readWalFrame(source, header, { ...ref, checksum2: (ref.checksum2 + 1) >>> 0 })).toBeNull();
          expect(readWalFrame(source, header, { ...ref, pgno: ref.pgno + 1 })).toBeNull();
          expect(
            readWalFrame(bytesWalSource(bytes.subarray(0, ref.offset + FRAME - 1)), header, ref),
          ).toBeNull();
        }
      }),
      { numRuns: 400 },
    );
  });

  it('walPositionAt refuses offsets that are not frame boundaries of this WAL', () => {
    const frames = [1, 2, 3].map((pgno, i) => ({ pgno, commit: i === 2 ? 3 : 0, fill: 9 }));
    const { bytes, header } = buildWal(frames, false, { kind: 'none' }, 1);
    const source = bytesWalSource(bytes);
    expect(walPositionAt(source, header, 32)).toEqual(walStartPosition(header));
    expect(walPositionAt(source, header, 31)).toBeNull();
    expect(walPositionAt(source, header, 0)).toBeNull();
    expect(walPositionAt(source, header, 32 + FRAME + 8)).toBeNull();
    expect(walPositionAt(source, header, 32 + FRAME)).not.toBeNull();
    // after the leftover frame of another generation: not ours
    expect(walPositionAt(source, header, 32 + 4 * FRAME)).toBeNull();
    // beyond the file
    expect(walPositionAt(source, header, 32 + 6 * FRAME)).toBeNull();
  });

  it('walSaltPairs lists every distinct salt pair in order of first appearance, valid or not', () => {
    const frames = [1, 2].map((pgno, i) => ({ pgno, commit: i === 1 ? 2 : 0, fill: 1 }));
    const { bytes } = buildWal(frames, true, { kind: 'none' }, 2);
    expect(walSaltPairs(bytesWalSource(bytes), PAGE)).toEqual([
      { salt1: 0x11223344, salt2: 0x55667788 },
      { salt1: 0xdeadbeef, salt2: 2 },
      { salt1: 0xdeadbeef, salt2: 3 },
    ]);
    // a cut last frame is not read
    expect(walSaltPairs(bytesWalSource(bytes.subarray(0, bytes.length - 1)), PAGE)).toHaveLength(2);
    expect(walSaltPairs(bytesWalSource(bytes.subarray(0, 32)), PAGE)).toEqual([]);
  });
});
