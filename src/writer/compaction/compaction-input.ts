import type { LimitFunction } from 'p-limit';
import type { LtxFileInfo, ReplicaClient } from '../../storage/types.js';

/**
 * Streams one stored LTX file in ranged reads so a compaction holds a bounded window of each
 * input, whatever the file sizes. The first chunk is requested as soon as the reader exists (so
 * the headers of many small inputs arrive in parallel) and each next chunk while the previous
 * one is being merged.
 */
export function streamStoredFile(
  client: ReplicaClient,
  file: LtxFileInfo,
  chunkSize: number,
  /** Caps how many reads are in flight at once across all inputs of one compaction. */
  limit: LimitFunction,
): AsyncIterable<Uint8Array> {
  const fetchAt = (offset: number): Promise<Uint8Array> =>
    limit(() =>
      offset === 0 && file.size <= chunkSize
        ? client.readFile(file)
        : client.readRange(file, offset, Math.min(chunkSize, file.size - offset)),
    );
  let pending: Promise<Uint8Array> | undefined = file.size > 0 ? fetchAt(0) : undefined;
  // A prefetch nobody awaits must not become an unhandled rejection; the consumer sees the error.
  pending?.catch(() => {});
  return {
    async *[Symbol.asyncIterator]() {
      let offset = 0;
      while (pending) {
        const chunk = await pending;
        offset += chunk.length;
        pending = chunk.length > 0 && offset < file.size ? fetchAt(offset) : undefined;
        pending?.catch(() => {});
        if (chunk.length > 0) yield chunk;
      }
    },
  };
}

/** Chunk size that keeps (inputs x 2 chunks in flight) within the budget, within sane bounds. */
export function chooseChunkSize(inputCount: number, budgetBytes: number): number {
  const perInput = Math.floor(budgetBytes / Math.max(1, inputCount * 2));
  return Math.max(256 * 1024, Math.min(8 * 1024 * 1024, perInput));
}
