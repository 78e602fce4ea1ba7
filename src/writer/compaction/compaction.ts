import { tmpdir } from 'node:os';
import pLimit from 'p-limit';
import {
  compactLtx,
  decodeHeader,
  HEADER_SIZE,
  LtxStreamDecoder,
  type PageEncoding,
} from '../../ltx/index.js';
import { removeStaleSpools, spoolChunks } from '../../storage/local-source.js';
import type { LtxFileInfo, LtxFileRef, ReplicaClient } from '../../storage/types.js';
import { isLtxvfsError, LtxvfsError } from '../../util/errors.js';
import { present } from '../../util/invariant.js';
import { formatTxid, type Txid } from '../../util/txid.js';
import {
  type CompactionConfig,
  DEFAULT_L0_RETENTION_CHECK_INTERVAL_MS,
  SNAPSHOT_LEVEL,
  validateCompactionConfig,
} from './compaction-config.js';
import { chooseChunkSize, streamStoredFile } from './compaction-input.js';
import { compactionBoundary, describeFile, planCompaction } from './levels.js';
import { planFloorRetention, planL0Retention, planSnapshotRetention } from './retention.js';

export type { CompactionConfig } from './compaction-config.js';
export { DEFAULT_COMPACTION_CONFIG, SNAPSHOT_LEVEL } from './compaction-config.js';

export interface CompactionSchedulerOptions {
  client: ReplicaClient;
  config: CompactionConfig;
  /**
   * Writes a full L9 snapshot `1-N` of the live database and returns it; null when there is
   * nothing to snapshot yet. A STORAGE_EXISTS from it means that snapshot already exists.
   */
  takeSnapshot: () => Promise<LtxFileInfo | null>;
  now?: () => number;
  logger?: (line: string) => void;
  /** Where failed steps are reported (default the logger): a failure is not routine information. */
  warn?: (line: string) => void;
  /** Page encoding of compaction outputs (default lz4-block, what Litestream reads). */
  encoding?: PageEncoding;
  /** Bytes of input chunks one compaction may hold in memory at once (default 64 MiB). */
  readBudgetBytes?: number;
  /**
   * Directory of the temp file each output is written to before its upload (default the OS temp
   * directory); it needs room for one output, about the database size for L9-sized merges.
   */
  spoolDir?: string;
  /** Called after every pass that ran something (the manifest is rewritten from it). */
  afterPass?: () => Promise<void>;
  /**
   * Whether this writer may change the replica now (default always). The replicator says no
   * while its lease has expired unrenewed: until the store confirms it, another writer may hold
   * the replica, so a tick then does nothing, not even a LIST, and the schedule waits.
   */
  mayWrite?: () => boolean;
}

export interface CompactionStats {
  compactions: number;
  snapshots: number;
  deleted: number;
  errors: number;
}

/**
 * Runs Litestream's schedule over one replica (ltx-and-litestream.md sections 2.2, 2.4, 2.5):
 * merges of level L-1 into L at wall-clock boundaries, L9 snapshots, and retention.
 *
 * Crash safety comes from the order of effects, not from local state: an output is written
 * create-only before anything it covers may be deleted, deletions only ever remove files some
 * other stored file already covers (or that retention expired), and everything is re-derived
 * from the listing after a restart. The only state kept in memory is which boundary each level
 * last ran at and the newest file per level, to spare LIST requests.
 */
export class CompactionScheduler {
  private readonly client: ReplicaClient;
  private readonly config: CompactionConfig;
  private readonly takeSnapshotFn: () => Promise<LtxFileInfo | null>;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly warn: (line: string) => void;
  private readonly encoding: PageEncoding | undefined;
  private readonly readBudgetBytes: number;
  private readonly spoolDir: string;
  private readonly afterPass: (() => Promise<void>) | undefined;
  private readonly mayWrite: () => boolean;
  private staleSpoolsRemoved = false;
  /** Newest file per level as far as this process knows; undefined = not listed yet. */
  private readonly newest = new Map<number, LtxFileInfo | null>();
  /** Boundary each level (and L9) last ran at, so one boundary costs one attempt. */
  private readonly lastBoundary = new Map<number, number>();
  private lastL0RetentionAt = Number.NEGATIVE_INFINITY;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly counters: CompactionStats = { compactions: 0, snapshots: 0, deleted: 0, errors: 0 };

