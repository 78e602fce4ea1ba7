import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { HEADER_SIZE, LtxFileChecksum, lockPgno } from '../ltx/index.js';
import { listAllLevels } from '../storage/listing.js';
import type { ReplicaClient } from '../storage/types.js';
import { fsyncDir } from '../util/atomic-file.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { present } from '../util/invariant.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { extendChain } from './extend.js';
import type { IndexLoader } from './index-loader.js';
import type { PageFetcher } from './page-fetcher.js';
import {
  entryEnd,
  entryOffset,
  entryPgno,
  type FileIndex,
  findEntry,
  type PageLocation,
} from './page-map.js';
import type { HydrationStatus } from './port.js';
import type { Version } from './version.js';

/** What the hydrator needs from its replica. */
export interface HydratorHost {
  readonly client: ReplicaClient;
  readonly fetcher: PageFetcher;
  readonly loader: IndexLoader;
  latest(): Version;
  /** The oldest TXID an open view pins, if any. */
  oldestPinnedTxid(): Txid | undefined;
  /** Re-plans a version whose objects vanished (same TXID, same bytes, other objects). */
  replan(version: Version): Promise<void>;
  report(status: HydrationStatus): void;
  log(line: string): void;
}

interface Sidecar {
  format: 'ltxvfs-hydration-1';
  url: string;
  txid: Txid;
  pageSize: number;
  commit: number;
  /** false while the first full image is still being written to `<path>.tmp`. */
  final: boolean;
  /** Bitmap, bit (pgno & 7) of byte (pgno >> 3): the page holds its bytes at `txid`. */
  valid: string;
  /** Objects streamed part way: where their checksum stopped, and the pages already written from them. */
  streams?: SavedStream[];
}

interface SavedStream {
  key: string;
  size: number;
  received: number;
  /** CRC-64 of the first `received` bytes, 16 hex digits. */
  crc: string;
  /** Page number ranges [first, last] written from the object, not yet valid. */
  pending: Array<[number, number]>;
}

/**
 * An object being streamed: every byte goes through its file checksum, and the pages written
 * from it become valid only once the checksum matched at its end.
 */
interface ObjectStream {
  index: FileIndex;
  checksum: LtxFileChecksum;
  /** Next byte to fetch: always at a frame boundary (or the object's end). */
  offset: number;
  pending: Set<number>;
}

/** The JSON file beside a hydrated file that says which pages it holds, at which TXID. */
export function hydrationSidecarPath(filePath: string): string {
  return `${filePath}.ltxvfs-hydration.json`;
}

/** Bytes fetched between two checkpoints (sync + sidecar) and advance checks. */
const ROUND_BYTES = 32 * 1024 * 1024;
/** Parallel range GETs while downloading. */
const CONCURRENCY = 4;

/**
 * Downloads the whole database into a local file in the background and serves pages from it
 * once they are there. The file holds the database at one TXID (`target`) plus a bitmap of valid
 * pages in a sidecar; a page is served to a view when it is valid and the view's page map points
 * at the same frame as the target's (so identical bytes, whatever TXID the view pins). Moving the
 * file to a newer TXID waits until no open view pins an older one, so a running read
 * transaction never sees bytes change under it. A restart resumes from the sidecar and fetches
 * only pages changed since.
 */
export class Hydrator {
  private fh: fsp.FileHandle | undefined;
  private target: Version | undefined;
  private valid = new Uint8Array(0);
  private final = false;
  private closed = false;
  private wakeup: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  /** Pages changed since `target`, accumulated from the poller, while the chain of notes is unbroken. */
  private noteTip: Version | undefined;
  private changed: Set<number> | 'compare' = new Set();
  /** Objects streamed part way, by `${key}@${size}`. */
  private streams = new Map<string, ObjectStream>();
  /** Streams read from the sidecar, matched to objects of the target when a round picks them. */
  private savedStreams = new Map<string, SavedStream>();
  private readonly state: HydrationStatus = {
    state: 'running',
    txid: 0,
    pagesDone: 0,
    pagesTotal: 0,
    bytesDownloaded: 0,
  };

  constructor(
    private readonly host: HydratorHost,
    private readonly filePath: string,
  ) {}

  private get sidecarPath(): string {
    return hydrationSidecarPath(this.filePath);
  }

