import { createReadStream } from 'node:fs';
import pLimit from 'p-limit';
import {
  computePageDigests,
  encodePageDigests,
  PAGE_DIGESTS_MIN_OBJECT_SIZE,
  pageDigestsObjectName,
} from '../ltx/index.js';
import type { LtxFileRef, ReplicaClient } from '../storage/types.js';
import { wrapClient } from '../storage/wrap-client.js';
import { isLtxvfsError } from '../util/errors.js';

/** Sidecar deletions in flight at once after a batch of LTX deletes. */
const DELETE_CONCURRENCY = 8;

/**
 * The replica client with page digests (src/ltx/page-digests.ts) kept beside every LTX object
 * larger than PAGE_DIGESTS_MIN_OBJECT_SIZE: the digests object is written before the LTX object
 * (a reader that sees the object can check its random reads) and deleted after it (never a
 * listed object without its digests). Digests are computed from the very bytes being uploaded,
 * decoded and verified in full, so a corrupt local output is refused before it leaves.
 */
export function withPageDigests(
  client: ReplicaClient,
  warn: (line: string) => void = () => {},
): ReplicaClient {
  /**
   * Writes the digests of the object about to be uploaded; returns what is left to do once its
   * create-only write succeeded. Digests already there and different are replaced only then:
   * if the object exists (a snapshot of an unchanged database taken again, an output an earlier
   * run uploaded) its write fails and the digests that describe it stay.
   */
  const putDigests = async (
    file: LtxFileRef,
    chunks: AsyncIterable<Uint8Array>,
    size: number,
  ): Promise<(() => Promise<void>) | undefined> => {
    const digests = await computePageDigests(file.level, chunks, size);
    const bytes = encodePageDigests(digests);
    const name = pageDigestsObjectName(file);
    try {
      await client.writeObject(name, bytes, { ifNoneMatch: '*' });
      return undefined;
    } catch (err) {
      if (!isLtxvfsError(err, 'STORAGE_CONDITION_FAILED')) throw err;
    }
    const existing = await client.readObject(name);
    if (existing !== null && Buffer.from(existing.data).equals(Buffer.from(bytes))) return undefined;
    return async () => {
      // The object did not exist: those digests were left by an attempt that never uploaded it.
      await client.writeObject(
        name,
        bytes,
        existing === null ? { ifNoneMatch: '*' } : { ifMatch: existing.etag },
      );
    };
  };
  return wrapClient(client, {
    async writeFile(file, data, options) {
      const after =
        data.byteLength > PAGE_DIGESTS_MIN_OBJECT_SIZE
          ? await putDigests(file, oneChunk(data), data.byteLength)
          : undefined;
      const info = await client.writeFile(file, data, options);
      await after?.();
      return info;
    },
    async writeFileFrom(file, source, options) {
      const after =
        source.size > PAGE_DIGESTS_MIN_OBJECT_SIZE
          ? await putDigests(file, createReadStream(source.path, { highWaterMark: 1 << 20 }), source.size)
          : undefined;
      const info = await client.writeFileFrom(file, source, options);
      await after?.();
      return info;
    },
    async deleteFiles(files) {
      await client.deleteFiles(files);
      const limit = pLimit(DELETE_CONCURRENCY);
      const withDigests = files.filter(
        (f) => !('size' in f) || typeof f.size !== 'number' || f.size > PAGE_DIGESTS_MIN_OBJECT_SIZE,
      );
      await Promise.all(
        withDigests.map((f) =>
          limit(async () => {
            try {
              await client.deleteObject(pageDigestsObjectName(f));
            } catch (err) {
              // An orphaned digests object is harmless (readers check it describes the object).
              warn(
                `could not delete ${pageDigestsObjectName(f)}: ${err instanceof Error ? err.message : String(err)}`,
              );
            }
          }),
        ),
      );
    },
  });
}

async function* oneChunk(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}
