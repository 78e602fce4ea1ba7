import { LtxvfsError } from '../util/errors.js';
import type { Txid } from '../util/txid.js';
import {
  CHECKSUM_FLAG,
  HEADER_FLAG_MASK,
  HEADER_FLAG_NO_CHECKSUM,
  HEADER_SIZE,
  MAGIC,
  MAX_PAGE_SIZE,
  MIN_PAGE_SIZE,
  TRAILER_SIZE,
} from './constants.js';

export interface LtxHeader {
  flags: number;
  pageSize: number;
  /** Database size in pages after applying this file; 0 = empty database. */
  commit: number;
  minTxid: Txid;
  maxTxid: Txid;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  preApplyChecksum: bigint;
  walOffset: number;
  walSize: number;
  walSalt1: number;
  walSalt2: number;
  nodeId: bigint;
}

export interface LtxTrailer {
  postApplyChecksum: bigint;
  fileChecksum: bigint;
}

/**
 * The header of a file as Litestream v0.5 writes them: NoChecksum flag, pre-apply checksum and
 * node ID zero; the WAL fields only when the file was cut from a WAL (zeros otherwise).
 */
export function litestreamHeader(fields: {
  pageSize: number;
  commit: number;
  minTxid: Txid;
  maxTxid: Txid;
  timestamp: number;
  wal?: { offset: number; size: number; salt1: number; salt2: number } | null;
}): LtxHeader {
  return {
    flags: HEADER_FLAG_NO_CHECKSUM,
    pageSize: fields.pageSize,
    commit: fields.commit,
    minTxid: fields.minTxid,
    maxTxid: fields.maxTxid,
    timestamp: fields.timestamp,
    preApplyChecksum: 0n,
    walOffset: fields.wal?.offset ?? 0,
    walSize: fields.wal?.size ?? 0,
    walSalt1: fields.wal?.salt1 ?? 0,
    walSalt2: fields.wal?.salt2 ?? 0,
    nodeId: 0n,
  };
}

/** A snapshot holds the whole database: any file starting at TXID 1. */
export function isSnapshot(h: Pick<LtxHeader, 'minTxid'>): boolean {
  return h.minTxid === 1;
}

export function isValidPageSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_PAGE_SIZE && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const U64_MAX = 0xffffffffffffffffn;

/**
 * The rules of superfly/ltx's Header.Validate, plus the limits of holding TXIDs and offsets as JS
 * numbers. Throws LtxvfsError(code) naming the field.
 */
export function validateHeader(h: LtxHeader, code: 'LTX_BAD_HEADER' | 'LTX_ENCODE' = 'LTX_BAD_HEADER'): void {
  const fail = (msg: string): never => {
    throw new LtxvfsError(code === 'LTX_BAD_HEADER' && msg.startsWith('flags') ? 'LTX_BAD_FLAGS' : code, msg);
  };
  if (!Number.isInteger(h.flags) || h.flags < 0 || (h.flags & ~HEADER_FLAG_MASK) !== 0) {
    fail(
      `flags 0x${h.flags.toString(16)} has bits other than NoChecksum (0x2)${h.flags & 1 ? ' (0x1 was LTX v1 CompressLZ4)' : ''}`,
    );
  }
  if (!isValidPageSize(h.pageSize))
    fail(`page size ${h.pageSize} is not a power of two between 512 and 65536`);
  if (!Number.isInteger(h.commit) || h.commit < 0 || h.commit > 0xffffffff)
    fail(`commit ${h.commit} is not a u32`);
  for (const [name, v] of [
    ['minTxid', h.minTxid],
    ['maxTxid', h.maxTxid],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 1) fail(`${name} ${v} must be an integer between 1 and 2^53-1`);
  }
  if (h.minTxid > h.maxTxid) fail(`minTxid ${h.minTxid} is greater than maxTxid ${h.maxTxid}`);
  if (!Number.isSafeInteger(h.timestamp)) fail(`timestamp ${h.timestamp} is not a safe integer`);
  if (!Number.isSafeInteger(h.walOffset) || h.walOffset < 0) fail(`walOffset ${h.walOffset} must be >= 0`);
  if (!Number.isSafeInteger(h.walSize) || h.walSize < 0) fail(`walSize ${h.walSize} must be >= 0`);
  for (const [name, v] of [
    ['walSalt1', h.walSalt1],
    ['walSalt2', h.walSalt2],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) fail(`${name} ${v} is not a u32`);
  }
  if ((h.walSalt1 !== 0 || h.walSalt2 !== 0) && h.walOffset === 0)
    fail('WAL salts are set but walOffset is 0');
  if (h.walOffset === 0 && h.walSize !== 0) fail(`walSize ${h.walSize} is set but walOffset is 0`);
  if (h.preApplyChecksum < 0n || h.preApplyChecksum > U64_MAX) fail('preApplyChecksum is not a u64');
  if (h.nodeId < 0n || h.nodeId > U64_MAX) fail('nodeId is not a u64');
  if (isSnapshot(h) && h.preApplyChecksum !== 0n) {
    fail(`snapshot (minTxid 1) has a non-zero preApplyChecksum 0x${h.preApplyChecksum.toString(16)}`);
  } else if (h.flags & HEADER_FLAG_NO_CHECKSUM) {
    if (h.preApplyChecksum !== 0n) fail('preApplyChecksum must be 0 when the NoChecksum flag is set');
  } else if (!isSnapshot(h) && (h.preApplyChecksum & CHECKSUM_FLAG) === 0n) {
    fail(`preApplyChecksum 0x${h.preApplyChecksum.toString(16)} lacks bit 63 (required with checksums on)`);
  }
}

