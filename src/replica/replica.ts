import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import { lockPgno } from '../ltx/index.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { describeTarget, type Listing } from './extend.js';
import { Hydrator, type HydratorHost } from './hydrator.js';
import { IndexLoader } from './index-loader.js';
import { PageFetcher } from './page-fetcher.js';
import { type FileIndex, PageMap } from './page-map.js';
import { planRestore } from './plan.js';
import { findNewFiles, listAllLevels, PollTimer } from './poller.js';
import type { Version } from './version.js';

export interface ReplicaOptions {
  /** Default 1000; 0 = no background polling (call poll() yourself). */
  pollIntervalMs?: number;
  /** Page cache shared by all views of this replica, bounded by bytes. Default 64 MiB. */
  cacheBytes?: number;
  /** Download the whole database in the background into this file (plus a sidecar). */
  hydratePath?: string;
  /** Cap of the growing sequential read-ahead (and of one hydration request). Default 4 MiB. */
  maxReadAheadBytes?: number;
  /** Merge adjacent frames wanted at the same time into one range GET. Default true. */
  coalesce?: boolean;
  /** Grow read-ahead on sequential access. Default true. */
  readAhead?: boolean;
  logger?: (line: string) => void;
}

export interface HydrationStatus {
  state: 'off' | 'running' | 'done' | 'error';
  txid: Txid;
  pagesDone: number;
  pagesTotal: number;
  bytesDownloaded: number;
  error?: string;
}

/** One consistent TXID; immutable while held. */
export interface ReplicaView {
  readonly txid: Txid;
  readonly pageSize: number;
  /** Commit of the last file in the plan. */
  readonly pageCount: number;
  /** Header timestamp of the last file. */
  readonly timestamp: Date;
  /**
   * Page bytes (pgno 1-based); zeros for the lock page; a named error for missing/corrupt
   * objects. The array may be shared with the cache: copy it before modifying it.
   */
  readPage(pgno: number): Promise<Uint8Array>;
  /** The same, only if it can be answered without I/O (cache or hydrated file). */
  readPageSync(pgno: number): Uint8Array | undefined;
  /** End of the read transaction. Reading a released view is an error. */
  release(): void;
}

export const DEFAULT_CACHE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MAX_READ_AHEAD_BYTES = 4 * 1024 * 1024;
export const DEFAULT_POLL_INTERVAL_MS = 1000;
/** Historical versions kept planned (their page maps), so re-acquiring one costs no requests. */
const HISTORY_VERSIONS = 16;

/**
 * The read side of one replica: one page map per TXID, one page cache, one poller, and
 * optionally one hydrated local file, shared by every connection of the process.
 *
 * Events: 'update' (txid) when the poller found newer files, 'hydration' (HydrationStatus),
 * 'error' (Error) for background failures (only emitted when someone listens; always logged).
 *
 * The caller owns the client: close() does not close it.
 */
export class Replica extends EventEmitter {
  readonly client: ReplicaClient;
  private readonly fetcher: PageFetcher;
  private readonly loader: IndexLoader;
  private readonly log: (line: string) => void;
  private latestVersion: Version;
  private readonly pins = new Map<Version, number>();
  private readonly history = new LRUCache<Txid, Promise<Version>>({ max: HISTORY_VERSIONS });
  private readonly timer: PollTimer;
  private polling: Promise<Txid> | undefined;
  private tipSeenAt: number;
  private readonly hydrator: Hydrator | undefined;
  private closed = false;

  private constructor(
    client: ReplicaClient,
    options: ReplicaOptions,
    loader: IndexLoader,
    latest: Version,
    openedAt: number,
  ) {
    super();
    this.client = client;
    this.loader = loader;
    this.log = options.logger ?? (() => {});
    this.latestVersion = latest;
    this.tipSeenAt = openedAt;
    this.fetcher = new PageFetcher(client, {
      cacheBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES,
      coalesce: options.coalesce ?? true,
      readAhead: options.readAhead ?? true,
      maxReadAheadBytes: options.maxReadAheadBytes ?? DEFAULT_MAX_READ_AHEAD_BYTES,
    });
    this.timer = new PollTimer(options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, () => this.poll());
    if (options.hydratePath !== undefined)
      this.hydrator = new Hydrator(this.hydratorHost(), options.hydratePath);
  }

  /** Lists levels, plans the latest state and fetches the page-index tails in parallel. */
  static async open(client: ReplicaClient, options: ReplicaOptions = {}): Promise<Replica> {
    const openedAt = Date.now();
    const loader = new IndexLoader(client);
    const listing = await listAllLevels(client);
    const chain = planRestore(listing, {}, { url: client.url });
    const latest = await buildVersion(loader, chain, client.url);
    const replica = new Replica(client, options, loader, latest, openedAt);
    replica.log(
      `opened ${client.url} at TXID ${formatTxid(latest.txid)} (${chain.length} files, ${latest.commit} pages)`,
    );
    replica.timer.start();
    replica.hydrator?.start();
    return replica;
  }

