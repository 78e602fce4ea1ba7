import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { lockPgno } from '../ltx/index.js';
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
  entrySize,
  type FileIndex,
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
}

/** The JSON file beside a hydrated file that says which pages it holds, at which TXID. */
export function hydrationSidecarPath(filePath: string): string {
  return `${filePath}.ltxvfs-hydration.json`;
}

/** Bytes fetched between two checkpoints (sync + sidecar) and advance checks. */
const ROUND_BYTES = 32 * 1024 * 1024;
/** Parallel range GETs while downloading. */
const CONCURRENCY = 4;
/** Unwanted frames a range may include to avoid starting a new request. */
const GAP_FRAMES = 8;

interface Run {
  index: FileIndex;
  first: number;
  last: number;
  wanted: number[];
}

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
  private cursor = 1;
  private closed = false;
  private wakeup: (() => void) | undefined;
  private loopDone: Promise<void> | undefined;
  /** Pages changed since `target`, accumulated from the poller, while the chain of notes is unbroken. */
  private noteTip: Version | undefined;
  private changed: Set<number> | 'compare' = new Set();
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
    const target = this.target;
    if (this.fh === undefined || target === undefined || !this.isValid(pgno)) return undefined;
    if (version.pageSize !== target.pageSize || pgno > target.commit) return undefined;
    if (version.txid !== target.txid) {
      const here = target.map.lookup(pgno);
      if (here === undefined || here.index.key !== loc.index.key || here.entry !== loc.entry)
        return undefined;
    }
    const page = new Uint8Array(target.pageSize);
    const n = fs.readSync(this.fh.fd, page, 0, page.length, (pgno - 1) * target.pageSize);
    return n === page.length ? page : undefined;
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

  /** Something that may unblock an advance happened (a view was released). */
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
        const { runs, scanEnd } = this.planRound();
        if (runs.length === 0) {
          this.cursor = scanEnd;
          if (!this.final) await this.finalize();
          this.setState('done');
          await new Promise<void>((resolve) => {
            this.wakeup = resolve;
            if (this.closed) resolve();
          });
          continue;
        }
        this.setState('running');
        try {
          await this.execute(runs);
          this.cursor = scanEnd;
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
    this.cursor = 1;
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

  private planRound(): { runs: Run[]; scanEnd: number } {
    const target = present(this.target, 'hydration target');
    const lock = lockPgno(target.pageSize);
    const byIndex = new Map<FileIndex, number[]>();
    let bytes = 0;
    let p = this.cursor;
    for (; p <= target.commit && bytes < ROUND_BYTES; p++) {
      if (p === lock || this.isValid(p)) continue;
      const loc = target.map.lookup(p);
      if (loc === undefined) {
        throw new LtxvfsError(
          'REPLICA_CORRUPT',
          `page ${p} of ${this.host.client.url} at TXID ${formatTxid(target.txid)} is in none of the planned objects`,
        );
      }
      let list = byIndex.get(loc.index);
      if (list === undefined) {
        list = [];
        byIndex.set(loc.index, list);
      }
      list.push(loc.entry);
      bytes += entrySize(loc.index, loc.entry);
    }
    const chunk = Math.max(this.host.fetcher.maxRunBytes(), 1);
    const runs: Run[] = [];
    for (const [index, entries] of byIndex) {
      entries.sort((a, b) => a - b);
      let run: Run | undefined;
      let runBytes = 0;
      for (const e of entries) {
        const contiguous =
          run !== undefined &&
          e - run.last <= GAP_FRAMES + 1 &&
          entryEnd(index, e) - entryOffset(index, run.first) <= chunk &&
          entryOffset(index, e) - entryEnd(index, run.last) <= chunk - runBytes;
        if (run !== undefined && contiguous) {
          run.last = e;
          run.wanted.push(e);
          runBytes = entryEnd(index, e) - entryOffset(index, run.first);
        } else {
          if (run !== undefined) runs.push(run);
          run = { index, first: e, last: e, wanted: [e] };
          runBytes = entrySize(index, e);
        }
      }
      if (run !== undefined) runs.push(run);
    }
    return { runs, scanEnd: p };
  }

  private async execute(runs: Run[]): Promise<void> {
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.closed) {
        const run = runs[next++];
        if (run === undefined) return;
        await this.fetchRun(run);
      }
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, runs.length) }, worker));
  }

  private async fetchRun(run: Run): Promise<void> {
    const target = present(this.target, 'hydration target');
    const { index, first, last } = run;
    const pages = await this.host.fetcher.readFrames(index, first, last, target.pageSize);
    this.state.bytesDownloaded += entryEnd(index, last) - entryOffset(index, first);
    // Consecutive page numbers go to disk in one write.
    let group: { pgno: number; pages: Uint8Array[] } | undefined;
    const groups: Array<{ pgno: number; pages: Uint8Array[] }> = [];
    for (const e of run.wanted) {
      const pgno = entryPgno(index, e);
      const page = present(pages[e - first], `frame ${e} of the run read from ${index.key}`);
      if (group !== undefined && group.pgno + group.pages.length === pgno) group.pages.push(page);
      else {
        group = { pgno, pages: [page] };
        groups.push(group);
      }
    }
    const fh = this.fh;
    if (fh === undefined) return;
    for (const g of groups) {
      const [only] = g.pages;
      const buf = g.pages.length === 1 && only !== undefined ? only : Buffer.concat(g.pages);
      await writeAll(fh, buf, (g.pgno - 1) * target.pageSize, this.dataPath);
    }
    if (this.target !== target) return;
    for (const e of run.wanted) {
      const pgno = entryPgno(index, e);
      if (!this.isValid(pgno)) {
        this.setBit(pgno);
        this.state.pagesDone++;
      }
    }
    this.host.report(this.status());
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
