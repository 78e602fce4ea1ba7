import { WAL_FRAME_HEADER_SIZE } from './header.js';

export interface WalFrameHeader {
  pgno: number;
  /** Database size in pages after this commit; 0 for a frame that is not a commit. */
  commit: number;
  salt1: number;
  salt2: number;
  checksum1: number;
  checksum2: number;
}

export function decodeFrameHeader(bytes: Uint8Array): WalFrameHeader {
  const view = new DataView(bytes.buffer, bytes.byteOffset, WAL_FRAME_HEADER_SIZE);
  return {
    pgno: view.getUint32(0),
    commit: view.getUint32(4),
    salt1: view.getUint32(8),
    salt2: view.getUint32(12),
    checksum1: view.getUint32(16),
    checksum2: view.getUint32(20),
  };
}

export function encodeFrameHeader(h: WalFrameHeader): Uint8Array {
  const bytes = new Uint8Array(WAL_FRAME_HEADER_SIZE);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, h.pgno);
  view.setUint32(4, h.commit);
  view.setUint32(8, h.salt1);
  view.setUint32(12, h.salt2);
  view.setUint32(16, h.checksum1);
  view.setUint32(20, h.checksum2);
  return bytes;
}