  private get tempPath(): string {
    return `${this.filePath}.tmp`;
  }

  start(): void {
    this.loopDone = this.loop();
  }

  status(): HydrationStatus {
    return { ...this.state };
  }

  /** The page, if the local file can answer for this view without I/O to the store. */
  readSync(version: Version, loc: PageLocation, pgno: number): Uint8Array | undefined {
    const fd = this.fdFor(version, loc, pgno);
    if (fd === undefined) return undefined;
    const page = new Uint8Array(version.pageSize);
    const n = fs.readSync(fd, page, 0, page.length, (pgno - 1) * version.pageSize);
    return n === page.length ? page : undefined;
  }

  /** Part of the page read with one pread straight into `dst` (no page allocated); see readSync. */
  readIntoSync(
    version: Version,
    loc: PageLocation,
    pgno: number,
    within: number,
    length: number,
    dst: Uint8Array,
    at: number,
  ): boolean {
    const fd = this.fdFor(version, loc, pgno);
    if (fd === undefined) return false;
    return fs.readSync(fd, dst, at, length, (pgno - 1) * version.pageSize + within) === length;
  }

  /** The file's descriptor when its copy of `pgno` is the page `version` reads at `loc`. */
  private fdFor(version: Version, loc: PageLocation, pgno: number): number | undefined {
    const target = this.target;
    if (this.fh === undefined || target === undefined || !this.isValid(pgno)) return undefined;
    if (version.pageSize !== target.pageSize || pgno > target.commit) return undefined;
    if (version.txid !== target.txid) {
      const here = target.map.lookup(pgno);
      if (here === undefined || here.index.key !== loc.index.key || here.entry !== loc.entry)
        return undefined;
    }
    return this.fh.fd;
  }

  /** The poller moved from `from` to `to` by applying `files` ('replanned': by a fresh plan). */
  noteAdvance(from: Version, to: Version, files: readonly FileIndex[] | 'replanned'): void {
    if (this.changed !== 'compare' && this.noteTip === from && files !== 'replanned') {
      for (const f of files) for (const p of f.pgnos) this.changed.add(p);
      for (let p = from.commit + 1; p <= to.commit; p++) this.changed.add(p);
    } else {
      this.changed = 'compare';
    }
    this.noteTip = to;
    this.wake();
  }

  /**
   * A view was released. That can unblock an advance only while the latest state is past the
   * file's target; otherwise the loop is not woken (a query releases a view every time, and a
   * wake-up costs the loop a turn for nothing).
   */
  released(): void {
    if (this.target !== undefined && this.target.txid === this.host.latest().txid) return;
    this.wake();
  }

  /** Something that may unblock an advance happened. */
  wake(): void {
    const w = this.wakeup;
    this.wakeup = undefined;
    w?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.wake();
    await this.loopDone;
    if (this.fh !== undefined) {
      await this.checkpoint().catch(() => {});
      await this.fh.close();
      this.fh = undefined;
    }
  }

  private async loop(): Promise<void> {
    try {
      await this.init();
      let retriedReplan = false;
      while (!this.closed) {
        await this.maybeAdvance();
        const files = this.planRound();
        if (files.length === 0) {
          if (!this.final) await this.finalize();
          this.setState('done');
          // Every release of a view wakes the loop; only a new target can make pages missing,
          // so the file is not scanned again (O(pages)) until one comes.
          const complete = this.target;
          do {
            await new Promise<void>((resolve) => {
              this.wakeup = resolve;
              if (this.closed) resolve();
            });
            if (!this.closed) await this.maybeAdvance();
          } while (!this.closed && this.target === complete);
          continue;
        }
        this.setState('running');
        try {
          await this.execute(files);
          retriedReplan = false;
        } catch (err) {
          if (!isLtxvfsError(err, 'STORAGE_NOT_FOUND') || retriedReplan || this.target === undefined)
            throw err;
          retriedReplan = true;
          await this.host.replan(this.target);
        }
        await this.checkpoint();
      }
    } catch (err) {
      if (this.closed) return;
      await this.abandon();
      this.state.state = 'error';
      this.state.error = err instanceof Error ? err.message : String(err);
      this.state.errorCode = isLtxvfsError(err) ? err.code : 'HYDRATION_FAILED';
      this.host.log(`hydration of ${this.filePath} failed (${this.state.errorCode}): ${this.state.error}`);
      this.host.report(this.status());
    }
  }

