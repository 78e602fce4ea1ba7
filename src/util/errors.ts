/**
 * Every error ltxvfs throws on purpose is an LtxvfsError with a stable `code` a caller can test,
 * and a message that names the thing (file, key, TXID, URL) and what went wrong.
 */
export type ErrorCode =
  // LTX format (src/ltx)
  | 'LTX_BAD_MAGIC'
  | 'LTX_UNSUPPORTED_VERSION'
  | 'LTX_BAD_HEADER'
  | 'LTX_BAD_FLAGS'
  | 'LTX_BAD_PAGE'
  | 'LTX_PAGE_ORDER'
  | 'LTX_BAD_CHECKSUM'
  | 'LTX_TRUNCATED'
  | 'LTX_BAD_INDEX'
  | 'LTX_BAD_COMPRESSION'
  | 'LTX_ENCODE'
  | 'LTX_NOT_CONTIGUOUS'
  | 'LTX_ZSTD_UNINITIALIZED'
  | 'MANIFEST_INVALID'
  | 'PAGE_DIGESTS_INVALID'
  // WAL (src/wal)
  | 'WAL_BAD_HEADER'
  // storage (src/storage)
  | 'STORAGE_BAD_URL'
  | 'STORAGE_NOT_FOUND'
  | 'STORAGE_EXISTS'
  | 'STORAGE_CONDITION_FAILED'
  | 'STORAGE_NO_BUCKET'
  | 'STORAGE_ACCESS_DENIED'
  | 'STORAGE_UNREACHABLE'
  | 'STORAGE_PATH_ESCAPE'
  | 'STORAGE_IO'
  | 'STORAGE_TOO_LARGE'
  | 'STORAGE_FULL'
  | 'STORAGE_READ_ONLY'
  // writer (src/writer)
  | 'LEASE_HELD'
  | 'LEASE_LOST'
  | 'LEASE_EXPIRED'
  | 'WRITER_FORK'
  | 'WRITER_LOCKED'
  | 'WRITER_DB'
  | 'CONFIG_INVALID'
  // replica / vfs
  | 'TXID_NOT_AVAILABLE'
  | 'REPLICA_EMPTY'
  | 'REPLICA_NOT_REGISTERED'
  | 'REPLICA_READONLY'
  | 'REPLICA_CORRUPT'
  | 'HYDRATION_FAILED'
  | 'RESTORE_OUTPUT'
  | 'SQL_ERROR'
  | 'MISSING_DEPENDENCY'
  | 'BAD_ARGUMENT'
  // a state the code's own logic rules out (a bug in ltxvfs, not bad input)
  | 'INTERNAL';

export class LtxvfsError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'LtxvfsError';
    this.code = code;
  }
}

export function isLtxvfsError(err: unknown, code?: ErrorCode): err is LtxvfsError {
  return err instanceof LtxvfsError && (code === undefined || err.code === code);
}
