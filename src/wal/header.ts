import { LtxvfsError } from '../util/errors.js';
import { walChecksum } from './checksum.js';
import type { WalSource } from './source.js';

export const WAL_HEADER_SIZE = 32;
export const WAL_FRAME_HEADER_SIZE = 24;
/** Checksum words little-endian. */
export const WAL_MAGIC_LE = 0x377f0682;
/** Checksum words big-endian. */
export const WAL_MAGIC_BE = 0x377f0683;
export const WAL_FORMAT_VERSION = 3007000;

export interface WalHeader {
  magic: number;
  /** From the magic's low bit: the byte order of the checksum words (every other field is big-endian). */
  bigEndianChecksum: boolean;
  version: number;
  pageSize: number;
  /** Incremented by SQLite every time the WAL is restarted. */
  checkpointSeq: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

export function walFrameSize(pageSize: number): number {
  return WAL_FRAME_HEADER_SIZE + pageSize;
}

/** Byte offset of the frame with 0-based index `index`. */
export function walFrameOffset(index: number, pageSize: number): number {
  return WAL_HEADER_SIZE + index * walFrameSize(pageSize);
}

function isValidPageSize(size: number): boolean {
  return size >= 512 && size <= 65536 && (size & (size - 1)) === 0;
}

/**
 * Decodes and validates the 32-byte WAL header (magic, version, page size, header checksum).
 * `what` names the file in the error message.
 */
export function decodeWalHeader(bytes: Uint8Array, what = 'WAL'): WalHeader {
  if (bytes.length < WAL_HEADER_SIZE) {
    throw new LtxvfsError(
      'WAL_BAD_HEADER',
      `${what}: header is ${bytes.length} bytes, expected ${WAL_HEADER_SIZE}`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, WAL_HEADER_SIZE);
  const magic = view.getUint32(0);
  if (magic !== WAL_MAGIC_LE && magic !== WAL_MAGIC_BE) {
    throw new LtxvfsError('WAL_BAD_HEADER', `${what}: bad magic 0x${magic.toString(16)}`);
  }
  const version = view.getUint32(4);
  if (version !== WAL_FORMAT_VERSION) {
    throw new LtxvfsError('WAL_BAD_HEADER', `${what}: unsupported WAL format version ${version}`);
  }
  const pageSize = view.getUint32(8);
  if (!isValidPageSize(pageSize)) {
    throw new LtxvfsError('WAL_BAD_HEADER', `${what}: invalid page size ${pageSize}`);
  }
  const bigEndianChecksum = (magic & 1) === 1;
  const header: WalHeader = {
    magic,
    bigEndianChecksum,
    version,
    pageSize,
    checkpointSeq: view.getUint32(12),
    salt1: view.getUint32(16),
    salt2: view.getUint32(20),
    checksum1: view.getUint32(24),
    checksum2: view.getUint32(28),
  };
  const [c1, c2] = walChecksum(bytes.subarray(0, 24), bigEndianChecksum, 0, 0);
  if (c1 !== header.checksum1 || c2 !== header.checksum2) {
    throw new LtxvfsError('WAL_BAD_HEADER', `${what}: header checksum mismatch`);
  }
  return header;
}

/** Encodes a header (checksum computed); used to build WALs in tests and by nothing at run time. */
export function encodeWalHeader(
  h: Omit<WalHeader, 'checksum1' | 'checksum2' | 'bigEndianChecksum'>,
): Uint8Array {
  const bytes = new Uint8Array(WAL_HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, h.magic);
  view.setUint32(4, h.version);
  view.setUint32(8, h.pageSize);
  view.setUint32(12, h.checkpointSeq);
  view.setUint32(16, h.salt1);
  view.setUint32(20, h.salt2);
  const [c1, c2] = walChecksum(bytes.subarray(0, 24), (h.magic & 1) === 1, 0, 0);
  view.setUint32(24, c1);
  view.setUint32(28, c2);
  return bytes;
}

/**
 * The header of the WAL behind `source`, or null when there is no WAL, it is shorter than a
 * header, or its header does not verify: SQLite ignores such a WAL, and so do its readers.
 */
export function readWalHeader(source: WalSource | null, what = 'WAL'): WalHeader | null {
  if (!source || source.size() < WAL_HEADER_SIZE) return null;
  try {
    return decodeWalHeader(source.read(0, WAL_HEADER_SIZE), what);
  } catch {
    return null;
  }
}