  /**
   * After a failure: stop serving pages from the file (the replica answers from the store), and
   * leave nothing half-written. A first download that never completed is removed with its sidecar;
   * a complete file stays with the last sidecar that vouches for it (pages being replaced were
   * already cleared in it), so a restart resumes.
   */
  private async abandon(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    await fh?.close().catch(() => {});
    await fsp.rm(`${this.sidecarPath}.tmp`, { force: true }).catch(() => {});
    if (!this.final) {
      await fsp.rm(this.tempPath, { force: true }).catch(() => {});
      await fsp.rm(this.sidecarPath, { force: true }).catch(() => {});
    }
  }

  private get dataPath(): string {
    return this.final ? this.filePath : this.tempPath;
  }

  private async init(): Promise<void> {
    const latest = this.host.latest();
    const sidecar = await this.readSidecar();
    const dataPath = sidecar?.final ? this.filePath : this.tempPath;
    if (sidecar !== undefined && sidecar.pageSize === latest.pageSize && sidecar.txid <= latest.txid) {
      const fh = await fsp.open(dataPath, 'r+').catch(() => undefined);
      if (fh !== undefined) {
        const changed = await this.changedSince(sidecar, latest);
        if (changed !== undefined) {
          this.fh = fh;
          this.final = sidecar.final;
          this.valid = Buffer.from(sidecar.valid, 'base64');
          for (const p of changed) this.clearBit(p);
          for (const saved of sidecar.streams ?? [])
            this.savedStreams.set(`${saved.key}@${saved.size}`, saved);
          await this.retarget(latest, sidecar.commit);
          this.host.log(
            `hydration of ${this.filePath} resumes at TXID ${formatTxid(sidecar.txid)}: ` +
              `${this.state.pagesTotal - this.state.pagesDone} of ${this.state.pagesTotal} pages to fetch`,
          );
          return;
        }
        await fh.close();
      }
    }
    await fsp.rm(this.tempPath, { force: true });
    this.fh = await fsp.open(this.tempPath, 'w+');
    this.final = false;
    this.valid = new Uint8Array(0);
    await this.retarget(latest, 0);
  }

  /** Pages that changed between the sidecar's TXID and `latest`, or undefined if unknowable. */
  private async changedSince(sidecar: Sidecar, latest: Version): Promise<number[] | undefined> {
    if (sidecar.url !== this.host.client.url) return undefined;
    if (sidecar.txid === latest.txid) return [];
    const listing = await listAllLevels(this.host.client);
    const chain = extendChain(listing, sidecar.txid, (f) => f.maxTxid <= latest.txid);
    if (chain.at(-1)?.maxTxid !== latest.txid) return undefined;
    const loaded = await this.host.loader.loadAll(chain, new Set());
    const changed: number[] = [];
    for (const { index } of loaded) for (const p of index.pgnos) changed.push(p);
    for (let p = sidecar.commit + 1; p <= latest.commit; p++) changed.push(p);
    return changed;
  }

  /** Moves the file to `version`: size, bitmap bounds, counters, sidecar. Changed pages must already be cleared. */
  private async retarget(version: Version, previousCommit: number): Promise<void> {
    const fh = present(this.fh, 'open hydration file');
    const bytes = (version.commit + 8) >> 3;
    if (this.valid.length !== bytes) {
      const next = new Uint8Array(bytes);
      next.set(this.valid.subarray(0, Math.min(bytes, this.valid.length)));
      this.valid = next;
    }
    for (let p = version.commit + 1; p < bytes * 8; p++) this.clearBit(p);
    for (let p = previousCommit + 1; p <= version.commit; p++) this.clearBit(p);
    this.target = version;
    this.noteTip = version;
    this.changed = new Set();
    await fh.truncate(version.commit * version.pageSize);
    const lock = lockPgno(version.pageSize);
    let done = 0;
    for (let p = 1; p <= version.commit; p++) if (p !== lock && this.isValid(p)) done++;
    this.state.txid = version.txid;
    this.state.pagesTotal = version.commit - (lock <= version.commit ? 1 : 0);
    this.state.pagesDone = done;
    if (this.state.state === 'done' && done < this.state.pagesTotal) this.state.state = 'running';
    await this.writeSidecar();
  }

