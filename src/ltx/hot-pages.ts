import { LtxvfsError } from '../util/errors.js';
import type { Txid } from '../util/txid.js';
import { encodeLtxFile } from './encoder.js';
import { litestreamHeader } from './header.js';
import { lockPgno } from './names.js';

/** B-tree page types (the first byte of the b-tree header). */
const INTERIOR_INDEX = 0x02;
const INTERIOR_TABLE = 0x05;
const LEAF_TABLE = 0x0d;
/** Page 1 starts with the 100-byte database header; its b-tree header follows. */
const DB_HEADER_SIZE = 100;

/** Reads one page of the database (pageSize bytes) as of the state being described. */
export type PageReader = (pgno: number) => Uint8Array;

/**
 * The pages every lookup reads first: page 1, every page of the sqlite_schema b-tree, and every
 * interior b-tree page (types 0x02 and 0x05), in ascending order. The interior pages are found
 * by their type byte: a freelist or overflow page can start with the same byte and is then
 * included too, which costs a few bytes and never correctness (each page is carried with its true
 * content).
 */
export function hotPageNumbers(commit: number, pageSize: number, read: PageReader): number[] {
  const lock = lockPgno(pageSize);
  const hot = new Set<number>();
  if (commit < 1) return [];
  for (const p of schemaPages(commit, read)) hot.add(p);
  for (let pgno = 2; pgno <= commit; pgno++) {
    if (pgno === lock || hot.has(pgno)) continue;
    const type = read(pgno)[0];
    if (type === INTERIOR_INDEX || type === INTERIOR_TABLE) hot.add(pgno);
  }
  return [...hot].sort((a, b) => a - b);
}

/** Pages of the sqlite_schema table b-tree (rooted at page 1), depth first. */
function schemaPages(commit: number, read: PageReader): number[] {
  const out: number[] = [];
  const seen = new Set<number>();
  const stack = [1];
  while (stack.length > 0) {
    const pgno = stack.pop() ?? 1;
    if (seen.has(pgno) || pgno < 1 || pgno > commit) continue;
    seen.add(pgno);
    out.push(pgno);
    const page = read(pgno);
    const at = pgno === 1 ? DB_HEADER_SIZE : 0;
    const type = page[at];
    if (type === LEAF_TABLE) continue;
    if (type !== INTERIOR_TABLE) continue; // not a b-tree page: nothing below it to follow
    const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
    const cells = view.getUint16(at + 3);
    stack.push(view.getUint32(at + 8));
    for (let i = 0; i < cells; i++) {
      const cellAt = view.getUint16(at + 12 + 2 * i);
      if (cellAt + 4 <= page.length) stack.push(view.getUint32(cellAt));
    }
  }
  return out;
}

export interface HotPagesFile {
  bytes: Uint8Array;
  pgnos: number[];
}

/**
 * Encodes the hot pages of the database state at `txid` as an LTX file (Litestream's header
 * form, no checksums, so any LTX decoder reads it). Its TXID range is txid..txid: a file starting
 * at TXID 1 would be a snapshot and must hold every page, so a state at TXID 1 has no hot-pages
 * file (HOT_PAGES_TXID).
 */
export function encodeHotPages(fields: {
  txid: Txid;
  commit: number;
  pageSize: number;
  timestamp: number;
  read: PageReader;
  /** The pages to carry, when the caller has already chosen them; else hotPageNumbers(). */
  pgnos?: readonly number[];
}): HotPagesFile {
  if (fields.txid < 2) {
    throw new LtxvfsError('LTX_ENCODE', 'hot pages need a TXID above 1 (TXID 1 files are snapshots)');
  }
  const pgnos = fields.pgnos
    ? [...fields.pgnos]
    : hotPageNumbers(fields.commit, fields.pageSize, fields.read);
  const header = litestreamHeader({
    pageSize: fields.pageSize,
    commit: fields.commit,
    minTxid: fields.txid,
    maxTxid: fields.txid,
    timestamp: fields.timestamp,
  });
  const bytes = encodeLtxFile(
    header,
    pgnos.map((pgno) => ({ pgno, data: fields.read(pgno) })),
  );
  return { bytes, pgnos };
}
