import { LtxStreamDecoder, lockPgno } from '../ltx/index.js';
import { describeLtxFile } from '../ltx/names.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';
import { planRestore } from './plan.js';
import { fileChunks } from './restore.js';

export interface VerifyReport {
  levels: number[];
  files: number;
  bytes: number;
  /** One line per problem, naming the file. */
  problems: string[];
}

/**
 * Checks a replica: every file fully decoded and verified (file checksum, index, page order),
 * its header TXIDs equal to its name, one page size throughout each level except at a file that
 * holds every page (the primary changed its page size); each level 0..8 tiles its TXID
 * range without gaps or overlaps, L9 files are snapshots starting at TXID 1; and the latest
 * state is restorable (Litestream's plan finds a contiguous chain from TXID 1).
 */
export async function verifyReplica(client: ReplicaClient): Promise<VerifyReport> {
  const listing = await listAllLevels(client);
  const problems: string[] = [];
  let files = 0;
  let bytes = 0;
  const name = (f: LtxFileInfo) => describeLtxFile(f);
  for (const [level, list] of listing) {
    let prev: LtxFileInfo | undefined;
    let pageSize: number | undefined;
    for (const f of list) {
      if (level === 9 && f.minTxid !== 1) problems.push(`${name(f)}: a snapshot must start at TXID 1`);
      if (level !== 9 && prev) {
        if (f.minTxid > prev.maxTxid + 1) {
          problems.push(
            `${name(f)}: gap after ${name(prev)} (TXIDs ${formatTxid(prev.maxTxid + 1)}..${formatTxid(f.minTxid - 1)} missing)`,
          );
        } else if (f.minTxid <= prev.maxTxid) {
          problems.push(`${name(f)}: overlaps ${name(prev)}`);
        }
      }
      prev = f;
      files++;
      try {
        const decoder = new LtxStreamDecoder(fileChunks(client, f));
        const header = await decoder.header();
        if (header.minTxid !== f.minTxid || header.maxTxid !== f.maxTxid) {
          problems.push(
            `${name(f)}: header says TXIDs ${formatTxid(header.minTxid)}-${formatTxid(header.maxTxid)}`,
          );
        }
        let pages = 0;
        for await (const _page of decoder.pages()) pages++;
        await decoder.trailer();
        // The primary may change its page size (offline VACUUM): the file at the change holds
        // every page and replaces what came before it in its level.
        const complete = header.commit - (lockPgno(header.pageSize) <= header.commit ? 1 : 0);
        if (pageSize !== undefined && header.pageSize !== pageSize && pages !== complete) {
          problems.push(
            `${name(f)}: page size ${header.pageSize} after files with ${pageSize}, and it holds ${pages} of the database's ${complete} pages (a page size change needs every page)`,
          );
        }
        pageSize = header.pageSize;
        bytes += f.size;
      } catch (err) {
        const reason = isLtxvfsError(err) ? `${err.code}: ${err.message}` : String(err);
        problems.push(`${name(f)}: ${reason}`);
      }
    }
  }
  if (files > 0) {
    try {
      planRestore(listing, {}, { url: client.url });
    } catch (err) {
      problems.push(`not restorable: ${isLtxvfsError(err) ? `${err.code}: ${err.message}` : String(err)}`);
    }
  } else {
    problems.push(`${client.url} holds no LTX files`);
  }
  return { levels: [...listing.keys()], files, bytes, problems };
}
