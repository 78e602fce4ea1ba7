import { lockPgno } from '../ltx/index.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import type { Listing } from './extend.js';
import type { IndexLoader } from './index-loader.js';
import { isReadWhole, type PageFetcher } from './page-fetcher.js';
import { type PageLocation, PageMap } from './page-map.js';
import { planRestore } from './plan.js';
import type { Version } from './version.js';

/** Pages a local copy (the hydrated file) can answer without I/O to the store. */
export interface LocalPages {
  readSync(version: Version, loc: PageLocation, pgno: number): Uint8Array | undefined;
  /** Bytes [within, within + length) of the page straight into `dst` at `at`; false if it cannot. */
  readIntoSync?(
    version: Version,
    loc: PageLocation,
    pgno: number,
    within: number,
    length: number,
    dst: Uint8Array,
    at: number,
  ): boolean;
}

/**
 * Reads the pages of a version: the shared cache, then the local copy, then the store. When an
 * object the version planned has vanished (compaction, retention), plans the same TXID again from
 * the current listing and retries once. Each read looks the page up in the version's map once.
 */
export class PageReader {
  private local: LocalPages | undefined;
  private closed = false;

  constructor(
    private readonly client: ReplicaClient,
    private readonly fetcher: PageFetcher,
    private readonly loader: IndexLoader,
    private readonly log: (line: string) => void,
  ) {}

  /** The local copy to consult after the cache (set once the hydrator exists). */
  useLocalPages(local: LocalPages): void {
    this.local = local;
  }

  /** Reads through this reader fail from now on (the replica closed). */
  close(): void {
    this.closed = true;
  }

  readPageSync(version: Version, pgno: number): Uint8Array | undefined {
    if (pgno === lockPgno(version.pageSize)) return new Uint8Array(version.pageSize);
    const loc = version.map.lookup(pgno);
    if (loc === undefined) return undefined;
    const page = this.readKnownSync(version, loc, pgno);
    if (pgno === 1 && page !== undefined) this.checkPageOne(version, page);
    return page;
  }

  /**
   * readPageSync's answer copied into `dst` without an intermediate page: a cache hit is one copy,
   * a hydrated page one read of the file into `dst`. A page read this way from the file is not
   * cached (SQLite's own page cache keeps the hot ones); page 1 takes readPageSync (it is checked).
   */
  readPageIntoSync(
    version: Version,
    pgno: number,
    within: number,
    length: number,
    dst: Uint8Array,
    at: number,
  ): boolean {
    if (pgno === 1 || pgno === lockPgno(version.pageSize)) {
      const page = this.readPageSync(version, pgno);
      if (page === undefined || page.length !== version.pageSize) return false;
      dst.set(page.subarray(within, within + length), at);
      return true;
    }
    const loc = version.map.lookup(pgno);
    if (loc === undefined) return false;
    const hit = this.fetcher.cached(loc);
    if (hit !== undefined) {
      if (hit.length !== version.pageSize) return false;
      dst.set(within === 0 && length === hit.length ? hit : hit.subarray(within, within + length), at);
      return true;
    }
    return this.local?.readIntoSync?.(version, loc, pgno, within, length, dst, at) ?? false;
  }