  /** Latest known state, synchronous (the poller keeps it fresh); pinned until release(). */
  acquireLatest(): ReplicaView {
    this.assertOpen();
    return this.pin(this.latestVersion);
  }

  /** A historical (or the latest) state; TXID_NOT_AVAILABLE if the replica does not hold it. */
  async acquireAt(target: { txid?: Txid; timestamp?: Date }): Promise<ReplicaView> {
    this.assertOpen();
    if (target.txid === undefined && target.timestamp === undefined) return this.acquireLatest();
    if (target.txid !== undefined && target.txid === this.latestVersion.txid) return this.acquireLatest();
    if (target.txid !== undefined) {
      const known = this.history.get(target.txid);
      if (known !== undefined) return this.pin(await known);
    }
    const listing = await listAllLevels(this.client);
    const chain = planRestore(listing, target, { url: this.client.url });
    const reached = chain[chain.length - 1].maxTxid;
    if (target.txid !== undefined && reached !== target.txid) {
      throw new LtxvfsError('TXID_NOT_AVAILABLE', notAvailableMessage(target.txid, listing, this.client.url));
    }
    if (reached === this.latestVersion.txid) return this.acquireLatest();
    let pending = this.history.get(reached);
    if (pending === undefined) {
      pending = buildVersion(this.loader, chain, this.client.url);
      this.history.set(reached, pending);
      pending.catch(() => this.history.delete(reached));
    }
    return this.pin(await pending);
  }

  /** Polls now (also used by tests); resolves with the latest TXID. Concurrent calls share one poll. */
  poll(): Promise<Txid> {
    if (this.closed) return Promise.resolve(this.latestVersion.txid);
    if (this.polling === undefined) {
      this.polling = this.pollOnce()
        .catch((err: unknown) => {
          this.log(`poll of ${this.client.url} failed: ${err instanceof Error ? err.message : String(err)}`);
          if (this.listenerCount('error') > 0) this.emit('error', err);
          throw err;
        })
        .finally(() => {
          this.polling = undefined;
        });
    }
    return this.polling;
  }

  /** Seconds the latest view may be behind the primary (since the last poll that saw the tip). */
  lagSeconds(): number {
    return (Date.now() - this.tipSeenAt) / 1000;
  }

  hydration(): HydrationStatus {
    return (
      this.hydrator?.status() ?? { state: 'off', txid: 0, pagesDone: 0, pagesTotal: 0, bytesDownloaded: 0 }
    );
  }

  /** Pages and bytes in the shared page cache. */
  cacheStats(): { pages: number; bytes: number } {
    return this.fetcher.cacheStats();
  }

  /** Stops polling and hydration (the sidecar is saved). Open views stop working. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer.stop();
    await this.polling?.catch(() => {});
    await this.hydrator?.close();
    this.fetcher.clearCache();
  }

  private async pollOnce(): Promise<Txid> {
    const from = this.latestVersion;
    const finding = await findNewFiles(this.client, from.txid);
    let next: Version | undefined;
    let applied: FileIndex[] | 'replanned' = 'replanned';
    if (finding.kind === 'extend') {
      const last = finding.files[finding.files.length - 1];
      const loaded = await this.loader.loadAll(finding.files, new Set([last]));
      const header = loaded[loaded.length - 1].header!;
      if (header.pageSize === from.pageSize) {
        applied = loaded.map((l) => l.index);
        next = {
          txid: last.maxTxid,
          pageSize: header.pageSize,
          commit: header.commit,
          timestamp: new Date(header.timestamp),
          map: from.map.apply(applied, header.commit),
        };
      } else {
        const listing = await listAllLevels(this.client);
        next = await buildVersion(
          this.loader,
          planRestore(listing, {}, { url: this.client.url }),
          this.client.url,
        );
      }
    } else if (finding.kind === 'replan') {
      this.log(
        `${this.client.url}: TXID ${formatTxid(from.txid)} cannot be continued from the listing; re-planning`,
      );
      next = await buildVersion(
        this.loader,
        planRestore(finding.listing, {}, { url: this.client.url }),
        this.client.url,
      );
      if (next.txid <= from.txid) next = undefined;
    }
    this.tipSeenAt = Date.now();
    if (next !== undefined && this.latestVersion === from && !this.closed) {
      this.latestVersion = next;
      this.hydrator?.noteAdvance(from, next, applied);
      this.emit('update', next.txid);
    }
    return this.latestVersion.txid;
  }

  private pin(version: Version): ReplicaView {
    this.pins.set(version, (this.pins.get(version) ?? 0) + 1);
    return new View(this, version);
  }

  /** @internal */
  unpin(version: Version): void {
    const n = (this.pins.get(version) ?? 0) - 1;
    if (n > 0) this.pins.set(version, n);
    else this.pins.delete(version);
    this.hydrator?.wake();
  }

