import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { decodeLtxFile, encodeLtxFile, type LtxHeader } from '../src/ltx/index.js';
import type { LtxFileInfo, ReplicaClient } from '../src/storage/types.js';
import { LtxvfsError } from '../src/util/errors.js';
import { formatTxid, type Txid } from '../src/util/txid.js';

/*
 * Test support for compaction suites: a primary database written by real SQLite (better-sqlite3,
 * rollback-journal mode so the file on disk IS the database image after every commit), turned
 * into L0 files the way the replicator does (TXID 1 = every page, then changed + growth pages),
 * and an independent restore (Litestream's plan + decode-and-apply, no compactor involved).
 */

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ltxHeader(
  pageSize: number,
  commit: number,
  minTxid: Txid,
  maxTxid: Txid,
  timestamp: number,
): LtxHeader {
  return {
    flags: 2,
    pageSize,
    commit,
    minTxid,
    maxTxid,
    timestamp,
    preApplyChecksum: 0n,
    walOffset: 0,
    walSize: 0,
    walSalt1: 0,
    walSalt2: 0,
    nodeId: 0n,
  };
}

function pagesOf(image: Uint8Array, pageSize: number): Uint8Array[] {
  const pages: Uint8Array[] = [];
  for (let at = 0; at < image.length; at += pageSize) pages.push(image.subarray(at, at + pageSize));
  return pages;
}

function samePage(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

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
  private previous: Uint8Array[] = [];

  constructor(private readonly opts: PrimaryOptions) {
    this.pageSize = opts.pageSize ?? 1024;
    this.path = join(opts.dir, 'primary.db');
    this.db = new Database(this.path);
    this.db.pragma(`page_size = ${this.pageSize}`);
    this.db.pragma('journal_mode = DELETE');
    // Durability of the test primary does not matter; the file's bytes after a commit do.
    this.db.pragma('synchronous = OFF');
    this.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT, v BLOB); CREATE INDEX t_k ON t(k);');
    this.rng = mulberry32(opts.seed ?? 1);
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
    const pages = pagesOf(image, this.pageSize);
    const txid = this.txid + 1;
    const changed: Array<{ pgno: number; data: Uint8Array }> = [];
    pages.forEach((data, i) => {
      if (txid === 1 || !samePage(this.previous[i], data)) changed.push({ pgno: i + 1, data });
    });
    const timestamp = this.opts.now();
    const bytes = encodeLtxFile(ltxHeader(this.pageSize, pages.length, txid, txid, timestamp), changed);
    const info = await this.opts.client.writeFile({ level: 0, minTxid: txid, maxTxid: txid }, bytes, {
      timestamp: new Date(timestamp),
    });
    this.txid = txid;
    this.previous = pages.map((p) => p.slice());
    this.images.set(txid, image);
    const file = { ...info, createdAt: new Date(timestamp) };
    this.l0.push(file);
    return file;
  }

  /** What the replicator's takeSnapshot does: the current image as `1-N` at L9. */
  readonly takeSnapshot = async (): Promise<LtxFileInfo | null> => {
    if (this.txid === 0) return null;
    const image = this.images.get(this.txid)!;
    const pages = pagesOf(image, this.pageSize).map((data, i) => ({ pgno: i + 1, data }));
    const timestamp = this.opts.now();
    const bytes = encodeLtxFile(ltxHeader(this.pageSize, pages.length, 1, this.txid, timestamp), pages);
    const info = await this.opts.client.writeFile({ level: 9, minTxid: 1, maxTxid: this.txid }, bytes, {
      timestamp: new Date(timestamp),
    });
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