  async readPage(version: Version, pgno: number): Promise<Uint8Array> {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `replica ${this.client.url} is closed`);
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > version.commit) {
      throw new LtxvfsError(
        'BAD_ARGUMENT',
        `page ${pgno} is outside the database of ${this.client.url} at TXID ${formatTxid(version.txid)} (${version.commit} pages)`,
      );
    }
    if (pgno === lockPgno(version.pageSize)) return new Uint8Array(version.pageSize);
    let loc = version.map.lookup(pgno);
    if (loc !== undefined) {
      const local = this.readKnownSync(version, loc, pgno);
      if (local !== undefined) {
        if (pgno === 1) this.checkPageOne(version, local);
        return local;
      }
    }
    for (let attempt = 0; ; attempt++) {
      if (loc === undefined) {
        throw new LtxvfsError(
          'REPLICA_CORRUPT',
          `page ${pgno} of ${this.client.url} at TXID ${formatTxid(version.txid)} is in none of the planned objects`,
        );
      }
      try {
        const reading = this.fetcher.read(loc, version.pageSize);
        if (attempt === 0 && isReadWhole(loc.index))
          this.fetcher.readSmallSiblings(loc.index, version.map.files(), version.pageSize);
        const page = await reading;
        if (pgno === 1) this.checkPageOne(version, page);
        return page;
      } catch (err) {
        if (attempt > 0 || !isLtxvfsError(err, 'STORAGE_NOT_FOUND')) throw err;
        await this.replan(version, err);
        loc = version.map.lookup(pgno);
      }
    }
  }

  /**
   * An object this version planned is gone (compaction/retention): plan the same TXID again from
   * the current listing. Only if the TXID can no longer be produced is it an error naming the object.
   * Concurrent callers share one re-plan.
   */
  replan(version: Version, cause?: LtxvfsError): Promise<void> {
    if (version.replanning === undefined) {
      version.replanning = this.replanNow(version, cause).finally(() => {
        version.replanning = undefined;
      });
    }
    return version.replanning;
  }

  /**
   * SQLite's own record of the database size (page 1, offset 28, valid while the change counter
   * at 24 equals the version-valid-for number at 92) must be the size the plan's last header
   * claims; otherwise that header lies (SQLite would only say "database disk image is malformed").
   */
  private checkPageOne(version: Version, page: Uint8Array): void {
    if (page.length < 100) return;
    const view = new DataView(page.buffer, page.byteOffset, 100);
    const size = view.getUint32(28);
    if (size === 0 || view.getUint32(24) !== view.getUint32(92) || size === version.commit) return;
    throw new LtxvfsError(
      'REPLICA_CORRUPT',
      `header of ${version.commitFrom} in ${this.client.url} says the database has ${version.commit} pages at TXID ` +
        `${formatTxid(version.txid)}, but its page 1 says ${size}`,
    );
  }

  private readKnownSync(version: Version, loc: PageLocation, pgno: number): Uint8Array | undefined {
    const hit = this.fetcher.cached(loc);
    if (hit !== undefined || this.local === undefined) return hit;
    // A hydrated page is the content of `loc`'s frame (an immutable object), so caching it under
    // the frame's key cannot mix versions; hot pages then skip the file read.
    const page = this.local.readSync(version, loc, pgno);
    if (page !== undefined) this.fetcher.remember(loc, page);
    return page;
  }

  private async replanNow(version: Version, cause: LtxvfsError | undefined): Promise<void> {
    const listing = await listAllLevels(this.client);
    let chain: LtxFileInfo[] | undefined;
    try {
      chain = planRestore(listing, { txid: version.txid }, { url: this.client.url });
    } catch {
      chain = undefined;
    }
    // planRestore throws unless the chain reaches version.txid exactly.
    if (chain === undefined) {
      const what = cause?.message ?? 'an object it planned vanished';
      throw new LtxvfsError(
        'STORAGE_NOT_FOUND',
        `${what}; TXID ${formatTxid(version.txid)} is no longer available in ${this.client.url} ` +
          `(compaction or retention removed it); ${heldStates(version.txid, listing)}`,
        { cause },
      );
    }
    const loaded = await this.loader.loadAll(chain, new Set());
    version.map = PageMap.build(
      loaded.map((l) => l.index),
      version.commit,
    );
    this.log(`${this.client.url}: re-planned TXID ${formatTxid(version.txid)} after objects vanished`);
  }
}

/** Which states the listing holds around `txid`, for error messages. */
function heldStates(txid: Txid, listing: Listing): string {
  let below = 0;
  let above = Number.POSITIVE_INFINITY;
  let newest = 0;
  for (const files of listing.values()) {
    for (const f of files) {
      newest = Math.max(newest, f.maxTxid);
      if (f.maxTxid < txid) below = Math.max(below, f.maxTxid);
      if (f.maxTxid > txid) above = Math.min(above, f.maxTxid);
    }
  }
  if (newest === 0) return 'the replica holds no LTX files';
  const near = [
    below > 0 ? formatTxid(below) : undefined,
    Number.isFinite(above) ? formatTxid(above) : undefined,
  ]
    .filter((x) => x !== undefined)
    .join(' and ');
  return `the replica holds states up to ${formatTxid(newest)}; the nearest file boundaries are ${near}`;
}