  private async maybeAdvance(): Promise<void> {
    const target = present(this.target, 'hydration target');
    const latest = this.host.latest();
    if (latest.txid === target.txid) return;
    const oldest = this.host.oldestPinnedTxid();
    if (oldest !== undefined && oldest < latest.txid) return;
    if (latest.pageSize !== target.pageSize) {
      this.valid = new Uint8Array(0);
    } else if (this.changed !== 'compare' && this.noteTip === latest) {
      for (const p of this.changed) this.clearBit(p);
    } else {
      for (let p = 1; p <= latest.commit; p++) {
        const a = target.map.lookup(p);
        const b = latest.map.lookup(p);
        if (a === undefined || b === undefined || a.index.key !== b.index.key || a.entry !== b.entry)
          this.clearBit(p);
      }
    }
    await this.retarget(latest, latest.pageSize === target.pageSize ? target.commit : 0);
    this.host.report(this.status());
  }

  /**
   * The objects holding pages still missing from the file, in page order, until ROUND_BYTES of
   * them are left to stream. Each is streamed whole (from where a previous round stopped).
   */
  private planRound(): FileIndex[] {
    const target = present(this.target, 'hydration target');
    const lock = lockPgno(target.pageSize);
    const picked = new Map<string, FileIndex>();
    let bytes = 0;
    for (let p = 1; p <= target.commit && bytes < ROUND_BYTES; p++) {
      if (p === lock || this.isValid(p)) continue;
      const loc = target.map.lookup(p);
      if (loc === undefined) {
        throw new LtxvfsError(
          'REPLICA_CORRUPT',
          `page ${p} of ${this.host.client.url} at TXID ${formatTxid(target.txid)} is in none of the planned objects`,
        );
      }
      const key = streamKey(loc.index);
      if (picked.has(key)) continue;
      picked.set(key, loc.index);
      bytes += loc.index.file.size - (this.streams.get(key)?.offset ?? 0);
    }
    return [...picked.values()];
  }

