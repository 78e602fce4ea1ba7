import { LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import type { PageEncoding } from './constants.js';
import { type DecodedPage, LtxStreamDecoder } from './decoder.js';
import { LtxEncoder } from './encoder.js';
import { type LtxHeader, litestreamHeader } from './header.js';
import type { Lz4Compressor } from './lz4-block.js';
import { lockPgno } from './names.js';

export interface CompactOptions {
  /** Page encoding of the output; 'lz4-block' by default. */
  encoding?: PageEncoding;
  /** Output timestamp (ms); defaults to the last input's. */
  timestamp?: number;
  /** LZ4 compressor of the output (see LtxEncoderOptions); 'native' by default. */
  compressor?: Lz4Compressor;
}

interface Input {
  decoder: LtxStreamDecoder;
  pages: AsyncGenerator<DecodedPage>;
  head: DecodedPage | undefined;
  header: LtxHeader;
  /** A page of this input survives only up to the smallest Commit from here to the last input. */
  keepUpTo: number;
  /** Pages read from this input so far. */
  seen: number;
}

/**
 * Merges a contiguous run of LTX files (oldest first) into one, streaming: each input is read
 * page by page in a k-way merge on page number, so memory is about one page per input.
 *
 * The newest version of each page wins; Commit and timestamp come from the last input; a page is
 * dropped if any later input shrank the database below it (a shrink followed by a regrow rewrites
 * the regrown pages). An input with another page size than the one before it must hold every
 * page (the writer sends one after the primary changed its page size) and replaces all inputs
 * before it. Output: NoChecksum, pre/post-apply checksums 0, no WAL fields; starting at
 * TXID 1 it is a full snapshot, and the encoder checks that it is complete.
 *
 * Every input is fully verified, but a failure can surface only after output was produced (the
 * file checksum is at the end): use the output only if iteration finishes without throwing.
 */
export async function* compactLtx(
  inputs: Array<AsyncIterable<Uint8Array>>,
  options: CompactOptions = {},
): AsyncGenerator<Uint8Array> {
  if (inputs.length === 0) throw new LtxvfsError('BAD_ARGUMENT', 'compactLtx needs at least one input');
  const list: Input[] = [];
  for (const [i, chunks] of inputs.entries()) {
    const decoder = new LtxStreamDecoder(chunks);
    const header = await decoder.header();
    const prev = list[i - 1]?.header;
    if (prev) {
      if (header.minTxid !== prev.maxTxid + 1) {
        throw new LtxvfsError(
          'LTX_NOT_CONTIGUOUS',
          `input ${i} starts at TXID ${header.minTxid}, expected ${prev.maxTxid + 1} after input ${i - 1}`,
        );
      }
    }
    list.push({ decoder, pages: decoder.pages(), head: undefined, header, keepUpTo: header.commit, seen: 0 });
  }
  // A page size change (the primary ran `PRAGMA page_size` + VACUUM) comes as a file with every
  // page, which replaces everything before it: the merge starts there. That it really holds
  // every page is checked once it has been read, before the output is finished.
  let base = 0;
  for (let i = 1; i < list.length; i++) {
    const header = list[i]?.header;
    if (header && header.pageSize !== list[i - 1]?.header.pageSize) base = i;
  }
  const superseded = list.slice(0, base);
  const baseInput = list[base];
  const merged = list.slice(base);
  let keepUpTo = Number.POSITIVE_INFINITY;
  for (const input of merged.slice().reverse()) {
    keepUpTo = Math.min(input.header.commit, keepUpTo);
    input.keepUpTo = keepUpTo;
  }
  const [firstInput] = list;
  const lastInput = list.at(-1);
  if (!firstInput || !lastInput) throw new LtxvfsError('BAD_ARGUMENT', 'compactLtx needs at least one input');
  const first = firstInput.header;
  const last = lastInput.header;
  const header = litestreamHeader({
    pageSize: last.pageSize,
    commit: last.commit,
    minTxid: first.minTxid,
    maxTxid: last.maxTxid,
    timestamp: options.timestamp ?? last.timestamp,
  });
  const encoder = new LtxEncoder(header, { encoding: options.encoding, compressor: options.compressor });
  yield encoder.begin();

  const advance = async (input: Input): Promise<void> => {
    for (;;) {
      const r = await input.pages.next();
      if (r.done) {
        input.head = undefined;
        return;
      }
      input.seen++;
      if (r.value.pgno <= input.keepUpTo) {
        input.head = r.value;
        return;
      }
    }
  };
  await Promise.all(merged.map(advance));
  for (;;) {
    let pgno = Number.POSITIVE_INFINITY;
    for (const input of merged) if (input.head && input.head.pgno < pgno) pgno = input.head.pgno;
    if (pgno === Number.POSITIVE_INFINITY) break;
    let newest: DecodedPage | undefined;
    const moving: Input[] = [];
    for (const input of merged) {
      if (input.head?.pgno === pgno) {
        newest = input.head;
        moving.push(input);
      }
    }
    yield encoder.writePage(
      pgno,
      present(newest, `page ${pgno} of the input that holds the smallest page`).data,
    );
    await Promise.all(moving.map(advance));
  }
  // Reaching each trailer verifies each input's index and file checksum (a superseded input is
  // read through too: a corrupt file is never silently dropped).
  for (const input of superseded) while (!(await input.pages.next()).done) input.seen++;
  for (const input of list) await input.decoder.trailer();
  if (base > 0 && baseInput) {
    const h = baseInput.header;
    const complete = h.commit - (lockPgno(h.pageSize) <= h.commit ? 1 : 0);
    if (baseInput.seen !== complete) {
      throw new LtxvfsError(
        'LTX_NOT_CONTIGUOUS',
        `input ${base} changes the page size from ${list[base - 1]?.header.pageSize} to ${h.pageSize} but holds ${baseInput.seen} of the database's ${complete} pages (a page size change needs a file with every page)`,
      );
    }
  }
  yield encoder.finish();
}
