import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import {
  decodeHeader,
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
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid } from '../util/txid.js';

export interface ManifestPublisherOptions {
  /** Readers treat a manifest older than this as abandoned (default 30 s). */
  staleAfterMs?: number;
  /** Rewrite at least this often while running (default staleAfterMs / 3). */
  refreshMs?: number;
  log?: (line: string) => void;
}

/** What the manifest says about one file, learned once per object from its header and tail. */
interface FileFacts {
  manifest: ManifestFile;
  pageSize: number;
  columns: PageIndexColumns;
}

/** Bytes read per range GET when scanning a snapshot for hot pages. */
const SCAN_CHUNK = 16 * 1024 * 1024;
const DEFAULT_STALE_AFTER_MS = 30_000;

/**
 * Keeps `ltxvfs/manifest.json` (and `ltxvfs/hot.ltx`) current for readers. publish() lists the
 * replica once, so the manifest only ever names files that exist; facts of new files come from one
 * header and one tail read each (cached by object); the hot pages are rebuilt from each new
 * snapshot (a file starting at TXID 1), uploaded before the manifest that names them. Calls are
 * serialized and coalesced: a publish() while one runs is answered by one more run after it.
 */
export class ManifestPublisher {
  readonly writerId = randomBytes(8).toString('hex');
  private readonly staleAfterMs: number;
  private readonly refreshMs: number;
  private readonly log: (line: string) => void;
  private readonly facts = new Map<string, FileFacts>();
  private generation = 0;
  /** ETag of the manifest we last wrote; undefined = not known yet (read before the first write). */
  private etag: string | null | undefined;
  private hotEtag: string | null | undefined;
  private hot: ManifestHotPages | null = null;
  private running: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;
  private lastWrittenAt = 0;

  constructor(
    private readonly client: ReplicaClient,
    options: ManifestPublisherOptions = {},
  ) {
    this.staleAfterMs = options.staleAfterMs ?? DEFAULT_STALE_AFTER_MS;
    this.refreshMs = options.refreshMs ?? Math.max(1, Math.floor(this.staleAfterMs / 3));
    this.log = options.log ?? (() => {});
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

  /** Publishes the current listing; errors are logged and rethrown (readers fall back to listing). */
  publish(): Promise<void> {
    if (this.running !== undefined) {
      this.again = true;
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

  private async publishOnce(): Promise<void> {
    const listed = await this.client.listAll();
    if (listed.length === 0) return;
    const facts: FileFacts[] = [];
    for (const file of listed) {
      try {
        facts.push(await this.factsOf(file));
      } catch (err) {
        // Deleted between the listing and the read (retention): leave it out of this manifest.
        if (isLtxvfsError(err, 'STORAGE_NOT_FOUND')) continue;
        throw err;
      }
    }
    const live = new Set(listed.map(keyOf));
    for (const k of this.facts.keys()) if (!live.has(k)) this.facts.delete(k);
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

  private async factsOf(file: LtxFileInfo): Promise<FileFacts> {
    const key = keyOf(file);
    const known = this.facts.get(key);
    if (known !== undefined) return known;
    const tailLength = pageIndexTailLength(file.size);
    const tailStart = file.size - tailLength;
    const [head, tail] = await Promise.all([
      tailStart === 0 ? undefined : this.client.readRange(file, 0, HEADER_SIZE),
      this.client.readRange(file, tailStart, tailLength),
    ]);
    const header = decodeHeader(head ?? tail);
    let parsed = parsePageIndexColumns(tail, file.size);
    if (parsed.kind === 'need-more') {
      const more = await this.client.readRange(file, parsed.indexStart, file.size - parsed.indexStart);
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
   * Hot pages come from the newest snapshot (a file starting at TXID 1, so it holds every page):
   * rebuilt when a newer one appears, kept otherwise. Readers lay newer page-index changes over
   * them, so an older hot-pages file is never wrong, only less useful.
   */
  private async refreshHotPages(facts: readonly FileFacts[]): Promise<void> {
    let newest: FileFacts | undefined;
    for (const f of facts) {
      const m = f.manifest;
      if (m.minTxid !== 1 || m.maxTxid < 2) continue;
      if (newest === undefined || m.maxTxid > newest.manifest.maxTxid) newest = f;
    }
    if (newest === undefined || (this.hot !== null && this.hot.txid >= newest.manifest.maxTxid)) return;
    if (this.hot === null && this.hotEtag === undefined) {
      // A hot-pages file an earlier run built from the same snapshot is reused as it is.
      const existing = await this.client.readObject(HOT_PAGES_OBJECT);
      this.hotEtag = existing?.etag ?? null;
      const txid = existing === null ? undefined : headerTxid(existing.data);
      if (existing !== null && txid === newest.manifest.maxTxid) {
        this.hot = { object: HOT_PAGES_OBJECT, txid, size: existing.data.length, pages: 0 };
        return;
      }
    }
    const started = Date.now();
    const pages = await this.snapshotPages(newest);
    const m = newest.manifest;
    const file = encodeHotPages({
      txid: m.maxTxid,
      commit: m.commit,
      pageSize: newest.pageSize,
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
    this.log(
      `hot pages of ${this.client.url}: ${file.pgnos.length} pages at TXID ${formatTxid(m.maxTxid)} (${file.bytes.length} bytes, ${Date.now() - started} ms)`,
    );
  }

  /**
   * The pages of a snapshot that can be hot: page 1, every interior page, and every table-leaf
   * page the schema b-tree reaches (kept only while the scan needs them: the schema's leaves are
   * found from its interior pages, which are few).
   */
  private async snapshotPages(snapshot: FileFacts): Promise<Map<number, Uint8Array>> {
    const { pgnos, offsets, sizes } = snapshot.columns;
    const file = snapshot.manifest;
    const kept = new Map<number, Uint8Array>();
    const ref = { level: file.level, minTxid: file.minTxid, maxTxid: file.maxTxid };
    const decodeAt = (bytes: Uint8Array, start: number, i: number): Uint8Array => {
      const from = (offsets[i] ?? 0) - start;
      return decodePageFrame(
        bytes.subarray(from, from + (sizes[i] ?? 0)),
        snapshot.pageSize,
        pgnos[i],
      ).slice();
    };
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
        const page = decodeAt(bytes, start, i);
        const type = page[pgno === 1 ? 100 : 0];
        if (pgno === 1 || type === 0x02 || type === 0x05) kept.set(pgno, page);
      }
      first = last + 1;
    }
    // Schema leaves: children of the schema's interior pages (all kept above), read one by one.
    const want = new Set<number>();
    const stack = [1];
    const seen = new Set<number>();
    while (stack.length > 0) {
      const pgno = stack.pop() ?? 1;
      if (seen.has(pgno)) continue;
      seen.add(pgno);
      const page = kept.get(pgno);
      if (page === undefined) {
        want.add(pgno);
        continue;
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
    await Promise.all(
      [...want].map(async (pgno) => {
        const i = binarySearch(pgnos, pgno);
        if (i < 0) return;
        const start = offsets[i] ?? 0;
        const bytes = await this.client.readRange(ref, start, sizes[i] ?? 0);
        kept.set(pgno, decodeAt(bytes, start, i));
      }),
    );
    return kept;
  }
}

function headerTxid(bytes: Uint8Array): number | undefined {
  try {
    return decodeHeader(bytes).maxTxid;
  } catch {
    return undefined;
  }
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
