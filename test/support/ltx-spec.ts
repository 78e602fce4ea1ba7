import { encodeLtxFile, litestreamHeader, type PageEncoding } from '../../src/ltx/index.js';

/**
 * An LTX file described by what matters to a test, in the spirit of superfly/ltx's FileSpec:
 * the TXID range, the database size, and the pages (by number, with their bytes or a fill
 * tag). Everything else takes a default. `ltxFileBytes` turns it into the file's bytes.
 */
export interface LtxFileSpec {
  /** Default 512. */
  pageSize?: number;
  /** Default 1. */
  minTxid?: number;
  /** Default `minTxid`. */
  maxTxid?: number;
  /** Database size in pages after the file; default the largest page number (0 without pages). */
  commit?: number;
  /** Milliseconds since the epoch; default `maxTxid`. */
  timestamp?: number;
  /** Default lz4-block, as Litestream writes. */
  encoding?: PageEncoding;
  pages: LtxPageSpec[];
}

export interface LtxPageSpec {
  pgno: number;
  /** The page's bytes, `pageSize` long; default `tagPage(pageSize, tag)`. */
  data?: Uint8Array;
  /** Default `pgno`. */
  tag?: number;
}

/** A page whose bytes depend on `tag` everywhere (so two tags never compare equal) and compress. */
export function tagPage(pageSize: number, tag: number): Uint8Array {
  return new Uint8Array(pageSize).map((_, i) => (i % 7 === 0 ? tag & 0xff : (tag * 31 + i) & 0xff));
}

export function ltxFileBytes(spec: LtxFileSpec): Uint8Array {
  const pageSize = spec.pageSize ?? 512;
  const minTxid = spec.minTxid ?? 1;
  const maxTxid = spec.maxTxid ?? minTxid;
  const pages = spec.pages.map((p) => ({ pgno: p.pgno, data: p.data ?? tagPage(pageSize, p.tag ?? p.pgno) }));
  const header = litestreamHeader({
    pageSize,
    minTxid,
    maxTxid,
    commit: spec.commit ?? Math.max(0, ...pages.map((p) => p.pgno)),
    timestamp: spec.timestamp ?? maxTxid,
  });
  return encodeLtxFile(header, pages, spec.encoding === undefined ? {} : { encoding: spec.encoding });
}
