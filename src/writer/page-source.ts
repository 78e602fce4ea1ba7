import { lockPgno } from '../ltx/index.js';
import { LtxvfsError } from '../util/errors.js';
import {
  decodeFrameHeader,
  readWalFrame,
  WAL_FRAME_HEADER_SIZE,
  WAL_HEADER_SIZE,
  type WalFrameRef,
  type WalHeader,
  type WalSource,
  walFrameSize,
} from '../wal/index.js';

/** Positional reads of the database file. */
export interface DatabasePages {
  readPage(pgno: number, pageSize: number): Uint8Array;
}

export interface PageRef {
  pgno: number;
  data(): Uint8Array;
}

/**
 * Thrown when a frame found by the scan is no longer there when its bytes are read: the WAL was
 * restarted in between. The sync is abandoned (nothing is staged) and the next one re-decides.
 */
export class WalChangedError extends LtxvfsError {
  constructor(walPath: string, offset: number) {
    super('WRITER_DB', `${walPath}: frame at offset ${offset} changed while it was read (WAL restarted)`);
  }
}

function fromWal(source: WalSource, header: WalHeader, ref: WalFrameRef, walPath: string): () => Uint8Array {
  return () => {
    const data = readWalFrame(source, header, ref);
    if (!data) throw new WalChangedError(walPath, ref.offset);
    return data;
  };
}

/**
 * Pages of an incremental L0: every page the new frames wrote, plus the growth pages
 * (prevCommit+1..commit) they did not write, in ascending order, the lock page skipped.
 * A growth page's content is what SQLite itself would read: its newest frame earlier in this
 * WAL generation if any (`earlier`), else the database file.
 */
export function incrementalPages(opts: {
  pageSize: number;
  commit: number;
  prevCommit: number;
  walPages: ReadonlyMap<number, WalFrameRef>;
  earlier: ReadonlyMap<number, WalFrameRef>;
  source: WalSource;
  header: WalHeader;
  db: DatabasePages;
  walPath: string;
}): PageRef[] {
  const lock = lockPgno(opts.pageSize);
  const refs: PageRef[] = [];
  for (const [pgno, ref] of opts.walPages) {
    if (pgno > opts.commit || pgno === lock) continue;
    refs.push({ pgno, data: fromWal(opts.source, opts.header, ref, opts.walPath) });
  }
  for (let pgno = opts.prevCommit + 1; pgno <= opts.commit; pgno++) {
    if (pgno === lock || opts.walPages.has(pgno)) continue;
    const ref = opts.earlier.get(pgno);
    refs.push({
      pgno,
      data: ref
        ? fromWal(opts.source, opts.header, ref, opts.walPath)
        : () => opts.db.readPage(pgno, opts.pageSize),
    });
  }
  return refs.sort((a, b) => a.pgno - b.pgno);
}

/** Every page 1..commit (lock page skipped): the WAL's newest committed frame, else the file. */
export function* fullPages(opts: {
  pageSize: number;
  commit: number;
  walPages: ReadonlyMap<number, WalFrameRef> | null;
  source: WalSource | null;
  header: WalHeader | null;
  db: DatabasePages;
  walPath: string;
}): Generator<{ pgno: number; data: Uint8Array }> {
  const lock = lockPgno(opts.pageSize);
  for (let pgno = 1; pgno <= opts.commit; pgno++) {
    if (pgno === lock) continue;
    const ref = opts.walPages?.get(pgno);
    if (ref && opts.source && opts.header) {
      yield { pgno, data: fromWal(opts.source, opts.header, ref, opts.walPath)() };
    } else {
      yield { pgno, data: opts.db.readPage(pgno, opts.pageSize) };
    }
  }
}

/**
 * The newest frame of each wanted page in [WAL start, end) of this generation. The frames there
 * were all committed and copied before, so only their headers are read.
 */
export function newestFramesBefore(
  source: WalSource,
  header: WalHeader,
  end: number,
  wanted: ReadonlySet<number>,
): Map<number, WalFrameRef> {
  const out = new Map<number, WalFrameRef>();
  if (wanted.size === 0 || end <= WAL_HEADER_SIZE) return out;
  const frameSize = walFrameSize(header.pageSize);
  for (let offset = WAL_HEADER_SIZE; offset + frameSize <= end; offset += frameSize) {
    const bytes = source.read(offset, WAL_FRAME_HEADER_SIZE);
    if (bytes.length < WAL_FRAME_HEADER_SIZE) break;
    const h = decodeFrameHeader(bytes);
    if (h.salt1 !== header.salt1 || h.salt2 !== header.salt2) break;
    if (wanted.has(h.pgno))
      out.set(h.pgno, { pgno: h.pgno, offset, checksum1: h.checksum1, checksum2: h.checksum2 });
  }
  return out;
}
