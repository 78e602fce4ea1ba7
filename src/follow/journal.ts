/**
 * SQLite's rollback journal (https://www.sqlite.org/fileformat2.html#the_rollback_journal), as
 * much of it as a hot-journal rollback reads: one header padded to a sector, then one record per
 * saved page (page number, the page's bytes before the change, checksum). No super-journal.
 *
 * A follower writes it before it overwrites pages, so a crash in the middle leaves a hot journal
 * that the next SQLite connection to open the file plays back (old pages back in place, file cut
 * to the old size): readers then see the state before the apply, never a mix.
 */

const MAGIC = Uint8Array.of(0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7);
/** SQLite accepts any power of two from 32 to 65536; 512 is what the unix VFS uses by default. */
export const JOURNAL_SECTOR_SIZE = 512;

export interface JournalPage {
  pgno: number;
  /** The page as it is in the database before the change. */
  data: Uint8Array;
}

/** The header: magic, record count, checksum nonce, original size in pages, sector and page size. */
export function journalHeader(
  records: number,
  nonce: number,
  originalPages: number,
  pageSize: number,
): Uint8Array {
  const out = new Uint8Array(JOURNAL_SECTOR_SIZE);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, records);
  view.setUint32(12, nonce >>> 0);
  view.setUint32(16, originalPages);
  view.setUint32(20, JOURNAL_SECTOR_SIZE);
  view.setUint32(24, pageSize);
  return out;
}

/** One record: 4-byte page number, the page, 4-byte checksum. */
export function journalRecord(page: JournalPage, nonce: number): Uint8Array {
  const size = page.data.length;
  const out = new Uint8Array(size + 8);
  const view = new DataView(out.buffer);
  view.setUint32(0, page.pgno);
  out.set(page.data, 4);
  view.setUint32(size + 4, recordChecksum(page.data, nonce));
  return out;
}

/**
 * SQLite's record checksum: the nonce plus every 200th byte of the page counting down from
 * pageSize - 200 (the format deliberately samples, it only guards against torn writes).
 */
export function recordChecksum(data: Uint8Array, nonce: number): number {
  let sum = nonce >>> 0;
  for (let i = data.length - 200; i > 0; i -= 200) sum = (sum + (data[i] ?? 0)) >>> 0;
  return sum;
}

/** Byte offset of record `i` (0-based) in a journal of pages of `pageSize` bytes. */
export function recordOffset(i: number, pageSize: number): number {
  return JOURNAL_SECTOR_SIZE + i * (pageSize + 8);
}
