import { type DecodedLtxFile, decodeLtxFile, initZstd } from '../ltx/index.js';
import { isLtxvfsError } from '../util/errors.js';

/**
 * Checks an LTX file read whole the way restore does (structure, file checksum, and the
 * post-apply checksum of a snapshot), so no page of it is served unverified. Returns the decoded
 * file (its pages may be kept: they are verified). Throws the LTX error; callers name the object.
 */
export async function checkWholeObject(bytes: Uint8Array): Promise<DecodedLtxFile> {
  try {
    return decodeLtxFile(bytes);
  } catch (err) {
    if (!isLtxvfsError(err, 'LTX_ZSTD_UNINITIALIZED')) throw err;
    await initZstd();
    return decodeLtxFile(bytes);
  }
}
