import { walChecksum } from './checksum.js';
import { decodeFrameHeader } from './frame.js';
import { WAL_FRAME_HEADER_SIZE, WAL_HEADER_SIZE, type WalHeader, walFrameSize } from './header.js';
import type { WalSource } from './source.js';

/** A point in the WAL: a frame boundary and the cumulative checksum of everything before it. */
export interface WalPosition {
  offset: number;
  checksum1: number;
  checksum2: number;
}

/** Where one committed page version lives in the WAL, with what identifies that exact frame. */
export interface WalFrameRef {
  pgno: number;
  offset: number;
  checksum1: number;
  checksum2: number;
}

export type WalEndReason = 'eof' | 'short' | 'salt' | 'checksum' | 'pgno' | 'limit';

export interface WalScan {
  start: WalPosition;
  /** Just after the last commit frame read (equal to `start` when no commit was found). */
  end: WalPosition;
  /** Database size in pages after the last commit; null when no commit frame was read. */
  commit: number | null;
  /** The newest committed frame of each page in [start, end), pages beyond `commit` dropped. */
  pages: Map<number, WalFrameRef>;
  /** Committed frames and transactions in [start, end). */
  frames: number;
  transactions: number;
  /** Why reading stopped: the first invalid frame is the end of the WAL, never an error. */
  endReason: WalEndReason;
  /** Offset of the first frame not taken (uncommitted tail or invalid frame). */
  stoppedAt: number;
}

export interface ScanOptions {
  /** Stop at the first commit boundary after this many bytes (Litestream: 64 MiB). */
  maxBytes?: number;
  /** Read granularity; frames are read in batches of about this many bytes. */
  chunkBytes?: number;
}

/** The position at the start of the WAL: frame 1 continues from the header checksum. */
export function walStartPosition(header: WalHeader): WalPosition {
  return { offset: WAL_HEADER_SIZE, checksum1: header.checksum1, checksum2: header.checksum2 };
}

/**
 * The position at `offset` as the WAL now has it: the checksum stored in the frame just before
 * (or the header's, at the first frame). Returns null when that frame is missing or not a frame
 * of this WAL (salts differ), i.e. the WAL was truncated or rewritten under the caller.
 */
export function walPositionAt(source: WalSource, header: WalHeader, offset: number): WalPosition | null {
  if (offset === WAL_HEADER_SIZE) return walStartPosition(header);
  const frameSize = walFrameSize(header.pageSize);
  if (offset < WAL_HEADER_SIZE || (offset - WAL_HEADER_SIZE) % frameSize !== 0) return null;
  const bytes = source.read(offset - frameSize, WAL_FRAME_HEADER_SIZE);
  if (bytes.length < WAL_FRAME_HEADER_SIZE) return null;
  const h = decodeFrameHeader(bytes);
  if (h.salt1 !== header.salt1 || h.salt2 !== header.salt2) return null;
  return { offset, checksum1: h.checksum1, checksum2: h.checksum2 };
}

/**
 * Reads committed transactions from `from` on. Frames are valid while their salts match the
 * header, their page number is non-zero and their cumulative checksum matches; the first frame
 * that fails (or is cut short) ends the WAL. Frames after the last commit frame are ignored.
 */
export function scanWal(
  source: WalSource,
  header: WalHeader,
  from: WalPosition,
  options: ScanOptions = {},
): WalScan {
  const frameSize = walFrameSize(header.pageSize);
  const maxBytes = options.maxBytes ?? Number.POSITIVE_INFINITY;
  const framesPerChunk = Math.max(1, Math.floor((options.chunkBytes ?? 1 << 20) / frameSize));
  const committed = new Map<number, WalFrameRef>();
  const pending = new Map<number, WalFrameRef>();
  let end: WalPosition = { ...from };
  let commit: number | null = null;
  let frames = 0;
  let pendingFrames = 0;
  let transactions = 0;
  let s0 = from.checksum1;
  let s1 = from.checksum2;
  let offset = from.offset;
  let endReason: WalEndReason = 'eof';
  let stoppedAt = from.offset;

  const sums = new Uint32Array(2);
  outer: for (;;) {
    const chunk = source.read(offset, framesPerChunk * frameSize);
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.length);
    if (chunk.length === 0) {
      endReason = 'eof';
      stoppedAt = offset;
      break;
    }
    for (let at = 0; ; at += frameSize) {
      if (at + frameSize > chunk.length) {
        if (at < chunk.length) {
          endReason = 'short';
          stoppedAt = offset + at;
          break outer;
        }
        break;
      }
      // frame header fields read in place (this loop runs for every frame the application writes)
      const pgno = view.getUint32(at);
      const frameCommit = view.getUint32(at + 4);
      if (view.getUint32(at + 8) !== header.salt1 || view.getUint32(at + 12) !== header.salt2) {
        endReason = 'salt';
        stoppedAt = offset + at;
        break outer;
      }
      if (pgno === 0) {
        endReason = 'pgno';
        stoppedAt = offset + at;
        break outer;
      }
      frameChecksum(chunk, at, frameSize, header.bigEndianChecksum, s0, s1, sums);
      // biome-ignore lint/style/noNonNullAssertion: sums is a Uint32Array(2), per frame
      s0 = sums[0]!;
      // biome-ignore lint/style/noNonNullAssertion: sums is a Uint32Array(2), per frame
      s1 = sums[1]!;
      if (s0 !== view.getUint32(at + 16) || s1 !== view.getUint32(at + 20)) {
        endReason = 'checksum';
        stoppedAt = offset + at;
        break outer;
      }
      const frameOffset = offset + at;
      pending.set(pgno, { pgno, offset: frameOffset, checksum1: s0, checksum2: s1 });
      pendingFrames++;
      if (frameCommit !== 0) {
        for (const [pgno, ref] of pending) committed.set(pgno, ref);
        pending.clear();
        frames += pendingFrames;
        pendingFrames = 0;
        transactions++;
        commit = frameCommit;
        end = { offset: frameOffset + frameSize, checksum1: s0, checksum2: s1 };
        if (end.offset - from.offset >= maxBytes) {
          endReason = 'limit';
          stoppedAt = end.offset;
          break outer;
        }
      }
    }
    offset += chunk.length;
    if (chunk.length < framesPerChunk * frameSize) {
      endReason = 'eof';
      stoppedAt = offset;
      break;
    }
  }
  if (commit !== null) {
    for (const pgno of committed.keys()) if (pgno > commit) committed.delete(pgno);
  }
  return {
    start: { ...from },
    end,
    commit,
    pages: committed,
    frames,
    transactions,
    endReason,
    stoppedAt,
  };
}

