/** Fixed sizes and flag bits of the LTX v3 format (Litestream v0.5, superfly/ltx >= v0.5.0). */

export const MAGIC = 'LTX1';
export const HEADER_SIZE = 100;
export const TRAILER_SIZE = 16;
export const PAGE_HEADER_SIZE = 6;
/** u64 BE after the page index giving its byte length (entries + terminator). */
export const INDEX_SIZE_FIELD = 8;

/** The only header flag bit defined by LTX v3: pre/post-apply database checksums are not tracked. */
export const HEADER_FLAG_NO_CHECKSUM = 2;
export const HEADER_FLAG_MASK = HEADER_FLAG_NO_CHECKSUM;

/** Page-header flag bit 0: a u32 BE compressed size follows, then a raw LZ4 block (ltx >= v0.5.2). */
export const PAGE_FLAG_SIZE = 0x0001;
/**
 * ltxvfs's own page flag: the payload (after the u32 size) is one zstd frame. Combined with
 * PAGE_FLAG_SIZE, so zstd pages carry flags 0x8001. The top bit was chosen to stay clear of bits
 * upstream may define next. Litestream rejects any page flag other than bit 0, so files with zstd
 * pages are readable only by ltxvfs.
 */
export const PAGE_FLAG_ZSTD = 0x8000;

/** Bit 63, OR-ed into every stored checksum so a valid checksum is never zero. */
export const CHECKSUM_FLAG = 0x8000000000000000n;

export const MIN_PAGE_SIZE = 512;
export const MAX_PAGE_SIZE = 65536;

/** SQLite's PENDING_BYTE: the page holding it (the lock page) is never stored. */
export const PENDING_BYTE = 0x40000000;

/**
 * Bytes a reader should range-GET from the end of a file to get the page index and trailer in one
 * request. An index entry costs about 6-10 bytes (three uvarints), so 64 KiB covers ~7,000 pages
 * (a 28 MiB database of 4 KiB pages); every L0 file and most compactions fit, and on object stores
 * the time to first byte dominates a GET of this size. Larger indexes cost one more request.
 */
export const PAGE_INDEX_TAIL_ESTIMATE = 64 * 1024;

export type PageEncoding = 'lz4-block' | 'lz4-frame' | 'zstd';
