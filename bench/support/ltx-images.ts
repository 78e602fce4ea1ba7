import { encodeLtxFile, litestreamHeader, lockPgno, type PageEncoding } from '../../src/ltx/index.js';
import type { LtxFileInfo, LtxFileRef, ReplicaClient } from '../../src/storage/types.js';

/*
 * Replicas made from whole database images, for benches and tests: the image SQLite left on disk
 * (rollback journal, so the file IS the database after each commit) becomes LTX files the way the
 * replicator cuts them. Lives under bench/ because benches are compiled with the product and tests
 * are not; tests import it from here.
 */

export interface LtxPage {
  pgno: number;
  data: Uint8Array;
}

/** The image cut into pages (views into it, not copies). */
export function pagesOf(image: Uint8Array, pageSize: number): Uint8Array[] {
  const pages: Uint8Array[] = [];
  for (let at = 0; at < image.length; at += pageSize) pages.push(image.subarray(at, at + pageSize));
  return pages;
}

/**
 * The pages an LTX file for `image` holds: every page without `previous` (TXID 1, a snapshot),
 * else the pages that differ from `previous` and the growth pages. Never the lock page.
 */
export function imagePages(image: Uint8Array, pageSize: number, previous?: Uint8Array): LtxPage[] {
  const before = previous ? pagesOf(previous, pageSize) : undefined;
  const lock = lockPgno(pageSize);
  const out: LtxPage[] = [];
  pagesOf(image, pageSize).forEach((data, i) => {
    const pgno = i + 1;
    if (pgno === lock) return;
    const old = before?.[i];
    if (!before || old === undefined || Buffer.compare(old, data) !== 0) out.push({ pgno, data });
  });
  return out;
}

/** Encodes `pages` as the file `ref` (Litestream's header, timestamp as given) and stores it. */
export function writeLtxFile(
  client: ReplicaClient,
  ref: LtxFileRef,
  file: { pageSize: number; commit: number; timestamp: number; pages: LtxPage[]; encoding?: PageEncoding },
): Promise<LtxFileInfo> {
  const header = litestreamHeader({
    minTxid: ref.minTxid,
    maxTxid: ref.maxTxid,
    pageSize: file.pageSize,
    commit: file.commit,
    timestamp: file.timestamp,
  });
  const bytes = encodeLtxFile(header, file.pages, { encoding: file.encoding });
  return client.writeFile(ref, bytes, { timestamp: new Date(file.timestamp) });
}