/**
 * Page bytes of a frame found by scanWal, after checking that the frame header is still the one
 * scanned (same page, salts and cumulative checksum). Returns null if the frame changed, which
 * only happens when the WAL was restarted and overwritten in between.
 */
export function readWalFrame(source: WalSource, header: WalHeader, ref: WalFrameRef): Uint8Array | null {
  const frameSize = walFrameSize(header.pageSize);
  const frame = source.read(ref.offset, frameSize);
  if (frame.length < frameSize) return null;
  const h = decodeFrameHeader(frame);
  if (
    h.pgno !== ref.pgno ||
    h.salt1 !== header.salt1 ||
    h.salt2 !== header.salt2 ||
    h.checksum1 !== ref.checksum1 ||
    h.checksum2 !== ref.checksum2
  ) {
    return null;
  }
  return frame.subarray(WAL_FRAME_HEADER_SIZE);
}

/**
 * Distinct salt pairs among all frame headers of the file, valid or not, in order of first
 * appearance. Frames with salts other than the header's are leftovers of an earlier WAL
 * generation; seeing new ones means someone else restarted the WAL.
 */
export function walSaltPairs(source: WalSource, pageSize: number): Array<{ salt1: number; salt2: number }> {
  const frameSize = walFrameSize(pageSize);
  const seen = new Set<string>();
  const pairs: Array<{ salt1: number; salt2: number }> = [];
  const size = source.size();
  for (let offset = WAL_HEADER_SIZE; offset + frameSize <= size; offset += frameSize) {
    const bytes = source.read(offset, WAL_FRAME_HEADER_SIZE);
    if (bytes.length < WAL_FRAME_HEADER_SIZE) break;
    const h = decodeFrameHeader(bytes);
    const key = `${h.salt1}:${h.salt2}`;
    if (!seen.has(key)) {
      seen.add(key);
      pairs.push({ salt1: h.salt1, salt2: h.salt2 });
    }
  }
  return pairs;
}

/**
 * The cumulative checksum over a frame's first 8 header bytes and its page, continuing from
 * (s0, s1), into `out`; without allocating (one call per frame of the WAL).
 */
function frameChecksum(
  chunk: Uint8Array,
  at: number,
  frameSize: number,
  bigEndian: boolean,
  s0: number,
  s1: number,
  out: Uint32Array,
): void {
  const start = chunk.byteOffset + at;
  if (!bigEndian && (start & 3) === 0 && HOST_LITTLE_ENDIAN) {
    const words = new Uint32Array(chunk.buffer, start, frameSize >>> 2);
    let a = s0 >>> 0;
    let b = s1 >>> 0;
    // Unchecked reads: the view is frameSize bytes (>= the frame header) and i stays below its length.
    // biome-ignore lint/style/noNonNullAssertion: see above
    a = (a + words[0]! + b) >>> 0;
    // biome-ignore lint/style/noNonNullAssertion: see above
    b = (b + words[1]! + a) >>> 0;
    for (let i = WAL_FRAME_HEADER_SIZE >>> 2; i < words.length; i += 2) {
      // biome-ignore lint/style/noNonNullAssertion: see above
      a = (a + words[i]! + b) >>> 0;
      // biome-ignore lint/style/noNonNullAssertion: see above
      b = (b + words[i + 1]! + a) >>> 0;
    }
    out[0] = a;
    out[1] = b;
    return;
  }
  const [h0, h1] = walChecksum(chunk.subarray(at, at + 8), bigEndian, s0, s1);
  const [d0, d1] = walChecksum(chunk.subarray(at + WAL_FRAME_HEADER_SIZE, at + frameSize), bigEndian, h0, h1);
  out[0] = d0;
  out[1] = d1;
}

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
