import { EventEmitter } from 'node:events';
import { closeSync, existsSync, fstatSync, fsyncSync, openSync, readSync, renameSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeLtxFile, type LtxHeader, LtxStreamDecoder, lockPgno } from '../ltx/index.js';
import { extendChain } from '../replica/extend.js';
import { patchPageOne } from '../replica/page-one.js';
import { fileChunks, type RestoreProgress, restore } from '../replica/restore.js';
import { listAllLevels } from '../storage/listing.js';
import type { LtxFileInfo, ReplicaClient } from '../storage/types.js';
import { fsyncDirSync, writeAllSync } from '../util/atomic-file.js';
import { isLtxvfsError, LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { type FileChange, FollowedFile, journalPath } from './followed-file.js';
import { loadBetterSqlite3 } from './sqlite-lock.js';
import {
  type FileMark,
  type FollowPosition,
  type FollowState,
  type FollowStateFile,
  followStatePath,
  markOf,
  readFollowState,
  sameFile,
  writeFollowState,
} from './state-file.js';

export interface FollowOptions {
  /** Pause between polls of the replica. Default 1000 ms. */
  intervalMs?: number;
  /** Target time SQLite's lock is held per apply while catching up. Default 50 ms. */
  lockBudgetMs?: number;
  /** How long an apply waits for readers to finish before it fails and retries. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** Replace an existing file that is not a followed copy of this replica. */
  force?: boolean;
  /** Lines worth a person's attention: start, resume, re-plans, errors. */
  log?: (line: string) => void;
  /** Also log one line per apply. */
  verbose?: boolean;
  /** Progress of the initial restore. */
  onRestoreProgress?: (p: RestoreProgress) => void;
}

export interface ApplyEvent {
  fromTxid: Txid;
  txid: Txid;
  files: number;
  /** Pages written and pages saved in the journal first. */
  pages: number;
  journaled: number;
  /** Waiting for readers, and holding SQLite's EXCLUSIVE lock. */
  waitMs: number;
  holdMs: number;
}

export interface ReplanEvent {
  reason: string;
  fromTxid: Txid;
  txid: Txid;
  /** Pages that differed between the file and the fresh plan. */
  pages: number;
  holdMs: number;
}

export interface FollowStatus {
  url: string;
  path: string;
  state: FollowState;
  txid: Txid;
  newestTxid: Txid;
  lagTxids: number;
  lagSeconds: number;
  applies: number;
  replans: number;
  lastReplanReason?: string;
  lastError?: string;
}

const DEFAULT_INTERVAL_MS = 1000;
const DEFAULT_LOCK_BUDGET_MS = 50;
const DEFAULT_BUSY_TIMEOUT_MS = 5000;
const MIN_BATCH_PAGES = 16;
const MAX_BATCH_PAGES = 65536;
const U32 = 0x1_0000_0000;

interface DecodedFile {
  info: LtxFileInfo;
  header: LtxHeader;
  pages: Map<number, Uint8Array>;
}

type Finding =
  | { kind: 'none'; newest: Txid }
  | { kind: 'extend'; files: LtxFileInfo[]; newest: Txid }
  | { kind: 'replan'; reason: string };

/**
 * Keeps a plain SQLite file at `path` equal to the replica's latest state, readable by any SQLite
 * client while it changes. The file is in rollback-journal mode; every apply is a SQLite-style
 * commit (journal, pages, delete journal) under SQLite's own EXCLUSIVE lock (followed-file.ts).
 * A state file beside it (`<path>.ltxvfs-follow.json`) is the resume point and the status.
 *
 * Events: 'apply' (ApplyEvent), 'replan' (ReplanEvent), 'error' (an error the loop survived:
 * it retries at the next poll), 'log' (each line also given to options.log).
 */
export class Follower extends EventEmitter {
  private position: FollowPosition;
  private file: FollowedFile;
  private closing = false;
  private closed = false;
  private polling: Promise<void> | undefined;
  private loopDone: Promise<void> | undefined;
  private wakeup: (() => void) | undefined;
  private newestTxid: Txid;
  private tipSeenAt = Date.now();
  private applies = 0;
  private replans = 0;
  private stateName: FollowState = 'following';
  private lastReplanReason: string | undefined;
  private lastError: string | undefined;
  private replanNeeded: string | undefined;
  private batchPages = 256;
  private readonly intervalMs: number;
  private readonly lockBudgetMs: number;

  private constructor(
    readonly client: ReplicaClient,
    readonly path: string,
    private readonly options: FollowOptions,
    opened: { file: FollowedFile; position: FollowPosition; replan?: string },
    private readonly ownsClient: boolean,
  ) {
    super();
    this.file = opened.file;
    this.position = opened.position;
    this.newestTxid = opened.position.txid;
    this.replanNeeded = opened.replan;
    this.intervalMs = options.intervalMs ?? DEFAULT_INTERVAL_MS;
    this.lockBudgetMs = options.lockBudgetMs ?? DEFAULT_LOCK_BUDGET_MS;
  }

  /**
   * Restores the latest state into `path` (or resumes a file this follower left, from its state
   * file: a hot journal is rolled back first) and starts following. Resolves once the file is
   * whole and readable.
   */
  static async start(
    client: ReplicaClient,
    path: string,
    options: FollowOptions = {},
    ownsClient = false,
  ): Promise<Follower> {
    // Before anything is restored: without the package no file must be left behind.
    loadBetterSqlite3();
    const busy = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    const log = (line: string) => options.log?.(line);
    const saved = readFollowState(path);
    let opened: { file: FollowedFile; position: FollowPosition; replan?: string };
    if (existsSync(path) && saved !== undefined && saved.url === client.url) {
      opened = resume(path, saved, busy);
      log(
        opened.replan === undefined
          ? `resuming ${path} at TXID ${formatTxid(opened.position.txid)}`
          : `resuming ${path}: ${opened.replan}`,
      );
    } else {
      if (existsSync(path) && !options.force) {
        throw new LtxvfsError(
          'BAD_ARGUMENT',
          `${path} already exists and is not a followed copy of ${client.url} (no matching ${followStatePath(path)}); use --force to replace it`,
        );
      }
      const position = await restoreFresh(client, path, options.onRestoreProgress);
      log(`restored ${path} at TXID ${formatTxid(position.txid)}`);
      opened = { file: new FollowedFile(path, busy), position };
    }
    const follower = new Follower(client, path, options, opened, ownsClient);
    follower.saveState();
    return follower;
  }

  /**
   * Takes over a complete file that holds the replica at `txid` with page 1 as the primary wrote
   * it (a finished hydration, src/replica/hydrator.ts): page 1 is switched to rollback-journal
   * mode before any SQLite connection opens it, then the file is followed like a restored one.
   * Nothing may have the file open yet.
   */
  static async adopt(
    client: ReplicaClient,
    path: string,
    txid: Txid,
    options: FollowOptions = {},
  ): Promise<Follower> {
    loadBetterSqlite3();
    const fd = openSync(path, 'r+');
    let position: FollowPosition;
    try {
      const header = readPageOf(fd, 1, 100);
      const raw = new DataView(header.buffer).getUint16(16);
      const pageSize = raw === 1 ? 65536 : raw;
      const commit = Math.floor(fstatSync(fd).size / pageSize);
      const counter = txid % U32;
      writeAllSync(fd, patchPageOne(readPageOf(fd, 1, pageSize), counter, commit), 0);
      fsyncSync(fd);
      // No file of the replica is known yet: the first poll looks at L0 after `txid`, or at every level.
      const anchor: FileMark = { level: -1, minTxid: txid, maxTxid: txid, size: 0, createdAt: '' };
      position = { txid, counter, pageSize, commit, anchor };
    } finally {
      closeSync(fd);
    }
    rmSync(journalPath(path), { force: true });
    const file = new FollowedFile(path, options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS);
    const follower = new Follower(client, path, options, { file, position }, false);
    follower.saveState();
    options.log?.(`following the hydrated ${path} from TXID ${formatTxid(txid)}`);
    return follower;
  }

  /** The TXID the file holds. */
  get txid(): Txid {
    return this.position.txid;
  }

  /** How far behind the replica the file may be: TXIDs seen but not applied, seconds since the tip was seen. */
  get lag(): { txids: number; seconds: number } {
    return {
      txids: Math.max(0, this.newestTxid - this.position.txid),
      seconds: (Date.now() - this.tipSeenAt) / 1000,
    };
  }

  status(): FollowStatus {
    const lag = this.lag;
    return {
      url: this.client.url,
      path: this.path,
      state: this.stateName,
      txid: this.position.txid,
      newestTxid: this.newestTxid,
      lagTxids: lag.txids,
      lagSeconds: lag.seconds,
      applies: this.applies,
      replans: this.replans,
      ...(this.lastReplanReason === undefined ? {} : { lastReplanReason: this.lastReplanReason }),
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
    };
  }

  /** Polls every intervalMs until close(). */
  run(): void {
    if (this.loopDone !== undefined) return;
    this.loopDone = this.loop();
  }

  /**
   * One round: look at the replica and apply everything new (in batches), or re-plan. Errors
   * are thrown to the caller (the background loop logs them and retries).
   */
  poll(): Promise<void> {
    // One round at a time: a caller's poll() joins the loop's round in flight.
    if (this.polling === undefined) {
      this.polling = this.pollRound().finally(() => {
        this.polling = undefined;
      });
    }
    return this.polling;
  }

  private async pollRound(): Promise<void> {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `the follower of ${this.path} is closed`);
    if (this.replanNeeded !== undefined) {
      await this.replan(this.replanNeeded);
      return;
    }
    const finding = await this.find();
    if (finding.kind === 'replan') {
      this.replanNeeded = finding.reason;
      await this.replan(finding.reason);
      return;
    }
    this.newestTxid = Math.max(finding.newest, this.position.txid);
    if (finding.kind === 'extend') await this.applyChain(finding.files);
    if (this.position.txid >= this.newestTxid) this.tipSeenAt = Date.now();
    this.setState('following');
  }

  /** Finishes the apply in progress, stops, releases the file. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.wakeup?.();
    await this.loopDone;
    await this.polling?.catch(() => {});
    this.closed = true;
    this.stateName = 'closed';
    this.saveState();
    this.file.close();
    if (this.ownsClient) await this.client.close();
  }

  private async loop(): Promise<void> {
    while (!this.closing) {
      try {
        await this.poll();
        if (this.lastError !== undefined) {
          this.log(`following ${this.client.url} again at TXID ${formatTxid(this.position.txid)}`);
          this.lastError = undefined;
          this.saveState();
        }
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        const code = isLtxvfsError(err) ? `${err.code}: ` : '';
        if (this.lastError !== message)
          this.log(
            `follow of ${this.client.url} at TXID ${formatTxid(this.position.txid)}: ${code}${message} (retrying every ${this.intervalMs} ms)`,
          );
        this.lastError = message;
        this.setState('stalled');
        if (this.listenerCount('error') > 0) this.emit('error', err);
      }
      if (this.closing) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.intervalMs);
        this.wakeup = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeup = undefined;
    }
  }

  /**
   * What is new after the position. The common case is one LIST of L0 starting at the last file
   * applied, which both finds the next files and checks that file is still there with the same
   * size and time (a new lineage rewrites names). Otherwise every level is listed.
   */
  private async find(): Promise<Finding> {
    const { txid, anchor } = this.position;
    const l0 = await this.client.listFiles(0, { fromTxid: anchor.level === 0 ? anchor.minTxid : txid + 1 });
    const first = l0[0];
    if (anchor.level === 0 && first !== undefined && sameFile(anchor, first)) {
      const after = l0.filter((f) => f.minTxid > anchor.minTxid);
      const newest = newestOf(after, txid);
      if (after.length === 0) return { kind: 'none', newest };
      const files = extendChain(new Map([[0, after]]), txid);
      if (files.length > 0 && last(files).maxTxid >= newest) return { kind: 'extend', files, newest };
    } else if (anchor.level !== 0 && (first === undefined || first.minTxid === txid + 1)) {
      // Positioned by a snapshot or a compacted file: L0 continues it or nothing is new yet.
      const newest = newestOf(l0, txid);
      const files = extendChain(new Map([[0, l0]]), txid);
      if (l0.length === 0) return this.checkLineage(txid);
      if (files.length > 0 && last(files).maxTxid >= newest) return { kind: 'extend', files, newest };
    }
    return this.findAcrossLevels();
  }

  /** Nothing new in L0 after a non-L0 anchor: make sure the replica did not start over below us. */
  private async checkLineage(txid: Txid): Promise<Finding> {
    const result = await this.findAcrossLevels();
    return result.kind === 'extend' && result.files.length === 0 ? { kind: 'none', newest: txid } : result;
  }

  private async findAcrossLevels(): Promise<Finding> {
    const { txid, anchor } = this.position;
    const listing = await listAllLevels(this.client);
    let newest = 0;
    let anchorThere = false;
    let rewritten = false;
    for (const files of listing.values()) {
      for (const f of files) {
        newest = Math.max(newest, f.maxTxid);
        if (sameFile(anchor, f)) anchorThere = true;
        else if (f.level === anchor.level && f.minTxid === anchor.minTxid && f.maxTxid === anchor.maxTxid)
          rewritten = true;
      }
    }
    if (newest === 0) return { kind: 'replan', reason: `${this.client.url} holds no LTX files any more` };
    if (rewritten) {
      return {
        kind: 'replan',
        reason: `the last applied file ${describeMark(anchor)} was rewritten with another size or time: the replica was restarted (a new lineage)`,
      };
    }
    if (newest < txid) {
      return {
        kind: 'replan',
        reason: `the replica's newest TXID ${formatTxid(newest)} is behind the file's ${formatTxid(txid)}: the replica was restarted (a new lineage)`,
      };
    }
    const files = extendChain(listing, txid);
    const reached = files.length > 0 ? last(files).maxTxid : txid;
    if (reached >= newest) return { kind: 'extend', files, newest };
    const next = [...listing.values()]
      .flat()
      .filter((f) => f.minTxid > reached + 1)
      .sort((a, b) => a.minTxid - b.minTxid)[0];
    const gap = next === undefined ? '' : ` (the next file starts at TXID ${formatTxid(next.minTxid)})`;
    return {
      kind: 'replan',
      reason:
        `no files continue TXID ${formatTxid(reached)}${gap}` +
        (anchorThere ? '' : `; the last applied file ${describeMark(anchor)} is gone`) +
        ' (removed by retention, or a new lineage)',
    };
  }

  /** Downloads the files in order and applies them in batches bounded by the lock budget. */
  private async applyChain(files: readonly LtxFileInfo[]): Promise<void> {
    let batch: DecodedFile[] = [];
    let batchPages = 0;
    for (const info of files) {
      if (this.closing) break;
      const decoded = await this.download(info);
      const pageSizeChanges = batch.length > 0 && decoded.header.pageSize !== last(batch).header.pageSize;
      if (batch.length > 0 && (pageSizeChanges || batchPages + decoded.pages.size > this.batchPages)) {
        this.applyBatch(batch);
        batch = [];
        batchPages = 0;
        if (this.closing) return;
      }
      batch.push(decoded);
      batchPages += decoded.pages.size;
    }
    if (batch.length > 0) this.applyBatch(batch);
  }

  private async download(info: LtxFileInfo): Promise<DecodedFile> {
    const name = `${this.client.url} ${describeLtxFile(info)}`;
    try {
      const decoder = new LtxStreamDecoder(fileChunks(this.client, info));
      const header = await decoder.header();
      if (header.minTxid !== info.minTxid || header.maxTxid !== info.maxTxid) {
        throw new LtxvfsError(
          'REPLICA_CORRUPT',
          `header says TXIDs ${formatTxid(header.minTxid)}-${formatTxid(header.maxTxid)}`,
        );
      }
      const pages = new Map<number, Uint8Array>();
      for await (const page of decoder.pages()) pages.set(page.pgno, page.data);
      await decoder.trailer();
      return { info, header, pages };
    } catch (err) {
      if (isLtxvfsError(err)) throw new LtxvfsError(err.code, `${name}: ${err.message}`, { cause: err });
      throw err;
    }
  }

  private applyBatch(batch: readonly DecodedFile[]): void {
    const final = last(batch);
    const { pageSize, commit, maxTxid } = final.header;
    const lock = lockPgno(pageSize);
    const pages = new Map<number, Uint8Array>();
    for (const f of batch)
      for (const [pgno, data] of f.pages) if (pgno <= commit && pgno !== lock) pages.set(pgno, data);
    const counter = this.nextCounter(maxTxid);
    const one = pages.get(1) ?? this.file.readPage(1, pageSize);
    pages.set(1, patchPageOne(one, counter, commit));
    const pgnos = [...pages.keys()].sort((a, b) => a - b);
    const change: FileChange = {
      pageSize,
      commit,
      pgnos,
      page: (pgno) => pages.get(pgno) ?? new Uint8Array(pageSize),
    };
    const next: FollowPosition = { txid: maxTxid, counter, pageSize, commit, anchor: markOf(final.info) };
    const from = this.position.txid;
    const timing = this.commitChange(change, next);
    this.applies++;
    this.tuneBatch(timing.holdMs, pgnos.length + timing.journaled);
    const event: ApplyEvent = {
      fromTxid: from,
      txid: maxTxid,
      files: batch.length,
      pages: pgnos.length,
      journaled: timing.journaled,
      waitMs: timing.waitMs,
      holdMs: timing.holdMs,
    };
    if (this.options.verbose) {
      this.log(
        `applied TXID ${formatTxid(from + 1)}..${formatTxid(maxTxid)} (${batch.length} files, ${pgnos.length} pages, ` +
          `lock held ${timing.holdMs.toFixed(1)} ms after ${timing.waitMs.toFixed(1)} ms waiting), ` +
          `${Math.max(0, this.newestTxid - maxTxid)} TXIDs behind`,
      );
    }
    this.emit('apply', event);
  }

  /** The pending mark, the SQLite-style commit, then the new position. */
  private commitChange(change: FileChange, next: FollowPosition) {
    this.saveState(next);
    const timing = this.file.apply(change, this.position.pageSize);
    this.position = next;
    this.saveState();
    return timing;
  }

  /**
   * Brings the file to a fresh plan of the replica (newest snapshot and what follows) when the
   * chain it follows cannot be continued: restore into a temp file, then one apply of every page
   * that differs. Not split into batches: no state in between ever existed.
   */
  private async replan(reason: string): Promise<void> {
    this.lastReplanReason = reason;
    this.log(`re-planning ${this.path} from the newest snapshot: ${reason}`);
    this.setState('replanning');
    const temp = `${this.path}.ltxvfs-follow-replan`;
    try {
      const result = await restore({ client: this.client, outPath: temp, force: true });
      const fresh = openSync(temp, 'r');
      try {
        const { pageSize, commit } = result;
        const oldPageSize = this.position.pageSize;
        const oldCommit = Math.floor(this.file.size() / oldPageSize);
        const lock = lockPgno(pageSize);
        const read = (pgno: number) => readPageOf(fresh, pgno, pageSize);
        const pgnos: number[] = [1];
        for (let p = 2; p <= commit; p++) {
          if (p === lock) continue;
          if (pageSize !== oldPageSize || p > oldCommit || !equal(read(p), this.file.readPage(p, pageSize)))
            pgnos.push(p);
        }
        const counter = this.nextCounter(result.txid);
        const one = patchPageOne(read(1), counter, commit);
        const change: FileChange = {
          pageSize,
          commit,
          pgnos,
          page: (pgno) => (pgno === 1 ? one : read(pgno)),
        };
        const anchor = result.files[result.files.length - 1];
        if (anchor === undefined)
          throw new LtxvfsError('REPLICA_EMPTY', `${this.client.url} planned no files`);
        const next: FollowPosition = { txid: result.txid, counter, pageSize, commit, anchor: markOf(anchor) };
        const from = this.position.txid;
        const timing = this.commitChange(change, next);
        this.replans++;
        this.replanNeeded = undefined;
        this.newestTxid = result.txid;
        this.tipSeenAt = Date.now();
        this.log(
          `re-planned ${this.path}: TXID ${formatTxid(from)} -> ${formatTxid(result.txid)} (${pgnos.length} pages differed, lock held ${timing.holdMs.toFixed(1)} ms)`,
        );
        const event: ReplanEvent = {
          reason,
          fromTxid: from,
          txid: result.txid,
          pages: pgnos.length,
          holdMs: timing.holdMs,
        };
        this.emit('replan', event);
        this.setState('following');
      } finally {
        closeSync(fresh);
      }
    } finally {
      rmSync(temp, { force: true });
    }
  }

  /** TXID mod 2^32, unless that is what page 1 holds now (a re-plan to an equal TXID): readers must see it move. */
  private nextCounter(txid: Txid): number {
    const counter = txid % U32;
    return counter === this.position.counter ? (counter + 1) % U32 : counter;
  }

  private tuneBatch(holdMs: number, pages: number): void {
    if (pages <= 0) return;
    const perPage = Math.max(holdMs, 0.01) / pages;
    const target = Math.floor(this.lockBudgetMs / perPage);
    const next = Math.round((this.batchPages + target) / 2);
    this.batchPages = Math.min(MAX_BATCH_PAGES, Math.max(MIN_BATCH_PAGES, next));
  }

  private setState(state: FollowState): void {
    if (this.stateName === state) return;
    this.stateName = state;
    this.saveState();
  }

  private saveState(pending?: FollowPosition): void {
    const lag = this.lag;
    const state: FollowStateFile = {
      format: 'ltxvfs-follow-1',
      url: this.client.url,
      position: this.position,
      ...(pending === undefined ? {} : { pending }),
      state: this.stateName,
      txidHex: formatTxid(this.position.txid),
      newestTxid: this.newestTxid,
      lagTxids: lag.txids,
      lagSeconds: Math.round(lag.seconds * 1000) / 1000,
      applies: this.applies,
      replans: this.replans,
      ...(this.lastReplanReason === undefined ? {} : { lastReplanReason: this.lastReplanReason }),
      ...(this.lastError === undefined ? {} : { lastError: this.lastError }),
      updatedAt: new Date().toISOString(),
    };
    writeFollowState(this.path, state);
  }

  private log(line: string): void {
    this.options.log?.(line);
    this.emit('log', line);
  }
}