export function encodeHeader(h: LtxHeader): Uint8Array {
  validateHeader(h, 'LTX_ENCODE');
  const b = new Uint8Array(HEADER_SIZE);
  const v = new DataView(b.buffer);
  for (let i = 0; i < 4; i++) b[i] = MAGIC.charCodeAt(i);
  v.setUint32(4, h.flags);
  v.setUint32(8, h.pageSize);
  v.setUint32(12, h.commit);
  v.setBigUint64(16, BigInt(h.minTxid));
  v.setBigUint64(24, BigInt(h.maxTxid));
  v.setBigInt64(32, BigInt(h.timestamp));
  v.setBigUint64(40, h.preApplyChecksum);
  v.setBigInt64(48, BigInt(h.walOffset));
  v.setBigInt64(56, BigInt(h.walSize));
  v.setUint32(64, h.walSalt1);
  v.setUint32(68, h.walSalt2);
  v.setBigUint64(72, h.nodeId);
  return b;
}

function toSafe(value: bigint, field: string, offset: number): number {
  if (value < -MAX_SAFE || value > MAX_SAFE) {
    throw new LtxvfsError('LTX_BAD_HEADER', `header ${field} ${value} (offset ${offset}) is out of range`);
  }
  return Number(value);
}

/** Decodes and validates the 100-byte header at the start of `b`. */
export function decodeHeader(b: Uint8Array): LtxHeader {
  if (b.length < HEADER_SIZE) {
    throw new LtxvfsError('LTX_TRUNCATED', `LTX header truncated: ${b.length} of ${HEADER_SIZE} bytes`);
  }
  if (b[0] !== 0x4c || b[1] !== 0x54 || b[2] !== 0x58 || b[3] !== 0x31) {
    const seen = Array.from(b.subarray(0, 4), (x) => x.toString(16).padStart(2, '0')).join('');
    throw new LtxvfsError('LTX_BAD_MAGIC', `not an LTX file: magic is 0x${seen}, expected "LTX1"`);
  }
  const v = new DataView(b.buffer, b.byteOffset, HEADER_SIZE);
  const h: LtxHeader = {
    flags: v.getUint32(4),
    pageSize: v.getUint32(8),
    commit: v.getUint32(12),
    minTxid: toSafe(v.getBigUint64(16), 'minTxid', 16),
    maxTxid: toSafe(v.getBigUint64(24), 'maxTxid', 24),
    timestamp: toSafe(v.getBigInt64(32), 'timestamp', 32),
    preApplyChecksum: v.getBigUint64(40),
    walOffset: toSafe(v.getBigInt64(48), 'walOffset', 48),
    walSize: toSafe(v.getBigInt64(56), 'walSize', 56),
    walSalt1: v.getUint32(64),
    walSalt2: v.getUint32(68),
    nodeId: v.getBigUint64(72),
  };
  validateHeader(h);
  return h;
}

export function encodeTrailer(t: LtxTrailer): Uint8Array {
  const b = new Uint8Array(TRAILER_SIZE);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, t.postApplyChecksum);
  v.setBigUint64(8, t.fileChecksum);
  return b;
}

export function decodeTrailer(b: Uint8Array, at: number): LtxTrailer {
  const v = new DataView(b.buffer, b.byteOffset + at, TRAILER_SIZE);
  return { postApplyChecksum: v.getBigUint64(0), fileChecksum: v.getBigUint64(8) };
}
