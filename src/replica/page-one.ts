import type { Txid } from '../util/txid.js';

/**
 * Page 1 as the VFS serves it (a copy; the replica keeps true bytes):
 * - bytes 18-19 = 1: rollback-journal mode, so SQLite never looks for -wal/-shm (a WAL-mode
 *   origin would otherwise not open without xShm*);
 * - change counter (24-27) and version-valid-for (92-95) = the TXID: SQLite compares them at
 *   every read transaction, so its page cache survives exactly while the TXID stays the same
 *   (a WAL-mode primary does not bump the counter per commit);
 * - in-header page count (28-31) = the view's Commit, which SQLite trusts once 92-95 match.
 */
export function patchPageOne(page: Uint8Array, txid: Txid, pageCount: number): Uint8Array {
  const out = page.slice();
  if (out.length < 100) return out;
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out[18] = 1;
  out[19] = 1;
  const counter = txid % 0x1_0000_0000;
  view.setUint32(24, counter);
  view.setUint32(28, pageCount);
  view.setUint32(92, counter);
  return out;
}