  constructor(opts: CompactionSchedulerOptions) {
    this.client = opts.client;
    this.config = validateCompactionConfig({ ...opts.config, levels: [...opts.config.levels] });
    this.takeSnapshotFn = opts.takeSnapshot;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger ?? (() => {});
    this.warn = opts.warn ?? this.log;
    this.encoding = opts.encoding;
    this.readBudgetBytes = opts.readBudgetBytes ?? 64 * 1024 * 1024;
    this.spoolDir = opts.spoolDir ?? tmpdir();
    this.afterPass = opts.afterPass;
    this.mayWrite = opts.mayWrite ?? (() => true);
  }

  /** Changes whenever a pass wrote or deleted something. */
  private workDone(): number {
    const c = this.counters;
    return c.compactions + c.snapshots + c.deleted;
  }

  stats(): CompactionStats {
    return { ...this.counters };
  }

  /** Calls tick() every `pollMs` until stop(); ticks never overlap. */
  start(pollMs = 1000): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.tick(), pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  /**
   * Runs whatever is due at now(): L1..Ln merges (lowest first, so a higher level sees what the
   * lower one just produced), the snapshot with its retention, and L0 retention. A failing step
   * is logged and counted and retried on the next tick; it does not stop the others.
   */
  tick(): Promise<void> {
    if (!this.running && this.mayWrite()) {
      const before = this.workDone();
      this.running = this.runDue()
        .then(() => (this.workDone() !== before ? this.afterPass?.().catch(() => {}) : undefined))
        .finally(() => {
          this.running = undefined;
        });
    }
    return this.running ?? Promise.resolve();
  }

  private async runDue(): Promise<void> {
    const now = this.now();
    for (const [i, interval] of this.config.levels.entries()) {
      const level = i + 1;
      const boundary = compactionBoundary(now, interval);
      if (this.lastBoundary.get(level) === boundary) continue;
      const ok = await this.step(`compaction into L${level}`, async () => {
        const newest = await this.newestAt(level);
        // Already done for this boundary (e.g. by a run before a restart).
        if (newest && newest.createdAt.getTime() >= boundary) return;
        await this.compactLevel(level);
      });
      if (ok) this.lastBoundary.set(level, boundary);
    }

    const snapshotBoundary = compactionBoundary(now, this.config.snapshotIntervalMs);
    if (this.lastBoundary.get(SNAPSHOT_LEVEL) !== snapshotBoundary) {
      let nothingYet = false;
      const ok = await this.step('snapshot', async () => {
        const newest = await this.newestAt(SNAPSHOT_LEVEL);
        if (newest && newest.createdAt.getTime() >= snapshotBoundary) return;
        // Nothing replicated yet: try again on the next tick rather than a whole interval later.
        if ((await this.snapshot()) === 'nothing') nothingYet = true;
        else if (this.config.retentionEnabled) await this.enforceSnapshotRetention();
      });
      if (ok && !nothingYet) this.lastBoundary.set(SNAPSHOT_LEVEL, snapshotBoundary);
    }

    const checkEvery = this.config.l0RetentionCheckIntervalMs ?? DEFAULT_L0_RETENTION_CHECK_INTERVAL_MS;
    if (this.config.retentionEnabled && now - this.lastL0RetentionAt >= checkEvery) {
      if (await this.step('L0 retention', () => this.enforceL0Retention())) this.lastL0RetentionAt = now;
    }
  }

  private async step(what: string, run: () => Promise<void>): Promise<boolean> {
    try {
      await run();
      return true;
    } catch (err) {
      this.counters.errors++;
      this.warn(`${what} failed: ${(err as Error).message}`);
      return false;
    }
  }

  private async newestAt(level: number): Promise<LtxFileInfo | null> {
    const known = this.newest.get(level);
    if (known !== undefined) return known;
    const files = await this.client.listFiles(level);
    const newest = files.length === 0 ? null : files.reduce((a, b) => (b.maxTxid > a.maxTxid ? b : a));
    this.newest.set(level, newest);
    return newest;
  }

  /** Remembers a file this process wrote, timed by our clock (the store's may differ). */
  private noteWritten(file: LtxFileInfo, atMs: number): void {
    const known = this.newest.get(file.level);
    if (!known || file.maxTxid >= known.maxTxid)
      this.newest.set(file.level, { ...file, createdAt: new Date(atMs) });
  }

