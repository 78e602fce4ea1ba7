import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { imagePages, writeLtxFile } from '../../bench/support/ltx-images.js';
import { decodeLtxFile } from '../../src/ltx/index.js';
import type { LtxFileInfo, ReplicaClient } from '../../src/storage/types.js';
import { LtxvfsError } from '../../src/util/errors.js';
import { seededRandom } from '../../src/util/random.js';
import { formatTxid, type Txid } from '../../src/util/txid.js';
import { defined } from './defined.js';

/*
 * Test support for compaction suites: a primary database written by real SQLite (better-sqlite3,
 * rollback-journal mode so the file on disk IS the database image after every commit), turned
 * into L0 files the way the replicator does (TXID 1 = every page, then changed + growth pages),
 * and an independent restore (Litestream's plan + decode-and-apply, no compactor involved).
 */

export interface PrimaryOptions {
  dir: string;
  client: ReplicaClient;
  now: () => number;
  pageSize?: number;
  seed?: number;
}

/** A real SQLite database whose commits become L0 files, with the image at every TXID kept. */
export class SimulatedPrimary {
  readonly path: string;
  readonly pageSize: number;
  readonly images = new Map<Txid, Uint8Array>();
  readonly l0: LtxFileInfo[] = [];
  readonly snapshots: LtxFileInfo[] = [];
  txid = 0;
  private readonly db: Database.Database;
  private readonly rng: () => number;

  constructor(private readonly opts: PrimaryOptions) {
    this.pageSize = opts.pageSize ?? 1024;
    this.path = join(opts.dir, 'primary.db');
    this.db = new Database(this.path);
    this.db.pragma(`page_size = ${this.pageSize}`);
    this.db.pragma('journal_mode = DELETE');
    // Durability of the test primary does not matter; the file's bytes after a commit do.
    this.db.pragma('synchronous = OFF');
    this.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX t_k ON t(k);');
    this.rng = seededRandom(opts.seed ?? 1);
  }

  close(): void {
    this.db.close();
  }

