import { LtxEncoder, type LtxHeader, type PageEncoding } from '../ltx/index.js';

export interface WalRange {
  offset: number;
  size: number;
  salt1: number;
  salt2: number;
}

// The header Litestream writes for L0 and snapshot files lives with the format.
export { litestreamHeader } from '../ltx/index.js';

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