  /**
   * Merges every file of level-1 after the newest file of `level` into one `min-max` file at
   * `level`. Returns it, or null when there was nothing to merge.
   */
  async compactLevel(level: number): Promise<LtxFileInfo | null> {
    if (!Number.isInteger(level) || level < 1 || level > this.config.levels.length) {
      throw new LtxvfsError(
        'BAD_ARGUMENT',
        `cannot compact into L${level}: levels 1..${this.config.levels.length} are configured`,
      );
    }
    const target = await this.newestAt(level);
    const seek = (target?.maxTxid ?? 0) + 1;
    let lower = await this.client.listFiles(level - 1, { fromTxid: seek });
    if (lower.length > 0 && lower[0]?.minTxid !== seek && target) {
      // Boundaries of the two levels do not line up (a replica written with other intervals):
      // the file straddling `seek` lies before it in the listing.
      lower = await this.client.listFiles(level - 1);
    }
    const snapshot = await this.newestAt(SNAPSHOT_LEVEL);
    const plan = planCompaction(lower, target ?? undefined, snapshot?.maxTxid ?? 0);
    if (plan.kind === 'gap') {
      throw new LtxvfsError(
        'LTX_NOT_CONTIGUOUS',
        `cannot compact L${level - 1} into L${level} of ${this.client.url}: ${plan.reason}`,
      );
    }
    if (plan.kind === 'nothing') return null;
    if (plan.stoppedAtGap) this.log(`compaction into L${level} stops before a hole: ${plan.stoppedAtGap}`);

    const ref: LtxFileRef = { level, minTxid: plan.minTxid, maxTxid: plan.maxTxid };
    const started = this.now();
    const limit = pLimit(8);
    const chunkSize = chooseChunkSize(plan.inputs.length, this.readBudgetBytes);
    const inputs = plan.inputs.map((f) => streamStoredFile(this.client, f, chunkSize, limit));
    if (!this.staleSpoolsRemoved) {
      this.staleSpoolsRemoved = true;
      const stale = await removeStaleSpools(this.spoolDir);
      if (stale > 0) this.log(`removed ${stale} temp file(s) of killed compactions from ${this.spoolDir}`);
    }
    // The output goes to a local temp file, then up in one streamed create-only write: memory
    // stays at the input windows plus a 1 MiB buffer, whatever the size of the database.
    // The output keeps the header timestamp of its last input (compactLtx's default), as
    // Litestream does, so a time target finds the state by content time, not by compaction time.
    const header = { timestamp: started };
    const output = await spoolChunks(
      withHeaderTimestamp(compactLtx(inputs, this.encoding ? { encoding: this.encoding } : {}), header),
      this.spoolDir,
    );
    let written: LtxFileInfo;
    try {
      written = await this.client.writeFileFrom(ref, output, { timestamp: new Date(header.timestamp) });
    } catch (err) {
      if (!isLtxvfsError(err, 'STORAGE_EXISTS')) throw err;
      written = await this.adoptExisting(ref);
    } finally {
      await output.remove();
    }
    this.noteWritten(written, started);
    this.counters.compactions++;
    const inputBytes = plan.inputs.reduce((n, f) => n + f.size, 0);
    this.log(
      `compacted ${plan.inputs.length} L${level - 1} files (${inputBytes} bytes) into ${describeFile(ref)} (${written.size} bytes, ${this.now() - started} ms)`,
    );
    return written;
  }

