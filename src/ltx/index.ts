/** The LTX file format (Litestream v0.5 / superfly/ltx v3). Pure bytes in, bytes out. */
export { Crc64, crc64, databaseChecksum, pageChecksum } from './checksum.js';
export { type CompactOptions, compactLtx } from './compactor.js';
export {
  CHECKSUM_FLAG,
  HEADER_FLAG_NO_CHECKSUM,
  HEADER_SIZE,
  MAX_PAGE_SIZE,
  MIN_PAGE_SIZE,
  PAGE_FLAG_SIZE,
  PAGE_FLAG_ZSTD,
  PAGE_HEADER_SIZE,
  PAGE_INDEX_TAIL_ESTIMATE,
  type PageEncoding,
  TRAILER_SIZE,
} from './constants.js';
export {
  type DecodedLtxFile,
  type DecodedPage,
  decodeLtxFile,
  type LtxDecodeOptions,
  type LtxEvent,
  LtxParser,
  LtxStreamDecoder,
  type LtxWait,
} from './decoder.js';
export { encodeLtxFile, LtxEncoder, type LtxEncoderOptions } from './encoder.js';
export { LtxFileChecksum } from './file-checksum.js';
export {
  decodeHeader,
  encodeHeader,
  isSnapshot,
  isValidPageSize,
  type LtxHeader,
  type LtxTrailer,
  litestreamHeader,
  validateHeader,
} from './header.js';
export { encodeHotPages, type HotPagesFile, hotPageNumbers, type PageReader } from './hot-pages.js';
export {
  type Lz4Compressor,
  lz4Bound,
  lz4CompressBlock,
  lz4CompressNative,
  lz4CompressorKind,
  lz4DecoderKind,
  lz4DecompressBlock,
  lz4DecompressPage,
} from './lz4-block.js';
export { frameDescriptorChecksum } from './lz4-frame.js';
export {
  decodeManifest,
  encodeManifest,
  HOT_PAGES_OBJECT,
  inlineIndexBytes,
  isManifestFresh,
  MANIFEST_FORMAT,
  MANIFEST_INLINE_INDEX_MAX,
  MANIFEST_OBJECT,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestFile,
  type ManifestHotPages,
  validateManifest,
} from './manifest.js';
export {
  describeLtxFile,
  formatLtxFileName,
  isContiguous,
  LTX_NAME_PATTERN,
  lockPgno,
  MAX_COMPACTION_LEVEL,
  MAX_LEVEL,
  parseLtxFileName,
  SNAPSHOT_LEVEL,
} from './names.js';
export {
  computePageDigests,
  decodePageDigests,
  encodePageDigests,
  layoutDigest,
  PAGE_DIGESTS_MIN_OBJECT_SIZE,
  type PageDigests,
  pageDigest,
  pageDigestsObjectName,
} from './page-digests.js';
export { decodePageFrame, encodePageFrame } from './page-frame.js';
export {
  encodePageIndex,
  indexEntries,
  MIN_FILE_SIZE,
  type PageIndexColumns,
  type PageIndexColumnsTail,
  type PageIndexEntry,
  type PageIndexTail,
  pageIndexTailLength,
  parsePageIndexColumns,
  parsePageIndexTail,
} from './page-index.js';
export { looksLikeLtxV1 } from './v1.js';
export { xxh32 } from './xxh32.js';
export { initZstd, isZstdReady } from './zstd.js';