  private async execute(files: FileIndex[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.closed) {
        const file = files[next++];
        if (file === undefined) return;
        await this.streamObject(file);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, files.length) }, worker));
  }

  private openStream(index: FileIndex): ObjectStream {
    const key = streamKey(index);
    const open = this.streams.get(key);
    if (open !== undefined && open.index.key === index.key) return open;
    const saved = this.savedStreams.get(key);
    this.savedStreams.delete(key);
    let stream: ObjectStream = {
      index,
      checksum: new LtxFileChecksum(index.file.size),
      offset: 0,
      pending: new Set(),
    };
    if (saved !== undefined) {
      try {
        const crc = BigInt(`0x${saved.crc}`);
        const pending = new Set<number>();
        for (const [a, b] of saved.pending) for (let p = a; p <= b; p++) pending.add(p);
        stream = {
          index,
          checksum: new LtxFileChecksum(index.file.size, { received: saved.received, crc }),
          offset: saved.received,
          pending,
        };
      } catch {
        // A sidecar entry that does not fit the object: stream it from the start.
      }
    }
    this.streams.set(key, stream);
    return stream;
  }

  /**
   * Streams one object from where it stopped, at most ROUND_BYTES this round: every byte through
   * its file checksum, the frames the target still needs decoded and written. At the object's end
   * a matching checksum makes the written pages valid; a mismatch is REPLICA_CORRUPT naming it,
   * and none of its pages is ever served from the file.
   */
  private async streamObject(index: FileIndex): Promise<void> {
    const target = present(this.target, 'hydration target');
    const stream = this.openStream(index);
    const size = index.file.size;
    const chunk = Math.max(this.host.fetcher.maxRunBytes(), 64 * 1024);
    const lock = lockPgno(target.pageSize);
    // Frames by offset, so a chunk can end at a frame boundary.
    const order = Array.from(index.pgnos.keys()).sort(
      (a, b) => entryOffset(index, a) - entryOffset(index, b),
    );
    const orderAt = (i: number): number => present(order[i], `frame ${i} of ${index.key}`);
    let at = 0;
    while (at < order.length && entryOffset(index, orderAt(at)) < stream.offset) at++;
    let budget = ROUND_BYTES;
    while (stream.offset < size && budget > 0 && !this.closed && this.target === target) {
      const start = stream.offset;
      let end = at < order.length ? entryEnd(index, orderAt(at)) : size;
      let last = at;
      while (last + 1 < order.length && entryEnd(index, orderAt(last + 1)) - start <= chunk) {
        last++;
        end = entryEnd(index, orderAt(last));
      }
      if (last + 1 >= order.length) {
        // The rest after the last frame (terminator, index, trailer) is small: take it along.
        if (size - start <= chunk || at >= order.length) end = size;
      }
      const bytes = await this.host.client.readRange(index.file, start, end - start);
      this.state.bytesDownloaded += bytes.byteLength;
      if (bytes.byteLength < end - start) {
        throw new LtxvfsError(
          'REPLICA_CORRUPT',
          `object ${index.key} of ${this.host.client.url} is truncated: the listing says ${size} bytes, a read ended at ${start + bytes.byteLength}`,
        );
      }
      budget -= bytes.byteLength;
      // Every frame is decoded: the file checksum covers decoded pages, not compressed bytes.
      const pages: Array<{ pgno: number; page: Uint8Array }> = [];
      let hashed = start;
      for (; at < order.length && entryEnd(index, orderAt(at)) <= end; at++) {
        const e = orderAt(at);
        const from = entryOffset(index, e);
        if (from !== hashed && hashed === 0 && from === HEADER_SIZE) {
          stream.checksum.update(bytes.subarray(0, HEADER_SIZE));
          hashed = HEADER_SIZE;
        }
        if (from !== hashed)
          throw this.corruptObject(index, `its page index leaves a gap or overlap at byte ${hashed}`);
        const page = await this.host.fetcher.decodeFrame(index, e, bytes, start, target.pageSize);
        stream.checksum.updateFrame(bytes.subarray(from - start, entryEnd(index, e) - start), page);
        hashed = entryEnd(index, e);
        const pgno = entryPgno(index, e);
        if (pgno === lock || pgno > target.commit || this.isValid(pgno)) continue;
        const loc = target.map.lookup(pgno);
        if (loc === undefined || loc.index.key !== index.key || loc.entry !== e) continue;
        pages.push({ pgno, page });
      }
      if (hashed < end) stream.checksum.update(bytes.subarray(hashed - start));
      stream.offset = end;
      await this.writePages(pages, target);
      for (const { pgno } of pages) stream.pending.add(pgno);
    }
    if (stream.offset < size) return;
    this.streams.delete(streamKey(index));
    try {
      stream.checksum.verify();
    } catch (err) {
      throw this.corruptObject(index, err instanceof Error ? err.message : String(err), err);
    }
    if (this.target !== target) return;
    for (const pgno of stream.pending) {
      const loc = target.map.lookup(pgno);
      if (loc === undefined || loc.index.key !== index.key || entryPgno(index, loc.entry) !== pgno) continue;
      if (findEntry(index, pgno) !== loc.entry || this.isValid(pgno)) continue;
      this.setBit(pgno);
      this.state.pagesDone++;
    }
    this.host.report(this.status());
  }

  private corruptObject(index: FileIndex, why: string, cause?: unknown): LtxvfsError {
    return new LtxvfsError(
      'REPLICA_CORRUPT',
      `object ${index.key} of ${this.host.client.url} is corrupt: ${why}`,
      {
        cause,
      },
    );
  }

  /** Consecutive page numbers go to disk in one write. */
  private async writePages(pages: Array<{ pgno: number; page: Uint8Array }>, target: Version): Promise<void> {
    const fh = this.fh;
    if (fh === undefined || pages.length === 0) return;
    pages.sort((a, b) => a.pgno - b.pgno);
    let group: Array<{ pgno: number; page: Uint8Array }> = [];
    const flush = async (): Promise<void> => {
      const [first] = group;
      if (first === undefined) return;
      const buf = group.length === 1 ? first.page : Buffer.concat(group.map((p) => p.page));
      await writeAll(fh, buf, (first.pgno - 1) * target.pageSize, this.dataPath);
      group = [];
    };
    for (const p of pages) {
      const prev = group[group.length - 1];
      if (prev !== undefined && prev.pgno + 1 !== p.pgno) await flush();
      group.push(p);
    }
    await flush();
  }

  private async finalize(): Promise<void> {
    const fh = present(this.fh, 'open hydration file');
    await fh.sync();
    await fsp.rename(this.tempPath, this.filePath);
    await fsyncDir(path.dirname(this.filePath));
    this.final = true;
    await this.writeSidecar();
    this.host.log(`hydrated ${this.filePath} at TXID ${formatTxid(this.state.txid)}`);
  }

  /** Page bytes first, then the sidecar that vouches for them. */
  private async checkpoint(): Promise<void> {
    await this.fh?.datasync();
    await this.writeSidecar();
  }

  private async readSidecar(): Promise<Sidecar | undefined> {
    try {
      const parsed = JSON.parse(await fsp.readFile(this.sidecarPath, 'utf8')) as Partial<Sidecar>;
      if (
        parsed.format !== 'ltxvfs-hydration-1' ||
        typeof parsed.url !== 'string' ||
        !Number.isSafeInteger(parsed.txid) ||
        !Number.isSafeInteger(parsed.pageSize) ||
        !Number.isSafeInteger(parsed.commit) ||
        typeof parsed.final !== 'boolean' ||
        typeof parsed.valid !== 'string'
      ) {
        return undefined;
      }
      return parsed as Sidecar;
    } catch {
      return undefined;
    }
  }

  private async writeSidecar(): Promise<void> {
    const target = present(this.target, 'hydration target');
    const sidecar: Sidecar = {
      format: 'ltxvfs-hydration-1',
      url: this.host.client.url,
      txid: target.txid,
      pageSize: target.pageSize,
      commit: target.commit,
      final: this.final,
      valid: Buffer.from(this.valid.buffer, this.valid.byteOffset, this.valid.byteLength).toString('base64'),
      streams: this.savedStreamList(),
    };
    const tmp = `${this.sidecarPath}.tmp`;
    try {
      const fh = await fsp.open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify(sidecar));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(tmp, this.sidecarPath);
      // The rename is durable only once the directory is.
      await fsyncDir(path.dirname(this.sidecarPath));
    } catch (err) {
      throw ioFailure(`writing ${tmp}`, err);
    }
  }

  private savedStreamList(): SavedStream[] {
    // Saved streams not resumed yet survive a checkpoint while their object is still planned.
    const planned = new Set(this.target?.map.files().map(streamKey));
    const out: SavedStream[] = [...this.savedStreams.entries()]
      .filter(([k]) => planned.has(k))
      .map(([, v]) => v);
    for (const [key, stream] of this.streams) {
      const progress = stream.checksum.progress();
      if (progress === undefined || progress.received !== stream.offset) continue;
      const pending: Array<[number, number]> = [];
      for (const p of [...stream.pending].sort((a, b) => a - b)) {
        const last = pending[pending.length - 1];
        if (last !== undefined && last[1] + 1 === p) last[1] = p;
        else pending.push([p, p]);
      }
      out.push({
        key: key.slice(0, key.lastIndexOf('@')),
        size: stream.index.file.size,
        received: progress.received,
        crc: progress.crc.toString(16).padStart(16, '0'),
        pending,
      });
    }
    return out;
  }

  private setState(state: HydrationStatus['state']): void {
    if (this.state.state === state) return;
    this.state.state = state;
    this.host.report(this.status());
  }

  private isValid(p: number): boolean {
    const byte = p >> 3;
    return ((this.valid[byte] ?? 0) & (1 << (p & 7))) !== 0;
  }

  private setBit(p: number): void {
    const byte = p >> 3;
    const bits = this.valid[byte];
    if (bits !== undefined) this.valid[byte] = bits | (1 << (p & 7));
  }

  private clearBit(p: number): void {
    const byte = p >> 3;
    const bits = this.valid[byte];
    if (bits !== undefined) this.valid[byte] = bits & ~(1 << (p & 7));
  }
}

function streamKey(index: FileIndex): string {
  return `${index.key}@${index.file.size}`;
}

/** Writes all of `data` at `position`, however short each write is; a failure names the file. */
async function writeAll(fh: fsp.FileHandle, data: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  try {
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, position + done);
      if (bytesWritten === 0) throw new Error('the write made no progress');
      done += bytesWritten;
    }
  } catch (err) {
    throw ioFailure(`writing ${file}`, err);
  }
}

function ioFailure(what: string, err: unknown): LtxvfsError {
  const message = err instanceof Error ? err.message : String(err);
  return new LtxvfsError('HYDRATION_FAILED', `${what}: ${message}`, { cause: err });
}
