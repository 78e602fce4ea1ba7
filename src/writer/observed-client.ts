import { open } from 'node:fs/promises';
import type { LocalFileSource, LtxFileInfo, LtxFileRef, ReplicaClient } from '../storage/types.js';
import { wrapClient } from '../storage/wrap-client.js';

/** Reads bytes [offset, offset+length) of a file the writer just wrote (from its local copy). */
export type LocalBytes = (offset: number, length: number) => Promise<Uint8Array>;

/** What the writer's own writes tell whoever keeps the manifest. */
export interface WriteObserver {
  /** A create-only write succeeded: the object exists now; `read` reads its bytes locally. */
  written(file: LtxFileInfo, read: LocalBytes): Promise<void>;
  /** These objects are about to be deleted: stop naming them before they go. */
  deleting(files: readonly LtxFileRef[]): void;
  /** A write ended in an error: the object may or may not exist; the next look must list. */
  uncertain(): void;
}

/**
 * The replica client with every LTX write and delete reported to `observer`, so the manifest can
 * be kept from the writer's own knowledge instead of a LIST per write. The observer learns of a
 * write only after it succeeded (the manifest never names a file that does not exist) and of a
 * delete before it is sent (nor one that is going away).
 */
export function observeWrites(client: ReplicaClient, observer: WriteObserver): ReplicaClient {
  return wrapClient(client, {
    async writeFile(file, data, options) {
      const info = await reportFailure(observer, client.writeFile(file, data, options));
      await observer.written(info, async (offset, length) => data.subarray(offset, offset + length));
      return info;
    },
    async writeFileFrom(file, source, options) {
      const info = await reportFailure(observer, client.writeFileFrom(file, source, options));
      // The caller removes the local file after this returns: read what is needed now.
      await observer.written(info, localReader(source));
      return info;
    },
    deleteFiles(files) {
      observer.deleting(files);
      return client.deleteFiles(files);
    },
  });
}

async function reportFailure<T>(observer: WriteObserver, write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    observer.uncertain();
    throw err;
  }
}

function localReader(source: LocalFileSource): LocalBytes {
  return async (offset, length) => {
    const handle = await open(source.path, 'r');
    try {
      const out = new Uint8Array(Math.max(0, Math.min(length, source.size - offset)));
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return out.subarray(0, done);
    } finally {
      await handle.close();
    }
  };
}
