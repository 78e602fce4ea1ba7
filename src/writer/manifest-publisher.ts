import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  decodeHeader,
  decodeLtxFile,
  decodePageFrame,
  encodeHotPages,
  encodeManifest,
  HEADER_SIZE,
  HOT_PAGES_OBJECT,
  MANIFEST_INLINE_INDEX_MAX,
  MANIFEST_OBJECT,
  type Manifest,
  type ManifestFile,
  type ManifestHotPages,
  type PageIndexColumns,
  pageIndexTailLength,
  parsePageIndexColumns,
  TRAILER_SIZE,
} from '../ltx/index.js';
import type { LtxFileInfo, LtxFileRef, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';
import { type LocalBytes, observeWrites, type WriteObserver } from './observed-client.js';

export interface ManifestPublisherOptions {
  /** Readers treat a manifest older than this as abandoned (default 30 s). */
  staleAfterMs?: number;
  /** Rewrite at least this often while running (default staleAfterMs / 3). */
  refreshMs?: number;
  /**
   * The manifest is kept from the writer's own uploads, compactions and deletions; it lists the
   * replica at the first write and then at most this often to resync with anything done behind
   * its back (default 5 min).
   */
  resyncMs?: number;
  log?: (line: string) => void;
  /**
   * Whether this writer may change the replica now (default always). The replicator says no
   * while its lease has expired unrenewed: another writer may hold the replica by then, and a
   * manifest written now could replace its manifest with ours. Such a publish sends nothing (not
   * even a LIST); the next one after the lease is confirmed writes what the writer knows.
   */
  mayWrite?: () => boolean;
}

/** What the manifest says about one file, learned once per object from its header and tail. */
interface FileFacts {
  manifest: ManifestFile;
  pageSize: number;
  columns: PageIndexColumns;
}

/** A change the writer made while a LIST was in flight (applied on top of that listing). */
type Change = { kind: 'written'; file: LtxFileInfo } | { kind: 'deleting'; files: readonly LtxFileRef[] };

/** Bytes read per range GET when scanning a snapshot or compaction output for hot pages. */
const SCAN_CHUNK = 16 * 1024 * 1024;
const DEFAULT_STALE_AFTER_MS = 30_000;
const DEFAULT_RESYNC_MS = 5 * 60_000;

/**
 * Keeps `ltxvfs/manifest.json` (and `ltxvfs/hot.ltx`) current for readers. The files it names
 * are the writer's own knowledge: a LIST at the first publish (and every resyncMs, or after a
 * write that failed and may or may not have landed), then every file the writer uploads through
 * observe()'s client is added once its write succeeded, and every file it deletes is dropped
 * before the delete is sent, so the manifest only ever names files that exist. Facts of a file
 * the writer wrote come from its local bytes; of a listed one, from one header and one tail read
 * (cached by object). The hot pages are rebuilt from each new snapshot and refreshed from each
 * new compaction output, uploaded before the manifest that names them. Calls are serialized and
 * coalesced: a publish() while one runs is answered by one more run after it.
 */
export class ManifestPublisher implements WriteObserver {
  readonly writerId = randomBytes(8).toString('hex');
  private readonly staleAfterMs: number;
  private readonly refreshMs: number;
  private readonly resyncMs: number;
  private readonly log: (line: string) => void;
  private readonly mayWrite: () => boolean;
  private readonly facts = new Map<string, FileFacts>();
  /** The replica's files as the writer knows them; undefined = list before the next manifest. */
  private known: Map<string, LtxFileInfo> | undefined;
  private listedAt = 0;
  /** Changes made while a LIST is in flight; undefined when none is. */
  private duringList: Change[] | undefined;
  private generation = 0;
  /** ETag of the manifest we last wrote; undefined = not known yet (read before the first write). */
  private etag: string | null | undefined;
  private hotEtag: string | null | undefined;
  private hot: ManifestHotPages | null = null;
  /** The pages of `hot` (page number -> page), the base the next compaction output refreshes. */
  private hotPages: Map<number, Uint8Array> | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  /** Counts what the writer changed (writes, deletes, uncertain writes), and what a run saw. */
  private changes = 0;
  private changesSeen = -1;
  private timer: NodeJS.Timeout | undefined;
  private lastWrittenAt = 0;

  constructor(
    private readonly client: ReplicaClient,
    options: ManifestPublisherOptions = {},
  ) {
    this.staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    this.refreshMs = options.refreshMs ?? Math.max(1, Math.floor(this.staleAfterMs / 3));
    this.resyncMs = options.resyncMs ?? DEFAULT_RESYNC_MS;
    this.log = options.log ?? (() => {});
    this.mayWrite = options.mayWrite ?? (() => true);
  }

  /** `client` with the writer's uploads and deletions reported here (use it for every write). */
  observe(client: ReplicaClient): ReplicaClient {
    return observeWrites(client, this);
  }

  async written(file: LtxFileInfo, read: LocalBytes): Promise<void> {
    try {
      await this.factsOf(file, read);
    } catch {
      // Facts are read again from the store when the manifest names the file.
    }
    this.known?.set(keyOf(file), file);
    this.duringList?.push({ kind: 'written', file });
    this.changes++;
  }

  deleting(files: readonly LtxFileRef[]): void {
    this.forget(files);
    this.duringList?.push({ kind: 'deleting', files });
    this.changes++;
  }

  uncertain(): void {
    this.known = undefined;
    this.changes++;
  }

  /** Rewrites the manifest every refreshMs (unref'd) so readers can tell the writer is alive. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(
      () => {
        if (Date.now() - this.lastWrittenAt >= this.refreshMs) this.publish().catch(() => {});
      },
      Math.max(1, Math.floor(this.refreshMs / 2)),
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Writes a manifest of what the writer knows now; errors are logged and rethrown (readers fall
   * back to listing). A call while one runs is answered by that run, or by one more after it
   * when the writer changed something since that run looked.
   */
  publish(): Promise<void> {
    if (this.running !== undefined) {
      // The run in progress is enough unless the writer changed something after it looked.
      if (this.changes !== this.changesSeen) this.again = true;
      return this.running;
    }
    const run = (async () => {
      do {
        this.again = false;
        await this.publishOnce();
      } while (this.again);
    })();
    this.running = run.finally(() => {
      this.running = undefined;
    });
    this.running.catch((err: unknown) =>
      this.log(
        `manifest of ${this.client.url} not written: ${err instanceof Error ? err.message : String(err)}`,
      ),
    );
    return this.running;
  }

  private forget(files: readonly LtxFileRef[]): void {
    const gone = new Set(files.map((f) => `${f.level}/${f.minTxid}-${f.maxTxid}`));
    const named = (f: LtxFileRef): boolean => gone.has(`${f.level}/${f.minTxid}-${f.maxTxid}`);
    if (this.known !== undefined) for (const [k, f] of this.known) if (named(f)) this.known.delete(k);
    for (const [k, f] of this.facts) if (named(f.manifest)) this.facts.delete(k);
  }

  /** The files to name: the writer's own knowledge, or a fresh listing when it has none. */
  private async currentFiles(): Promise<LtxFileInfo[]> {
    if (this.known === undefined || Date.now() - this.listedAt >= this.resyncMs) {
      this.duringList = [];
      this.known = undefined;
      let listed: LtxFileInfo[] | undefined;
      try {
        this.listedAt = Date.now();
        listed = await this.client.listAll();
      } finally {
        const changes = this.duringList ?? [];
        this.duringList = undefined;
        if (listed !== undefined) {
          this.known = new Map(listed.map((f) => [keyOf(f), f]));
          for (const c of changes) {
            if (c.kind === 'written') this.known.set(keyOf(c.file), c.file);
            else this.forget(c.files);
          }
        }
      }
      const live = this.known;
      for (const k of this.facts.keys()) if (!live?.has(k)) this.facts.delete(k);
    }
    return [...(this.known?.values() ?? [])].sort(
      (a, b) => a.level - b.level || a.minTxid - b.minTxid || a.maxTxid - b.maxTxid,
    );
  }

  private async publishOnce(): Promise<void> {
    if (!this.mayWrite()) return;
    this.changesSeen = this.changes;
    const files = await this.currentFiles();
    if (files.length === 0) return;
    const facts: FileFacts[] = [];
    for (const file of files) {
      try {
        facts.push(await this.factsOf(file, (offset, length) => this.client.readRange(file, offset, length)));
      } catch (err) {
        // Deleted behind our back (another process's retention): leave it out and list next time.
        if (isLtxvfsError(err, 'STORAGE_NOT_FOUND')) {
          this.known = undefined;
          continue;
        }
        throw err;
      }
    }
    if (facts.length === 0) return;
    const txid = Math.max(...facts.map((f) => f.manifest.maxTxid));
    const pageSize = facts[facts.length - 1]?.pageSize ?? 4096;
    await this.refreshHotPages(facts);
    const manifest: Manifest = {
      format: 'ltxvfs-manifest',
      version: 1,
      writer: { id: this.writerId, host: hostname(), pid: process.pid },
      generation: ++this.generation,
      txid,
      pageSize,
      writtenAt: Date.now(),
      staleAfterMs: this.staleAfterMs,
      files: facts.map((f) => f.manifest),
      hot: this.hot !== null && this.hot.txid <= txid ? this.hot : null,
    };
    this.etag = await this.put(MANIFEST_OBJECT, encodeManifest(manifest), this.etag);
    this.lastWrittenAt = manifest.writtenAt;
  }

  /** Conditional replace: we hold the writer lease, so a refused condition means our ETag is old. */
  private async put(name: string, data: Uint8Array, known: string | null | undefined): Promise<string> {
    let etag = known;
    for (let attempt = 0; ; attempt++) {
      if (etag === undefined) etag = (await this.client.readObject(name))?.etag ?? null;
      try {
        const written = await this.client.writeObject(
          name,
          data,
          etag === null ? { ifNoneMatch: '*' } : { ifMatch: etag },
        );
        return written.etag;
      } catch (err) {
        if (attempt > 0 || !isLtxvfsError(err, 'STORAGE_CONDITION_FAILED')) throw err;
        etag = undefined;
      }
    }
  }

  /** Header and page-index facts of a file, read through `read` (the store, or the local copy). */
  private async factsOf(file: LtxFileInfo, read: LocalBytes): Promise<FileFacts> {
    const key = keyOf(file);
    const known = this.facts.get(key);
    if (known !== undefined) return known;
    const tailLength = pageIndexTailLength(file.size);
    const tailStart = file.size - tailLength;
    const [head, tail] = await Promise.all([
      tailStart === 0 ? undefined : read(0, HEADER_SIZE),
      read(tailStart, tailLength),
    ]);
    const header = decodeHeader(head ?? tail);
    let parsed = parsePageIndexColumns(tail, file.size);
    if (parsed.kind === 'need-more') {
      const more = await read(parsed.indexStart, file.size - parsed.indexStart);
      parsed = parsePageIndexColumns(more, file.size);
    }
    if (parsed.kind === 'need-more') {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `object ${key} of ${this.client.url}: page index does not fit`,
      );
    }
    const indexEnd = file.size - TRAILER_SIZE;
    const indexSize = indexEnd - parsed.indexStart;
    const manifest: ManifestFile = {
      level: file.level,
      minTxid: file.minTxid,
      maxTxid: file.maxTxid,
      size: file.size,
      timestamp: header.timestamp,
      commit: header.commit,
      indexOffset: parsed.indexStart,
      indexSize,
    };
    if (indexSize <= MANIFEST_INLINE_INDEX_MAX) {
      const from = parsed.indexStart - tailStart;
      const bytes = (tailStart <= parsed.indexStart ? tail : undefined)?.subarray(from, from + indexSize);
      if (bytes !== undefined && bytes.length === indexSize)
        manifest.index = Buffer.from(bytes).toString('base64');
    }
    const facts = { manifest, pageSize: header.pageSize, columns: parsed.columns };
    this.facts.set(key, facts);
    return facts;
  }

  /**
   * Hot pages at TXID h are the database state at h. They are rebuilt from the newest snapshot (a
   * file starting at TXID 1, so it holds every page) when it is newer than h, and refreshed from
   * the newest compaction output F (levels 1-8) covering TXIDs a..m with a <= h + 1 < m + 1: F
   * holds every page changed in a..m, so the state at m is the hot pages at h with F's pages laid
   * over them. Readers lay newer page-index changes over them, so hot pages older than the view
   * are never wrong, only less useful.
   */
  private async refreshHotPages(facts: readonly FileFacts[]): Promise<void> {
    await this.adoptEarlierHotPages(facts);
    const h = this.hot?.txid ?? 0;
    let snapshot: FileFacts | undefined;
    let compaction: FileFacts | undefined;
    for (const f of facts) {
      const m = f.manifest;
      if (m.maxTxid <= h || m.maxTxid < 2) continue;
      if (m.minTxid === 1) {
        if (snapshot === undefined || m.maxTxid > snapshot.manifest.maxTxid) snapshot = f;
      } else if (m.level >= 1 && m.level <= 8 && h > 0 && this.hotPages !== undefined && m.minTxid <= h + 1) {
        if (compaction === undefined || m.maxTxid > compaction.manifest.maxTxid) compaction = f;
      }
    }
    const base =
      snapshot !== undefined &&
      (compaction === undefined || snapshot.manifest.maxTxid >= compaction.manifest.maxTxid)
        ? snapshot
        : compaction;
    if (base === undefined) return;
    const started = Date.now();
    const pages = base === snapshot ? await this.snapshotPages(base) : await this.overlayPages(base);
    const m = base.manifest;
    const file = encodeHotPages({
      txid: m.maxTxid,
      commit: m.commit,
      pageSize: base.pageSize,
      timestamp: m.timestamp,
      pgnos: [...pages.keys()].sort((x, y) => x - y),
      read: (pgno) => {
        const page = pages.get(pgno);
        if (page === undefined) throw new LtxvfsError('WRITER_DB', `hot pages: page ${pgno} was not kept`);
        return page;
      },
    });
    this.hotEtag = await this.put(HOT_PAGES_OBJECT, file.bytes, this.hotEtag);
    this.hot = {
      object: HOT_PAGES_OBJECT,
      txid: m.maxTxid,
      size: file.bytes.length,
      pages: file.pgnos.length,
    };
    this.hotPages = pages;
    this.log(
      `hot pages of ${this.client.url}: ${file.pgnos.length} pages at TXID ${formatTxid(m.maxTxid)} from ${keyOf(m)} (${file.bytes.length} bytes, ${Date.now() - started} ms)`,
    );
  }

  /**
   * A hot-pages file an earlier run built (at the TXID of a snapshot or compaction output that is
   * still there) is the base as it is; read once, at the first publish.
   */
  private async adoptEarlierHotPages(facts: readonly FileFacts[]): Promise<void> {
    if (this.hotEtag !== undefined) return;
    const existing = await this.client.readObject(HOT_PAGES_OBJECT);
    this.hotEtag = existing?.etag ?? null;
    if (existing === null) return;
    let decoded: ReturnType<typeof decodeLtxFile>;
    try {
      decoded = decodeLtxFile(existing.data);
    } catch {
      return;
    }
    const txid = decoded.header.maxTxid;
    const source = facts.find((f) => f.manifest.level >= 1 && f.manifest.maxTxid === txid);
    if (source === undefined || decoded.header.pageSize !== source.pageSize) return;
    this.hot = { object: HOT_PAGES_OBJECT, txid, size: existing.data.length, pages: decoded.pages.length };
    this.hotPages = new Map(decoded.pages.map((p) => [p.pgno, p.data]));
  }

  /** The hot pages of a snapshot: its page 1 and interior pages, then the schema's leaves. */
  private async snapshotPages(snapshot: FileFacts): Promise<Map<number, Uint8Array>> {
    const kept = new Map<number, Uint8Array>();
    await this.scan(snapshot, (pgno, page) => {
      if (pgno === 1 || isInterior(pgno, page)) kept.set(pgno, page);
    });
    return this.withSchemaPages(kept, (pgno) => this.readPageOf(snapshot, pgno));
  }

  /**
   * The current hot pages with a compaction output's pages laid over them: every page F changed
   * takes F's version (kept when it is page 1, interior, or was hot before: a schema leaf),
   * every other page keeps its hot version; pages past F's commit are gone.
   */
  private async overlayPages(output: FileFacts): Promise<Map<number, Uint8Array>> {
    const before = this.hotPages ?? new Map<number, Uint8Array>();
    const commit = output.manifest.commit;
    const changed = new Set(output.columns.pgnos);
    const kept = new Map<number, Uint8Array>();
    for (const [pgno, page] of before) if (pgno <= commit && !changed.has(pgno)) kept.set(pgno, page);
    await this.scan(output, (pgno, page) => {
      if (pgno === 1 || isInterior(pgno, page) || before.has(pgno)) kept.set(pgno, page);
    });
    return this.withSchemaPages(kept, async (pgno) =>
      changed.has(pgno) ? this.readPageOf(output, pgno) : undefined,
    );
  }

  /** Decodes every page of a file, reading it in SCAN_CHUNK range GETs. */
  private async scan(file: FileFacts, visit: (pgno: number, page: Uint8Array) => void): Promise<void> {
    const { pgnos, offsets, sizes } = file.columns;
    const m = file.manifest;
    const ref = { level: m.level, minTxid: m.minTxid, maxTxid: m.maxTxid };
    for (let first = 0; first < pgnos.length; ) {
      const start = offsets[first] ?? 0;
      let last = first;
      while (
        last + 1 < pgnos.length &&
        (offsets[last + 1] ?? 0) + (sizes[last + 1] ?? 0) - start <= SCAN_CHUNK
      )
        last++;
      const length = (offsets[last] ?? 0) + (sizes[last] ?? 0) - start;
      const bytes = await this.client.readRange(ref, start, length);
      for (let i = first; i <= last; i++) {
        const pgno = pgnos[i] ?? 0;
        const from = (offsets[i] ?? 0) - start;
        visit(
          pgno,
          decodePageFrame(bytes.subarray(from, from + (sizes[i] ?? 0)), file.pageSize, pgno).slice(),
        );
      }
      first = last + 1;
    }
  }

  private async readPageOf(file: FileFacts, pgno: number): Promise<Uint8Array | undefined> {
    const { pgnos, offsets, sizes } = file.columns;
    const i = binarySearch(pgnos, pgno);
    if (i < 0) return undefined;
    const m = file.manifest;
    const start = offsets[i] ?? 0;
    const bytes = await this.client.readRange(
      { level: m.level, minTxid: m.minTxid, maxTxid: m.maxTxid },
      start,
      sizes[i] ?? 0,
    );
    return decodePageFrame(bytes, file.pageSize, pgno).slice();
  }

  /**
   * Completes `kept` (page 1 and interior pages, maybe more) to the hot set: page 1, every
   * interior page, and every page of the sqlite_schema b-tree (its leaves are found from its
   * interior pages and read with `fetch` when not kept); anything else is dropped.
   */
  private async withSchemaPages(
    kept: Map<number, Uint8Array>,
    fetch: (pgno: number) => Promise<Uint8Array | undefined>,
  ): Promise<Map<number, Uint8Array>> {
    const schema = new Set<number>();
    const stack = [1];
    while (stack.length > 0) {
      const pgno = stack.pop() ?? 1;
      if (schema.has(pgno)) continue;
      schema.add(pgno);
      let page = kept.get(pgno);
      if (page === undefined) {
        page = await fetch(pgno);
        if (page === undefined) continue;
        kept.set(pgno, page);
      }
      const at = pgno === 1 ? 100 : 0;
      if (page[at] !== 0x05) continue;
      const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
      stack.push(view.getUint32(at + 8));
      for (let c = 0; c < view.getUint16(at + 3); c++) {
        const cellAt = view.getUint16(at + 12 + 2 * c);
        if (cellAt + 4 <= page.length) stack.push(view.getUint32(cellAt));
      }
    }
    const out = new Map<number, Uint8Array>();
    for (const [pgno, page] of kept)
      if (pgno === 1 || schema.has(pgno) || isInterior(pgno, page)) out.set(pgno, page);
    return out;
  }
}

function isInterior(pgno: number, page: Uint8Array): boolean {
  const type = page[pgno === 1 ? 100 : 0];
  return type === 0x02 || type === 0x05;
}

function keyOf(f: { level: number; minTxid: number; maxTxid: number; size: number }): string {
  return `${f.level}/${formatTxid(f.minTxid)}-${formatTxid(f.maxTxid)}@${f.size}`;
}

function binarySearch(a: Uint32Array, v: number): number {
  let lo = 0;
  let hi = a.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const x = a[mid] ?? 0;
    if (x === v) return mid;
    if (x < v) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}
