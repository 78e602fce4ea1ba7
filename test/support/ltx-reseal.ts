import { Crc64, decodeLtxFile } from '../../src/ltx/index.js';

/**
 * Gives an LTX file whose header was edited a matching file checksum again, as a writer with a
 * bug would produce it: the checksum covers the header, each frame's header (and size prefix)
 * with its decoded page, and the bytes after the last page up to the checksum. `original` is the
 * file before the edit (its pages are decoded from it), `edited` the same bytes with the edit.
 */
export function resealLtxFile(original: Uint8Array, edited: Uint8Array): Uint8Array {
  const decoded = decodeLtxFile(original);
  const crc = new Crc64().update(edited.subarray(0, 100));
  let end = 100;
  for (const page of decoded.pages) {
    const prefix = page.encoding === 'lz4-frame' ? 6 : 10;
    crc.update(edited.subarray(page.offset, page.offset + prefix)).update(page.data);
    end = page.offset + page.size;
  }
  crc.update(edited.subarray(end, edited.length - 8));
  const out = new Uint8Array(edited);
  new DataView(out.buffer).setBigUint64(out.length - 8, (1n << 63n) | crc.digest());
  return out;
}
