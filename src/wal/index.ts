export { walChecksum } from './checksum.js';
export { FileWalSource } from './file.js';
export { decodeFrameHeader, encodeFrameHeader, type WalFrameHeader } from './frame.js';
export {
  decodeWalHeader,
  encodeWalHeader,
  readWalHeader,
  WAL_FORMAT_VERSION,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  WAL_MAGIC_BE,
  WAL_MAGIC_LE,
  type WalHeader,
  walFrameOffset,
  walFrameSize,
} from './header.js';
export {
  readWalFrame,
  type ScanOptions,
  scanWal,
  type WalEndReason,
  type WalFrameRef,
  type WalPosition,
  type WalScan,
  walPositionAt,
  walSaltPairs,
  walStartPosition,
} from './scan.js';
export { bytesWalSource, type WalSource } from './source.js';
