import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import { type DecodedLtxFile, decodePageFrame, pageDigestsObjectName } from '../ltx/index.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient, SmallObject } from '../storage/types.js';
import { LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { extendChain } from './extend.js';
import { Hydrator } from './hydrator.js';
import { IndexLoader } from './index-loader.js';
import {
  describeManifest,
  isVanished,
  loadFromManifest,
  lookAtManifest,
  type ManifestState,
  manifestEntry,
} from './manifest-open.js';
import { PageFetcher } from './page-fetcher.js';
import { type FileIndex, fileKey, PageMap } from './page-map.js';
import { PageReader } from './page-reader.js';
import { planRestore, planTxid } from './plan.js';
import { findNewFiles, type PollFinding, PollTimer } from './poller.js';
import type { AcquireTarget, HydrationStatus, ReplicaSource, ReplicaView } from './port.js';
import { planAtTime } from './time-target.js';
import type { Version } from './version.js';
import { Pins, View } from './view.js';

export type { AcquireTarget, HydrationStatus, ReplicaSource, ReplicaView } from './port.js';

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
  /**
   * Open and follow through the writer's manifest (`ltxvfs/manifest.json`) when it is there and
   * fresh: one GET to open, one conditional GET per poll. Default true; false always lists.
   */
  manifest?: boolean;
}

/** Bytes of the base snapshot's front read with the index tails on the LIST path. */
const FRONT_BYTES = 128 * 1024;
/** Connections opened during the LIST for the round of index reads after it. */
const PRECONNECT_SOCKETS = 6;

