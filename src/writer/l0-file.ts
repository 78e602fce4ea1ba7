import { HEADER_FLAG_NO_CHECKSUM, LtxEncoder, type LtxHeader, type PageEncoding } from '../ltx/index.js';
import type { Txid } from '../util/txid.js';

export interface WalRange {
  offset: number;
  size: number;
  salt1: number;
  salt2: number;
}

/**
 * The header Litestream writes for an L0 (and snapshot) file: NoChecksum, checksums zero,
 * NodeID zero, timestamp now, and the WAL range the pages came from (all zero when none).
 */
export function litestreamHeader(fields: {
  minTxid: Txid;
  maxTxid: Txid;
  pageSize: number;
  commit: number;
  timestamp: number;
  wal: WalRange | null;
}): LtxHeader {
  return {
    flags: HEADER_FLAG_NO_CHECKSUM,
    pageSize: fields.pageSize,
    commit: fields.commit,
    minTxid: fields.minTxid,
    maxTxid: fields.maxTxid,
    timestamp: fields.timestamp,
    preApplyChecksum: 0n,
    walOffset: fields.wal?.offset ?? 0,
    walSize: fields.wal?.size ?? 0,
    walSalt1: fields.wal?.salt1 ?? 0,
    walSalt2: fields.wal?.salt2 ?? 0,
    nodeId: 0n,
  };
}

/** The encoded file as a stream of chunks: one page in memory at a time. */
export function* encodeLtxChunks(
  header: LtxHeader,
  pages: Iterable<{ pgno: number; data: Uint8Array }>,
  encoding: PageEncoding,
): Generator<Uint8Array> {
  const encoder = new LtxEncoder(header, { encoding });
  yield encoder.begin();
  for (const page of pages) yield encoder.writePage(page.pgno, page.data);
  yield encoder.finish();
}
