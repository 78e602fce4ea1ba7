/**
 * Synchronous random access to WAL bytes. Reads past the end return fewer bytes (possibly none):
 * a WAL grows while it is read, and a short frame is simply the end of the WAL.
 */
export interface WalSource {
  size(): number;
  read(offset: number, length: number): Uint8Array;
}

/** A WalSource over bytes in memory (tests, fixtures). */
export function bytesWalSource(bytes: Uint8Array): WalSource {
  return {
    size: () => bytes.length,
    read: (offset, length) =>
      bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length)),
  };
}
