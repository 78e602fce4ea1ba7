import { existsSync, ftruncateSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { describeLtxFile, type LtxHeader, LtxStreamDecoder, lockPgno } from '../ltx/index.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { writeAllSync, writeFileAtomic } from '../util/atomic-file.js';
import { LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { planRestore, type RestoreTarget } from './plan.js';
import { planAtTime } from './time-target.js';

export interface RestoreProgress {
  /** Files of the plan done, and in total. */
  filesDone: number;
  files: number;
  /** Bytes of LTX read so far, and the plan's total. */
  bytesRead: number;
  bytesTotal: number;
}

export interface RestoreOptions extends RestoreTarget {
  client: ReplicaClient;
  outPath: string;
  /** Overwrite an existing file at outPath. */
  force?: boolean;
  onProgress?: (p: RestoreProgress) => void;
  /** Bytes per range GET while streaming a file (default 4 MiB). */
  chunkBytes?: number;
}

export interface RestoreResult {
  txid: Txid;
  pageSize: number;
  /** Database size in pages. */
  commit: number;
  files: LtxFileInfo[];
  bytesRead: number;
}

/**
 * Restores the database at a TXID (default: the latest) into `outPath`.
 *
 * Plans with Litestream's algorithm (plan.ts), then streams every planned file in order with
 * full verification and writes each page at its place in `<out>.tmp`: later files override
 * earlier ones, which is exactly what compacting the chain into one snapshot and writing that
 * would give. The file is then cut to Commit pages, fsynced and renamed into place, and the
 * directory fsynced. The lock page stays zeros; page 1 keeps the bytes the primary had (WAL mode,
 * bytes 18-19 = 2), as `litestream restore` leaves them, so the result is byte-identical to the
 * primary's database file at that TXID after a checkpoint.
 *
 * A file that fails verification stops the restore with its error (naming the file) and removes
 * the temp file: nothing half-written is left at outPath.
 */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const { client, outPath } = options;
  checkOutputPath(outPath);
  if (!options.force && existsSync(outPath)) {
    throw new LtxvfsError('BAD_ARGUMENT', `${outPath} already exists (use --force to overwrite)`);
  }
  const listing = await listAllLevels(client);
  const plan =
    options.timestamp !== undefined && options.txid === undefined
      ? await planAtTime(client, listing, options.timestamp, client.url)
      : planRestore(listing, options, { url: client.url });
  const bytesTotal = plan.reduce((n, f) => n + f.size, 0);
  const chunkBytes = options.chunkBytes ?? 4 * 1024 * 1024;
  let bytesRead = 0;
  const header = await writeOutput(outPath, async (fd) => {
    let last: LtxHeader | undefined;
    for (const [i, file] of plan.entries()) {
      const name = `${client.url} ${describeLtxFile(file)}`;
      const counted = async function* () {
        for await (const chunk of fileChunks(client, file, chunkBytes)) {
          bytesRead += chunk.length;
          yield chunk;
        }
      };
      const decoder = new LtxStreamDecoder(counted());
      try {
        const header = await decoder.header();
        // The primary changed its page size (offline `PRAGMA page_size` + VACUUM): the writer
        // then sends a file with every page, which replaces everything before it.
        const pageSizeChanged = last !== undefined && header.pageSize !== last.pageSize;
        if (pageSizeChanged) ftruncateSync(fd, 0);
        if (header.minTxid !== file.minTxid || header.maxTxid !== file.maxTxid) {
          throw new LtxvfsError(
            'REPLICA_CORRUPT',
            `header says TXIDs ${formatTxid(header.minTxid)}-${formatTxid(header.maxTxid)}`,
          );
        }
        let pages = 0;
        for await (const page of decoder.pages()) {
          writeAllSync(fd, page.data, (page.pgno - 1) * header.pageSize);
          pages++;
        }
        await decoder.trailer();
        if (pageSizeChanged && pages !== completePageCount(header)) {
          throw new LtxvfsError(
            'REPLICA_CORRUPT',
            `page size ${header.pageSize} differs from the previous file's ${last?.pageSize}, and the file holds ${pages} of the database's ${completePageCount(header)} pages (a page size change needs a file with every page)`,
          );
        }
        last = header;
      } catch (err) {
        if (err instanceof LtxvfsError) {
          throw new LtxvfsError(err.code, `${name}: ${err.message}`, { cause: err });
        }
        throw err;
      }
      options.onProgress?.({ filesDone: i + 1, files: plan.length, bytesRead, bytesTotal });
    }
    // The plan is never empty (planRestore throws REPLICA_EMPTY first).
    const final = present(last, `header of the last file of the plan of ${client.url}`);
    ftruncateSync(fd, final.commit * final.pageSize);
    const lock = lockPgno(final.pageSize);
    if (lock <= final.commit) writeAllSync(fd, new Uint8Array(final.pageSize), (lock - 1) * final.pageSize);
    return final;
  });
  return { txid: header.maxTxid, pageSize: header.pageSize, commit: header.commit, files: plan, bytesRead };
}

/** Pages 1..commit without the lock page: what a file holding the whole database holds. */
function completePageCount(header: LtxHeader): number {
  return header.commit - (lockPgno(header.pageSize) <= header.commit ? 1 : 0);
}

/**
 * Refuses, before anything is fetched, an output that cannot be written: a directory, or a path
 * whose directory does not exist.
 */
function checkOutputPath(outPath: string): void {
  const stats = statSync(outPath, { throwIfNoEntry: false });
  if (stats?.isDirectory()) {
    throw new LtxvfsError('RESTORE_OUTPUT', `${outPath} is a directory; give the path of a database file`);
  }
  const dir = dirname(resolve(outPath));
  const dirStats = statSync(dir, { throwIfNoEntry: false });
  if (!dirStats) throw new LtxvfsError('RESTORE_OUTPUT', `directory ${dir} of ${outPath} does not exist`);
  if (!dirStats.isDirectory())
    throw new LtxvfsError('RESTORE_OUTPUT', `${dir} of ${outPath} is not a directory`);
}

/** writeFileAtomic, with file-system failures (full, read-only, no permission) named by path. */
async function writeOutput<T>(outPath: string, write: (fd: number) => Promise<T>): Promise<T> {
  try {
    return await writeFileAtomic(outPath, write);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    if (!(err instanceof LtxvfsError) && typeof code === 'string') {
      const why =
        code === 'ENOSPC'
          ? 'the disk is full'
          : code === 'EROFS'
            ? 'the file system is read-only'
            : code === 'EACCES' || code === 'EPERM'
              ? 'permission denied'
              : code;
      throw new LtxvfsError(
        'RESTORE_OUTPUT',
        `cannot write ${outPath}: ${why} (${code}); nothing was left behind`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

/** A stored file as a stream of range reads (memory: one chunk). */
export async function* fileChunks(
  client: ReplicaClient,
  file: LtxFileInfo,
  chunkBytes = 4 * 1024 * 1024,
): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < file.size; offset += chunkBytes) {
    const chunk = await client.readRange(file, offset, Math.min(chunkBytes, file.size - offset));
    if (chunk.length === 0) break;
    yield chunk;
  }
}