/** In LIST mode, every this many polls also looks whether a fresh manifest is back. */
const MANIFEST_RETRY_POLLS = 10;

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
export class Replica extends EventEmitter implements ReplicaSource {
  readonly client: ReplicaClient;
  private readonly fetcher: PageFetcher;
  private readonly loader: IndexLoader;
  private readonly reader: PageReader;
  private readonly log: (line: string) => void;
  private latestVersion: Version;
  private readonly pins = new Pins(() => this.hydrator?.released());
  private readonly history = new LRUCache<Txid, Promise<Version>>({ max: HISTORY_VERSIONS });
  /** What each settled entry of `history` resolved to, for acquireKnown. */
  private readonly built = new WeakMap<Promise<Version>, Version>();
  private readonly timer: PollTimer;
  private polling: Promise<Txid> | undefined;
  private tipSeenAt: number;
  private hydrator: Hydrator | undefined;
  private closed = false;
  /** The manifest the latest version came from; undefined = LIST mode. */
  private manifestState: ManifestState | undefined;
  private readonly useManifest: boolean;
  private listPolls = 0;

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
      log: this.log,
    });
    this.reader = new PageReader(client, this.fetcher, loader, this.log);
    this.useManifest = options.manifest ?? true;
    this.timer = new PollTimer(options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, () => this.poll());
    if (options.hydratePath !== undefined) {
      this.hydrator = new Hydrator(
        {
          client,
          fetcher: this.fetcher,
          loader,
          latest: () => this.latestVersion,
          oldestPinnedTxid: () => this.pins.oldestTxid(),
          replan: (version) => this.reader.replan(version),
          report: (status) => this.emit('hydration', status),
          log: (line) => this.log(line),
        },
        options.hydratePath,
      );
      this.reader.useLocalPages(this.hydrator);
    }
  }

  /**
   * Opens at the latest state. With a fresh manifest: one round of GETs (the manifest and the hot
   * pages), then the page indexes the manifest does not carry, in parallel; the hot pages enter
   * the page cache wherever no newer file changed them. Otherwise (no manifest, or one that
   * cannot be trusted, which is logged): one LIST of the replica, then the index tails.
   */
  static async open(client: ReplicaClient, options: ReplicaOptions = {}): Promise<Replica> {
    const openedAt = Date.now();
    const log = options.logger ?? (() => {});
    const loader = new IndexLoader(client);
    let opened: { version: Version; state: ManifestState; hot?: DecodedLtxFile } | undefined;
    if (options.manifest ?? true) {
      const look = await lookAtManifest(client, { withHotPages: true });
      if (look.kind === 'ok') {
        try {
          const chain = planRestore(look.state.listing, {}, { url: client.url });
          // The indexes are asked for now, while the hot pages may still be arriving.
          const [version, hotPages] = await Promise.all([
            versionFromManifest(loader, look.state, chain),
            look.hotPages,
          ]);
          if (hotPages.kind === 'corrupt') log(`warning: ${hotPages.why}; listing instead`);
          else opened = { version, state: look.state, hot: hotPages.hot };
        } catch (err) {
          log(
            `warning: ${client.url}: the manifest's plan failed (${err instanceof Error ? err.message : String(err)}); listing instead`,
          );
        }
      } else if (look.kind === 'fallback' && look.why !== undefined) {
        log(`warning: ${look.why}; listing instead`);
      }
    }
    let latest: Version;
    // Pages already in hand after the open round, with the index that places them (kept here: the
    // loader's cache holds fewer indexes than a replica of 20,000 small files has).
    const inHand: Array<{ index: FileIndex; bytes: Uint8Array; digests?: SmallObject | null }> = [];
    const decodedInHand: Array<{ index: FileIndex; decoded: DecodedLtxFile }> = [];
    if (opened !== undefined) {
      latest = opened.version;
    } else {
      // Connections for the round after the listing are opened while it is in flight.
      client.preconnect?.(PRECONNECT_SOCKETS);
      const listing = await listAllLevels(client);
      const chain = planRestore(listing, {}, { url: client.url });
      // The front of the base snapshot (page 1, the schema, the low root pages: frames are in
      // page order) comes in the same round as the index tails.
      // Small files are read whole for their index: their pages are kept too.
      const base = chain[0];
      let baseIndex: FileIndex | undefined;
      const frontRead =
        base !== undefined && base.minTxid === 1 && base.size > FRONT_BYTES * 2
          ? Promise.all([
              client.readRange(base, 0, FRONT_BYTES),
              // Its page digests too (ltxvfs writers leave them), so its front pages are checked.
              client.readObject(pageDigestsObjectName(base)).catch(() => undefined),
            ]).then(
              ([bytes, digests]) => ({ bytes, digests }),
              () => undefined,
            )
          : Promise.resolve(undefined);
      loader.onFetched = (index, whole) => {
        if (whole !== undefined) decodedInHand.push({ index, decoded: whole });
        if (index.file === base) baseIndex = index;
      };
      let front: Awaited<typeof frontRead>;
      try {
        [latest, front] = await Promise.all([buildVersion(loader, chain, client.url), frontRead]);
      } finally {
        loader.onFetched = undefined;
      }
      if (front !== undefined && baseIndex !== undefined) inHand.push({ index: baseIndex, ...front });
    }
    const replica = new Replica(client, options, loader, latest, openedAt);
    if (opened !== undefined) {
      replica.manifestState = opened.state;
      if (opened.hot !== undefined) replica.seedHotPages(latest, opened.hot);
    }
    let seeded = 0;
    for (const { index, bytes, digests } of inHand)
      seeded += await replica.seedPagesFrom(latest, index, bytes, digests);
    for (const { index, decoded } of decodedInHand)
      seeded += replica.seedDecodedPages(latest, index, decoded);
    if (seeded > 0)
      replica.log(
        `${client.url}: ${seeded} pages of ${inHand.length + decodedInHand.length} objects read while opening, in the cache`,
      );
    replica.log(
      `opened ${client.url} at TXID ${formatTxid(latest.txid)} (${latest.commit} pages) ${opened ? `from ${describeManifest(opened.state.manifest)}` : 'by listing'}`,
    );
    replica.timer.start();
    replica.hydrator?.start();
    return replica;
  }

  /**
   * Hot pages are the state at their TXID h. A page whose newest frame in this version's plan
   * comes from a file ending at or before h has not changed since h, so the hot copy is its
   * content; every other hot page is left to the normal read (newer changes win).
   */
  private seedHotPages(version: Version, hot: DecodedLtxFile): void {
    const h = hot.header.maxTxid;
    let seeded = 0;
    for (const page of hot.pages) {
      if (page.pgno > version.commit) continue;
      const loc = version.map.lookup(page.pgno);
      if (loc === undefined || loc.index.file.maxTxid > h) continue;
      this.fetcher.remember(loc, page.data);
      seeded++;
    }
    this.log(
      `${this.client.url}: ${seeded} of ${hot.pages.length} hot pages (TXID ${formatTxid(h)}) in the cache`,
    );
  }

  /**
   * Pages whose whole frame lies in `bytes` (the first bytes of `index`'s object), wherever that frame is
   * the newest one of the page in the plan (a page a later file changed is left to that file).
   */
  /**
   * The pages of an object read and checked whole while opening, wherever its frame is the newest
   * one of the page in the plan (decoded once, by the check).
   */
  private seedDecodedPages(version: Version, index: FileIndex, decoded: DecodedLtxFile): number {
    let seeded = 0;
    for (const page of decoded.pages) {
      if (page.pgno > version.commit) continue;
      const loc = version.map.lookup(page.pgno);
      if (loc === undefined || loc.index.key !== index.key) continue;
      this.fetcher.remember(loc, page.data);
      seeded++;
    }
    return seeded;
  }

  private async seedPagesFrom(
    version: Version,
    index: FileIndex,
    bytes: Uint8Array,
    digestsObject?: SmallObject | null,
  ): Promise<number> {
    // Only the base snapshot's front comes with its digests object; files read whole were checked whole.
    const digests = digestsObject === undefined ? null : await this.fetcher.pageDigests(index, digestsObject);
    let seeded = 0;
    for (let i = 0; i < index.pgnos.length; i++) {
      const offset = index.offsets[i] ?? 0;
      const end = offset + (index.sizes[i] ?? 0);
      if (end > bytes.length) continue;
      const pgno = index.pgnos[i] ?? 0;
      if (pgno > version.commit) continue;
      const loc = version.map.lookup(pgno);
      if (loc === undefined || loc.index.key !== index.key || loc.entry !== i) continue;
      try {
        const page = decodePageFrame(bytes.subarray(offset, end), version.pageSize, pgno);
        if (!this.fetcher.matchesDigest(i, page, digests)) continue;
        this.fetcher.remember(loc, page);
        seeded++;
      } catch {
        // A damaged frame is reported by the normal read of that page, with its context.
      }
    }
    return seeded;
  }

  /** Latest known state, synchronous (the poller keeps it fresh); pinned until release(). */
  acquireLatest(): ReplicaView {
    this.assertOpen();
    return this.pin(this.latestVersion);
  }

  /** A historical (or the latest) state; TXID_NOT_AVAILABLE if the replica does not hold it. */
  async acquireAt(target: AcquireTarget): Promise<ReplicaView> {
    this.assertOpen();
    if (target.txid === undefined && target.timestamp === undefined) return this.acquireLatest();
    if (target.txid !== undefined && target.txid === this.latestVersion.txid) return this.acquireLatest();
    if (target.txid !== undefined) {
      const known = this.history.get(target.txid);
      if (known !== undefined) return this.pin(await known);
    }
    const listing = await listAllLevels(this.client);
    const chain =
      target.timestamp !== undefined && target.txid === undefined
        ? await planAtTime(this.client, listing, target.timestamp, this.client.url)
        : planRestore(listing, target, { url: this.client.url });
    // planRestore has thrown unless the chain is non-empty and reaches a TXID target exactly.
    const reached = planTxid(chain);
    if (reached === this.latestVersion.txid) return this.acquireLatest();
    let pending = this.history.get(reached);
    if (pending === undefined) {
      pending = buildVersion(this.loader, chain, this.client.url);
      this.remember(reached, pending);
    }
    return this.pin(await pending);
  }

  acquireKnown(txid: Txid): ReplicaView | undefined {
    this.assertOpen();
    if (txid === this.latestVersion.txid) return this.acquireLatest();
    const pending = this.history.get(txid);
    const version = pending === undefined ? undefined : this.built.get(pending);
    return version === undefined ? undefined : this.pin(version);
  }

  private remember(txid: Txid, pending: Promise<Version>): void {
    this.history.set(txid, pending);
    pending.then(
      (version) => this.built.set(pending, version),
      () => this.history.delete(txid),
    );
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

  /**
   * Stops hydration once it is complete and hands its file over (follow mode, src/follow): from
   * now on this replica neither writes nor reads the file, pages come from the cache and the
   * store. Resolves with the TXID the file holds, or undefined (hydration off or not complete).
   */
  async releaseHydratedFile(): Promise<{ txid: Txid } | undefined> {
    const hydrator = this.hydrator;
    if (hydrator === undefined || hydrator.status().state !== 'done') return undefined;
    this.reader.useLocalPages({ readSync: () => undefined });
    this.hydrator = undefined;
    await hydrator.close();
    const status = hydrator.status();
    return status.state === 'done' ? { txid: status.txid } : undefined;
  }

  /** Pages and bytes in the shared page cache. */
  cacheStats(): { pages: number; bytes: number } {
    return this.fetcher.cacheStats();
  }

  /** Stops polling and hydration (the sidecar is saved). Open views stop working. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reader.close();
    this.timer.stop();
    await this.polling?.catch(() => {});
    await this.hydrator?.close();
    this.fetcher.clearCache();
  }

  /**
   * With a manifest: one conditional GET (a 304 when nothing changed). Without, or when it stops
   * being trustworthy (logged once per switch): the LIST path, looking again every few polls.
   */
  private async findNew(from: Version): Promise<{ finding: PollFinding; state: ManifestState | undefined }> {
    const tryManifest =
      this.useManifest && (this.manifestState !== undefined || ++this.listPolls % MANIFEST_RETRY_POLLS === 0);
    if (tryManifest) {
      const current = this.manifestState;
      const look = await lookAtManifest(this.client, { etag: current?.etag, withHotPages: false });
      if (look.kind === 'unchanged' && current !== undefined) {
        if (Date.now() - current.manifest.writtenAt <= current.manifest.staleAfterMs) {
          return { finding: { kind: 'none' }, state: current };
        }
        this.log(
          `warning: ${this.client.url} manifest is stale (written ${new Date(current.manifest.writtenAt).toISOString()}): its writer stopped or another writer took over; listing instead`,
        );
      } else if (look.kind === 'ok') {
        if (current === undefined) this.log(`${this.client.url}: a fresh manifest is back; following it`);
        const listing = look.state.listing;
        const files = extendChain(listing, from.txid);
        const [first, ...rest] = files;
        const reached = files[files.length - 1]?.maxTxid ?? from.txid;
        if (reached >= look.state.manifest.txid) {
          return {
            finding: first !== undefined ? { kind: 'extend', files: [first, ...rest] } : { kind: 'none' },
            state: look.state,
          };
        }
        return { finding: { kind: 'replan', listing }, state: look.state };
      } else if (look.kind === 'fallback' && current !== undefined) {
        this.log(`warning: ${look.why ?? `${this.client.url} manifest is gone`}; listing instead`);
      }
      this.manifestState = undefined;
    }
    return { finding: await findNewFiles(this.client, from.txid), state: undefined };
  }

  private async pollOnce(): Promise<Txid> {
    const from = this.latestVersion;
    const { finding, state } = await this.findNew(from);
    this.manifestState = state;
    let next: Version | undefined;
    let applied: FileIndex[] | 'replanned' = 'replanned';
    if (finding.kind === 'extend' && state !== undefined) {
      try {
        const loaded = await loadFromManifest(this.loader, state, finding.files);
        const last = finding.files[finding.files.length - 1];
        const entry = last === undefined ? undefined : manifestEntry(state, last);
        if (last !== undefined && entry !== undefined) {
          applied = loaded.map((l) => l.index);
          next = {
            txid: last.maxTxid,
            pageSize: from.pageSize,
            commit: entry.commit,
            timestamp: new Date(entry.timestamp),
            commitFrom: `${fileKey(last)} (as the manifest describes it)`,
            map: from.map.apply(applied, entry.commit),
          };
        }
      } catch (err) {
        if (!isVanished(err)) throw err;
        // A file it names is gone already: the listing decides.
        this.manifestState = undefined;
        return this.pollOnce();
      }
    } else if (finding.kind === 'extend') {
      const last = present(finding.files.at(-1), 'last file of a non-empty poll finding');
      const loaded = await this.loader.loadAll(finding.files, new Set([last]));
      const header = present(loaded.at(-1)?.header, `header of ${fileKey(last)}, loaded with its index`);
      if (header.pageSize === from.pageSize) {
        applied = loaded.map((l) => l.index);
        next = {
          txid: last.maxTxid,
          pageSize: header.pageSize,
          commit: header.commit,
          timestamp: new Date(header.timestamp),
          commitFrom: fileKey(last),
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
      const chain = planRestore(finding.listing, {}, { url: this.client.url });
      next =
        state !== undefined
          ? await versionFromManifest(this.loader, state, chain)
          : await buildVersion(this.loader, chain, this.client.url);
      if (next.txid <= from.txid) next = undefined;
    }
    this.tipSeenAt = Date.now();
    if (next !== undefined && this.latestVersion === from && !this.closed) {
      // Connections pinned to the state left behind find its page map without a LIST.
      if (!this.history.has(from.txid)) this.remember(from.txid, Promise.resolve(from));
      this.latestVersion = next;
      this.hydrator?.noteAdvance(from, next, applied);
      this.emit('update', next.txid);
    }
    return this.latestVersion.txid;
  }

  private pin(version: Version): ReplicaView {
    return new View(this.reader, version, this.pins);
  }

  private assertOpen(): void {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `replica ${this.client.url} is closed`);
  }
}

/** buildVersion with the header facts and (small) indexes the manifest carries. */
async function versionFromManifest(
  loader: IndexLoader,
  state: ManifestState,
  chain: LtxFileInfo[],
): Promise<Version> {
  const last = chain[chain.length - 1];
  const entry = last === undefined ? undefined : manifestEntry(state, last);
  if (last === undefined || entry === undefined) {
    throw new LtxvfsError('REPLICA_CORRUPT', 'the manifest plan names a file it does not describe');
  }
  const loaded = await loadFromManifest(loader, state, chain);
  return {
    txid: last.maxTxid,
    pageSize: state.manifest.pageSize,
    commit: entry.commit,
    timestamp: new Date(entry.timestamp),
    commitFrom: `${fileKey(last)} (as the manifest describes it)`,
    map: PageMap.build(
      loaded.map((l) => l.index),
      entry.commit,
    ),
  };
}

/** Page maps of the planned files, applied in order; header of the last file gives size and time. */
async function buildVersion(loader: IndexLoader, chain: LtxFileInfo[], url: string): Promise<Version> {
  // Plans are never empty (planRestore throws REPLICA_EMPTY first).
  const last = present(chain.at(-1), `last file of the plan of ${url}`);
  const loaded = await loader.loadAll(chain, new Set([last]));
  const newest = present(loaded.at(-1), `index of ${fileKey(last)}`);
  const header = present(newest.header, `header of ${fileKey(last)}, loaded with its index`);
  for (const l of loaded) {
    if (l.header !== undefined && l.header.pageSize !== header.pageSize) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `objects of ${url} disagree on the page size: ${l.index.key} has ${l.header.pageSize}, ` +
          `${newest.index.key} has ${header.pageSize}`,
      );
    }
  }
  return {
    txid: last.maxTxid,
    pageSize: header.pageSize,
    commit: header.commit,
    timestamp: new Date(header.timestamp),
    commitFrom: fileKey(last),
    map: PageMap.build(
      loaded.map((l) => l.index),
      header.commit,
    ),
  };
}