/** Opens a file a follower left: SQLite rolls back a hot journal, page 1 says which state it is in. */
function resume(
  path: string,
  saved: FollowStateFile,
  busyTimeoutMs: number,
): { file: FollowedFile; position: FollowPosition; replan?: string } {
  const hadJournal = existsSync(journalPath(path));
  const file = new FollowedFile(path, busyTimeoutMs);
  const header = file.readPage(1, 100);
  const view = new DataView(header.buffer);
  const counter = view.getUint32(24);
  const rawPageSize = view.getUint16(16);
  const pageSize = rawPageSize === 1 ? 65536 : rawPageSize;
  const commit = Math.floor(file.size() / Math.max(pageSize, 1));
  const journalNote = hadJournal ? ' (SQLite rolled back the hot journal of an interrupted apply)' : '';
  for (const p of [saved.position, saved.pending]) {
    if (
      p !== undefined &&
      p.counter === counter &&
      p.pageSize === pageSize &&
      p.commit === commit &&
      header[18] === 1
    ) {
      return { file, position: p };
    }
  }
  return {
    file,
    position: { ...saved.position, pageSize: pageSize || saved.position.pageSize, commit, counter },
    replan: `the file is not at the TXID its state file names${journalNote}`,
  };
}

/** The first restore: into a temp file, page 1 patched for rollback mode, then renamed into place. */
async function restoreFresh(
  client: ReplicaClient,
  path: string,
  onProgress: FollowOptions['onRestoreProgress'],
): Promise<FollowPosition> {
  const temp = `${path}.ltxvfs-follow-init`;
  try {
    const result = await restore({
      client,
      outPath: temp,
      force: true,
      ...(onProgress ? { onProgress } : {}),
    });
    const anchor = result.files[result.files.length - 1];
    if (anchor === undefined) throw new LtxvfsError('REPLICA_EMPTY', `${client.url} planned no files`);
    const counter = result.txid % U32;
    const fd = openSync(temp, 'r+');
    try {
      const one = patchPageOne(readPageOf(fd, 1, result.pageSize), counter, result.commit);
      writeAllSync(fd, one, 0);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    // A journal left beside an older file at this path must never be played onto this one.
    rmSync(journalPath(path), { force: true });
    rmSync(followStatePath(path), { force: true });
    renameSync(temp, path);
    fsyncDirSync(dirname(path));
    return {
      txid: result.txid,
      counter,
      pageSize: result.pageSize,
      commit: result.commit,
      anchor: markOf(anchor),
    };
  } finally {
    rmSync(temp, { force: true });
  }
}

function readPageOf(fd: number, pgno: number, pageSize: number): Uint8Array {
  const out = new Uint8Array(pageSize);
  let done = 0;
  while (done < pageSize) {
    const n = readSync(fd, out, done, pageSize - done, (pgno - 1) * pageSize + done);
    if (n === 0) break;
    done += n;
  }
  return out;
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

function newestOf(files: readonly LtxFileInfo[], floor: Txid): Txid {
  let n = floor;
  for (const f of files) n = Math.max(n, f.maxTxid);
  return n;
}

function last<T>(items: readonly T[]): T {
  const item = items[items.length - 1];
  if (item === undefined) throw new LtxvfsError('BAD_ARGUMENT', 'empty list');
  return item;
}

function describeMark(mark: FileMark): string {
  return describeLtxFile(mark);
}
