import { LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import type { PageEncoding } from './constants.js';
import { type DecodedPage, LtxStreamDecoder } from './decoder.js';
import { LtxEncoder } from './encoder.js';
import { type LtxHeader, litestreamHeader } from './header.js';
import type { Lz4Compressor } from './lz4-block.js';

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
}

/**
 * Merges a contiguous run of LTX files (oldest first) into one, streaming: each input is read
 * page by page in a k-way merge on page number, so memory is about one page per input.
 *
 * The newest version of each page wins; Commit and timestamp come from the last input; a page is
 * dropped if any later input shrank the database below it (a shrink followed by a regrow rewrites
 * the regrown pages). Output: NoChecksum, pre/post-apply checksums 0, no WAL fields; starting at
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
      if (header.pageSize !== prev.pageSize) {
        throw new LtxvfsError(
          'LTX_NOT_CONTIGUOUS',
          `input ${i} has page size ${header.pageSize}, input ${i - 1} has ${prev.pageSize}`,
        );
      }
    }
    list.push({ decoder, pages: decoder.pages(), head: undefined, header, keepUpTo: header.commit });
  }
  let keepUpTo = Number.POSITIVE_INFINITY;
  for (const input of list.slice().reverse()) {
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
      if (r.value.pgno <= input.keepUpTo) {
        input.head = r.value;
        return;
      }
    }
  };
  await Promise.all(list.map(advance));
  for (;;) {
    let pgno = Number.POSITIVE_INFINITY;
    for (const input of list) if (input.head && input.head.pgno < pgno) pgno = input.head.pgno;
    if (pgno === Number.POSITIVE_INFINITY) break;
    let newest: DecodedPage | undefined;
    const moving: Input[] = [];
    for (const input of list) {
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
  // Reaching each trailer verifies each input's index and file checksum.
  for (const input of list) await input.decoder.trailer();
  yield encoder.finish();
}