  /**
   * The output already exists: a run before a crash (or a stale listing) wrote it. Accept it only
   * if it decodes cleanly and covers exactly the same TXIDs.
   */
  private async adoptExisting(ref: LtxFileRef): Promise<LtxFileInfo> {
    const listed = (await this.client.listFiles(ref.level, { fromTxid: ref.minTxid })).find(
      (f) => f.minTxid === ref.minTxid && f.maxTxid === ref.maxTxid,
    );
    if (!listed) {
      throw new LtxvfsError(
        'STORAGE_NOT_FOUND',
        `${describeFile(ref)} in ${this.client.url} was reported to exist but is not listed`,
      );
    }
    // Decoded as a stream (ranged reads), so a large existing output costs no more memory than
    // writing it did.
    const decoder = new LtxStreamDecoder(
      streamStoredFile(this.client, listed, chooseChunkSize(1, this.readBudgetBytes), pLimit(2)),
    );
    let header: { minTxid: Txid; maxTxid: Txid };
    try {
      header = await decoder.header();
      await decoder.trailer();
    } catch (err) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `${describeFile(ref)} in ${this.client.url} already exists but does not decode: ${(err as Error).message}`,
        { cause: err },
      );
    }
    if (header.minTxid !== ref.minTxid || header.maxTxid !== ref.maxTxid) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `${describeFile(ref)} in ${this.client.url} holds TXIDs ${formatTxid(header.minTxid)}-${formatTxid(header.maxTxid)}`,
      );
    }
    this.log(`${describeFile(ref)} was already written (earlier run); verified and kept`);
    return listed;
  }

  private async snapshot(): Promise<LtxFileInfo | 'exists' | 'nothing'> {
    let file: LtxFileInfo | null;
    try {
      file = await this.takeSnapshotFn();
    } catch (err) {
      if (!isLtxvfsError(err, 'STORAGE_EXISTS')) throw err;
      // Nothing changed since that snapshot; refresh what we know from the listing.
      this.newest.delete(SNAPSHOT_LEVEL);
      this.log(`snapshot already exists: ${(err as Error).message}`);
      return 'exists';
    }
    if (!file) return 'nothing';
    this.noteWritten(file, this.now());
    this.counters.snapshots++;
    this.log(`snapshot ${describeFile(file)} (${file.size} bytes)`);
    return file;
  }

  /** Runs every retention rule now (no-op when retention is disabled). */
  async enforceRetention(): Promise<void> {
    if (!this.config.retentionEnabled) return;
    await this.enforceSnapshotRetention();
    await this.enforceL0Retention();
  }

  /**
   * Snapshots past the retention (keeping the newest), and the files of L1..Ln wholly below the
   * newest deleted snapshot. The level files go first: if the process dies in between, the next
   * run finds the same snapshots expired, derives the same floor and finishes the job.
   */
  private async enforceSnapshotRetention(): Promise<void> {
    const snapshots = await this.client.listFiles(SNAPSHOT_LEVEL);
    const { deleted, floor } = planSnapshotRetention(snapshots, this.now(), this.config.retentionMs);
    if (floor === undefined) return;
    for (let level = 1; level <= this.config.levels.length; level++) {
      const expired = planFloorRetention(await this.client.listFiles(level), floor);
      await this.delete(expired, `below the retention floor ${formatTxid(floor)}`);
    }
    await this.delete(deleted, 'past the snapshot retention');
  }

  /** L0 files merged into L1 and older than the L0 retention. */
  private async enforceL0Retention(): Promise<void> {
    const l1 = await this.newestAt(1);
    if (!l1) return;
    const l0 = await this.client.listFiles(0);
    await this.delete(
      planL0Retention(l0, l1.maxTxid, this.now(), this.config.l0RetentionMs),
      'compacted into L1',
    );
  }

  private async delete(files: LtxFileInfo[], why: string): Promise<void> {
    if (files.length === 0) return;
    await this.client.deleteFiles(files);
    this.counters.deleted += files.length;
    const first = present(files[0], 'first of the files deleted');
    const last = present(files.at(-1), 'last of the files deleted');
    this.log(
      `deleted ${files.length} file(s) ${why}: ${files.length === 1 ? describeFile(first) : `${describeFile(first)} .. ${describeFile(last)}`}`,
    );
  }
}

/** Passes `chunks` through, noting the header timestamp of the LTX stream (its first bytes). */
async function* withHeaderTimestamp(
  chunks: AsyncIterable<Uint8Array>,
  out: { timestamp: number },
): AsyncGenerator<Uint8Array> {
  let head: Uint8Array | undefined = new Uint8Array(0);
  for await (const chunk of chunks) {
    if (head !== undefined) {
      const joined: Uint8Array = new Uint8Array(head.length + chunk.length);
      joined.set(head);
      joined.set(chunk, head.length);
      if (joined.length >= HEADER_SIZE) {
        out.timestamp = decodeHeader(joined.subarray(0, HEADER_SIZE)).timestamp;
        head = undefined;
      } else {
        head = joined;
      }
    }
    yield chunk;
  }
}
