import { LtxvfsError } from '../util/errors.js';
import { crc64 } from './checksum.js';
import { CHECKSUM_FLAG, HEADER_SIZE, TRAILER_SIZE } from './constants.js';
import { isValidPageSize } from './header.js';

/**
 * LTX v1 (LiteFS, ltx <= v0.3) shares the "LTX1" magic and header layout but stores 4-byte page
 * headers with raw pages, a 4-byte zero terminator and no page index. The format version is not
 * recorded anywhere, so a file is called v1 only if its whole structure and its file checksum
 * (CRC-64/GO-ISO of everything before the last 8 bytes) check out that way.
 */
export function looksLikeLtxV1(b: Uint8Array): boolean {
  if (b.length < HEADER_SIZE + 4 + TRAILER_SIZE) return false;
  if (b[0] !== 0x4c || b[1] !== 0x54 || b[2] !== 0x58 || b[3] !== 0x31) return false;
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  const pageSize = v.getUint32(8);
  if (!isValidPageSize(pageSize)) return false;
  let p = HEADER_SIZE;
  for (;;) {
    if (p + 4 > b.length - TRAILER_SIZE) return false;
    const pgno = v.getUint32(p);
    p += 4;
    if (pgno === 0) break;
    p += pageSize;
  }
  if (p !== b.length - TRAILER_SIZE) return false;
  return (CHECKSUM_FLAG | crc64(b.subarray(0, b.length - 8))) === v.getBigUint64(b.length - 8);
}

export function unsupportedV1(): LtxvfsError {
  return new LtxvfsError(
    'LTX_UNSUPPORTED_VERSION',
    'unsupported old LTX version: this is an LTX v1 file (LiteFS / ltx <= v0.3: 4-byte page headers, raw pages, no page index); only LTX v3 (Litestream v0.5) is supported',
  );
}