  /** @internal */
  readPageSync(version: Version, pgno: number): Uint8Array | undefined {
    if (pgno === lockPgno(version.pageSize)) return new Uint8Array(version.pageSize);
    const loc = version.map.lookup(pgno);
    if (loc === undefined) return undefined;
    const hit = this.fetcher.cached(loc);
    if (hit !== undefined || this.hydrator === undefined) return hit;
    // A hydrated page is the content of `loc`'s frame (an immutable object), so caching it under
    // the frame's key cannot mix versions; hot pages then skip the file read.
    const page = this.hydrator.readSync(version, loc, pgno);
    if (page !== undefined) this.fetcher.remember(loc, page);
    return page;
  }

  /** @internal */
  async readPage(version: Version, pgno: number): Promise<Uint8Array> {
    this.assertOpen();
    if (!Number.isInteger(pgno) || pgno < 1 || pgno > version.commit) {
      throw new LtxvfsError(
        'BAD_ARGUMENT',
        `page ${pgno} is outside the database of ${this.client.url} at TXID ${formatTxid(version.txid)} (${version.commit} pages)`,
      );
    }
    const local = this.readPageSync(version, pgno);
    if (local !== undefined) return local;
    for (let attempt = 0; ; attempt++) {
      const loc = version.map.lookup(pgno);
      if (loc === undefined) {
        throw new LtxvfsError(
          'REPLICA_CORRUPT',
          `page ${pgno} of ${this.client.url} at TXID ${formatTxid(version.txid)} is in none of the planned objects`,
        );
      }
      try {
        return await this.fetcher.read(loc, version.pageSize);
      } catch (err) {
        if (attempt > 0 || !isLtxvfsError(err, 'STORAGE_NOT_FOUND')) throw err;
        await this.replan(version, err);
      }
    }
  }

  /**
   * An object this version planned is gone (compaction/retention): plan the same TXID again from
   * the current listing. Only if the TXID can no longer be produced is it an error naming the object.
   */
  private replan(version: Version, cause?: LtxvfsError): Promise<void> {
    if (version.replanning === undefined) {
      version.replanning = (async () => {
        const listing = await listAllLevels(this.client);
        let chain: LtxFileInfo[] | undefined;
        try {
          chain = planRestore(listing, { txid: version.txid }, { url: this.client.url });
        } catch {
          chain = undefined;
        }
        if (chain === undefined || chain[chain.length - 1].maxTxid !== version.txid) {
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
      })().finally(() => {
        version.replanning = undefined;
      });
    }
    return version.replanning;
  }

  private oldestPinnedTxid(): Txid | undefined {
    let oldest: Txid | undefined;
    for (const v of this.pins.keys()) if (oldest === undefined || v.txid < oldest) oldest = v.txid;
    return oldest;
  }

  private hydratorHost(): HydratorHost {
    return {
      client: this.client,
      fetcher: this.fetcher,
      loader: this.loader,
      latest: () => this.latestVersion,
      oldestPinnedTxid: () => this.oldestPinnedTxid(),
      replan: (version) => this.replan(version),
      report: (status) => this.emit('hydration', status),
      log: (line) => this.log(line),
    };
  }

  private assertOpen(): void {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `replica ${this.client.url} is closed`);
  }
}

class View implements ReplicaView {
  private released = false;

  constructor(
    private readonly replica: Replica,
    private readonly version: Version,
  ) {}

  get txid(): Txid {
    return this.version.txid;
  }

  get pageSize(): number {
    return this.version.pageSize;
  }

  get pageCount(): number {
    return this.version.commit;
  }

  get timestamp(): Date {
    return this.version.timestamp;
  }

  readPage(pgno: number): Promise<Uint8Array> {
    if (this.released) return Promise.reject(this.releasedError());
    return this.replica.readPage(this.version, pgno);
  }

  readPageSync(pgno: number): Uint8Array | undefined {
    if (this.released) throw this.releasedError();
    if (pgno < 1 || pgno > this.version.commit) return undefined;
    return this.replica.readPageSync(this.version, pgno);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.replica.unpin(this.version);
  }

  private releasedError(): LtxvfsError {
    return new LtxvfsError('BAD_ARGUMENT', `view of TXID ${formatTxid(this.version.txid)} was released`);
  }
}

/** Page maps of the planned files, applied in order; header of the last file gives size and time. */
async function buildVersion(loader: IndexLoader, chain: LtxFileInfo[], url: string): Promise<Version> {
  const last = chain[chain.length - 1];
  const loaded = await loader.loadAll(chain, new Set([last]));
  const header = loaded[loaded.length - 1].header!;
  for (const l of loaded) {
    if (l.header !== undefined && l.header.pageSize !== header.pageSize) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `objects of ${url} disagree on the page size: ${l.index.key} has ${l.header.pageSize}, ` +
          `${loaded[loaded.length - 1].index.key} has ${header.pageSize}`,
      );
    }
  }
  return {
    txid: last.maxTxid,
    pageSize: header.pageSize,
    commit: header.commit,
    timestamp: new Date(header.timestamp),
    map: PageMap.build(
      loaded.map((l) => l.index),
      header.commit,
    ),
  };
}

function notAvailableMessage(txid: Txid, listing: Listing, url: string): string {
  return `${describeTarget({ txid })} is not available in ${url}: ${heldStates(txid, listing)}`;
}

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
