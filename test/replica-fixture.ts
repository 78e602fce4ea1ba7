/**
 * Builds replicas for the read-side tests from a real SQLite database: every TXID's database
 * image is the file better-sqlite3 left on disk (rollback journal, so the file IS the image after
 * each commit), and the LTX files are made with the LTX encoder from the pages that changed.
 * The images are the independent oracle the replica's page reads are compared with.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  decodeLtxFile,
  encodeLtxFile,
  type LtxHeader,
  lockPgno,
  type PageEncoding,
} from '../src/ltx/index.js';
import type { LtxFileInfo, LtxFileRef, ReplicaClient } from '../src/storage/types.js';
import type { Txid } from '../src/util/txid.js';

export function pagesOf(image: Uint8Array, pageSize: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0; off < image.length; off += pageSize) out.push(image.subarray(off, off + pageSize));
  return out;
}

function header(
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

export class TestPrimary {
  readonly db: Database.Database;
  readonly dbPath: string;
  readonly pageSize: number;
  /** The database image at each TXID written so far. */
  readonly images = new Map<Txid, Uint8Array>();
  readonly files: LtxFileInfo[] = [];
  txid = 0;
  /** Header timestamps advance one second per TXID from here, so time targets are deterministic. */
  clock = Date.UTC(2026, 0, 1);

  constructor(
    readonly client: ReplicaClient,
    dir: string,
    options: { pageSize?: number; encoding?: PageEncoding } = {},
  ) {
    this.pageSize = options.pageSize ?? 4096;
    this.encoding = options.encoding ?? 'lz4-block';
    this.dbPath = join(dir, 'primary.db');
    this.db = new Database(this.dbPath);
    this.db.pragma(`page_size = ${this.pageSize}`);
    this.db.pragma('journal_mode = DELETE');
  }

  private readonly encoding: PageEncoding;

  image(): Uint8Array {
    return new Uint8Array(readFileSync(this.dbPath));
  }

  /** Writes the next TXID as an L0 file: every page for TXID 1, else changed + growth pages. */
  async sync(level = 0): Promise<LtxFileInfo> {
    const image = this.image();
    const prev = this.images.get(this.txid);
    const txid = this.txid + 1;
    const pages = pagesOf(image, this.pageSize);
    const prevPages = prev ? pagesOf(prev, this.pageSize) : [];
    const lock = lockPgno(this.pageSize);
    const changed: Array<{ pgno: number; data: Uint8Array }> = [];
    pages.forEach((data, i) => {
      const pgno = i + 1;
      if (pgno === lock) return;
      const before = prevPages[i];
      if (before === undefined || Buffer.compare(before, data) !== 0) changed.push({ pgno, data });
    });
    const file = await this.put(level, txid, txid, pages.length, changed);
    this.txid = txid;
    this.images.set(txid, image);
    return file;
  }

  /** A full snapshot `1-<txid>` at level 9 of the current TXID's image. */
  async snapshot(): Promise<LtxFileInfo> {
    const image = this.images.get(this.txid)!;
    const pages = pagesOf(image, this.pageSize);
    const lock = lockPgno(this.pageSize);
    const all = pages.map((data, i) => ({ pgno: i + 1, data })).filter((p) => p.pgno !== lock);
    return this.put(9, 1, this.txid, pages.length, all);
  }

  /** Merges the files of `level - 1` covering min..max into one file at `level` (newest page wins). */
  async compact(level: number, inputs: LtxFileInfo[]): Promise<LtxFileInfo> {
    const merged = new Map<number, Uint8Array>();
    let commit = 0;
    for (const f of inputs) {
      const decoded = decodeLtxFile(await this.client.readFile(f));
      for (const p of decoded.pages) merged.set(p.pgno, p.data);
      commit = decoded.header.commit;
    }
    const pages = [...merged.entries()]
      .filter(([pgno]) => pgno <= commit)
      .sort((a, b) => a[0] - b[0])
      .map(([pgno, data]) => ({ pgno, data }));
    return this.put(level, inputs[0].minTxid, inputs[inputs.length - 1].maxTxid, commit, pages);
  }

  private async put(
    level: number,
    minTxid: Txid,
    maxTxid: Txid,
    commit: number,
    pages: Array<{ pgno: number; data: Uint8Array }>,
  ): Promise<LtxFileInfo> {
    const timestamp = this.clock + maxTxid * 1000;
    const bytes = encodeLtxFile(header(this.pageSize, commit, minTxid, maxTxid, timestamp), pages, {
      encoding: this.encoding,
    });
    const info = await this.client.writeFile({ level, minTxid, maxTxid }, bytes, {
      timestamp: new Date(timestamp),
    });
    this.files.push(info);
    return info;
  }

  async remove(files: LtxFileRef[]): Promise<void> {
    await this.client.deleteFiles(files);
  }

  close(): void {
    this.db.close();
  }
}

/** Fills `rows` rows of ~`rowBytes` bytes each into table t(id INTEGER PRIMARY KEY, v TEXT). */
export function fillTable(db: Database.Database, rows: number, rowBytes = 100, startId = 1): void {
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  db.transaction(() => {
    for (let i = 0; i < rows; i++) {
      const id = startId + i;
      insert.run(id, `row-${id}-`.padEnd(rowBytes, String.fromCharCode(97 + (id % 26))));
    }
  })();
}