  /** One random write transaction (inserts, updates, deletes, sometimes VACUUM), then its L0 file. */
  async commit(): Promise<LtxFileInfo> {
    const r = this.rng;
    const count = (this.db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n;
    const roll = r();
    if (roll < 0.03 && count > 20) {
      this.db.exec('DELETE FROM t WHERE id % 3 = 0');
      this.db.exec('VACUUM');
    } else {
      const insert = this.db.prepare('INSERT INTO t (k, v) VALUES (?, ?)');
      const update = this.db.prepare('UPDATE t SET v = ?, k = ? WHERE id = ?');
      const remove = this.db.prepare('DELETE FROM t WHERE id = ?');
      this.db.transaction(() => {
        const n = 1 + Math.floor(r() * 5);
        for (let i = 0; i < n; i++) {
          const blob = Buffer.alloc(10 + Math.floor(r() * 1500), Math.floor(r() * 256));
          const what = r();
          if (what < 0.6 || count < 10) insert.run(`k${Math.floor(r() * 1e6)}`, blob);
          else if (what < 0.9) update.run(blob, `u${Math.floor(r() * 1e6)}`, 1 + Math.floor(r() * count));
          else remove.run(1 + Math.floor(r() * count));
        }
        insert.run(`always${this.txid}`, Buffer.from([1, 2, 3]));
      })();
    }
    return this.publish();
  }

  private async publish(): Promise<LtxFileInfo> {
    const image = new Uint8Array(readFileSync(this.path));
    const txid = this.txid + 1;
    const timestamp = this.opts.now();
    const info = await writeLtxFile(
      this.opts.client,
      { level: 0, minTxid: txid, maxTxid: txid },
      {
        pageSize: this.pageSize,
        commit: image.length / this.pageSize,
        timestamp,
        pages: imagePages(image, this.pageSize, this.images.get(this.txid)),
      },
    );
    this.txid = txid;
    this.images.set(txid, image);
    const file = { ...info, createdAt: new Date(timestamp) };
    this.l0.push(file);
    return file;
  }

  /** What the replicator's takeSnapshot does: the current image as `1-N` at L9. */
  readonly takeSnapshot = async (): Promise<LtxFileInfo | null> => {
    if (this.txid === 0) return null;
    const image = defined(this.images.get(this.txid));
    const timestamp = this.opts.now();
    const info = await writeLtxFile(
      this.opts.client,
      { level: 9, minTxid: 1, maxTxid: this.txid },
      {
        pageSize: this.pageSize,
        commit: image.length / this.pageSize,
        timestamp,
        pages: imagePages(image, this.pageSize),
      },
    );
    const file = { ...info, createdAt: new Date(timestamp) };
    this.snapshots.push(file);
    return file;
  };
}

/** Every level's listing. */
export async function listAll(client: ReplicaClient): Promise<Map<number, LtxFileInfo[]>> {
  const out = new Map<number, LtxFileInfo[]>();
  for (const level of await client.levels()) out.set(level, await client.listFiles(level));
  return out;
}

/**
 * Litestream's CalcRestorePlan (ltx-and-litestream.md 2.6), written here independently of the
 * project's planner: newest snapshot <= target, then repeatedly the contiguous file reaching
 * furthest (ties: smaller min, higher level). Must land exactly on the target.
 */
export function planForTest(listing: Map<number, LtxFileInfo[]>, target: Txid): LtxFileInfo[] {
  const plan: LtxFileInfo[] = [];
  let cur = 0;
  const snapshot = (listing.get(9) ?? [])
    .filter((f) => f.maxTxid <= target)
    .sort((a, b) => b.maxTxid - a.maxTxid)[0];
  if (snapshot) {
    plan.push(snapshot);
    cur = snapshot.maxTxid;
  }
  while (cur < target) {
    let best: LtxFileInfo | undefined;
    for (let level = 8; level >= 0; level--) {
      for (const f of listing.get(level) ?? []) {
        if (f.minTxid > cur + 1 || f.maxTxid <= cur || f.maxTxid > target) continue;
        if (!best || f.maxTxid > best.maxTxid || (f.maxTxid === best.maxTxid && f.minTxid < best.minTxid))
          best = f;
      }
    }
    if (!best || (plan.length === 0 && best.minTxid !== 1)) break;
    plan.push(best);
    cur = best.maxTxid;
  }
  if (cur !== target || plan.length === 0) {
    throw new LtxvfsError(
      'TXID_NOT_AVAILABLE',
      `TXID ${formatTxid(target)} is not available (reached ${formatTxid(cur)})`,
    );
  }
  return plan;
}

/** Restores by decoding each planned file and applying its pages in order. */
export type DecodeCache = Map<string, ReturnType<typeof decodeLtxFile>>;

export async function restoreForTest(
  client: ReplicaClient,
  listing: Map<number, LtxFileInfo[]>,
  target: Txid,
  cache: DecodeCache = new Map(),
): Promise<{ image: Uint8Array; files: LtxFileInfo[] }> {
  const files = planForTest(listing, target);
  let pageSize = 0;
  let commit = 0;
  const pages = new Map<number, Uint8Array>();
  for (const f of files) {
    const key = `${f.level}/${f.minTxid}-${f.maxTxid}`;
    let decoded = cache.get(key);
    if (!decoded) {
      decoded = decodeLtxFile(await client.readFile(f), { verify: true });
      cache.set(key, decoded);
    }
    pageSize = decoded.header.pageSize;
    commit = decoded.header.commit;
    for (const p of decoded.pages) pages.set(p.pgno, p.data);
  }
  const image = new Uint8Array(commit * pageSize);
  for (const [pgno, data] of pages) if (pgno <= commit) image.set(data, (pgno - 1) * pageSize);
  return { image, files };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return (
    a.length === b.length &&
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.length),
      Buffer.from(b.buffer, b.byteOffset, b.length),
    ) === 0
  );
}
