/**
 * Builds replicas for the read-side tests from a real SQLite database: every TXID's database
 * image is the file better-sqlite3 left on disk (rollback journal, so the file IS the image after
 * each commit), and the LTX files are made with the LTX encoder from the pages that changed.
 * The images are the independent oracle the replica's page reads are compared with.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { imagePages, type LtxPage, writeLtxFile } from '../../bench/support/ltx-images.js';
import { decodeLtxFile, type PageEncoding } from '../../src/ltx/index.js';
import type { LtxFileInfo, LtxFileRef, ReplicaClient } from '../../src/storage/types.js';
import type { Txid } from '../../src/util/txid.js';
import { defined } from './defined.js';

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
    const txid = this.txid + 1;
    const pages = imagePages(image, this.pageSize, this.images.get(this.txid));
    const file = await this.put(level, txid, txid, image.length / this.pageSize, pages);
    this.txid = txid;
    this.images.set(txid, image);
    return file;
  }

  /** A full snapshot `1-<txid>` at level 9 of the current TXID's image. */
  async snapshot(): Promise<LtxFileInfo> {
    const image = defined(this.images.get(this.txid));
    return this.put(9, 1, this.txid, image.length / this.pageSize, imagePages(image, this.pageSize));
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
    return this.put(
      level,
      defined(inputs[0]).minTxid,
      defined(inputs[inputs.length - 1]).maxTxid,
      commit,
      pages,
    );
  }

  private async put(
    level: number,
    minTxid: Txid,
    maxTxid: Txid,
    commit: number,
    pages: LtxPage[],
  ): Promise<LtxFileInfo> {
    const info = await writeLtxFile(
      this.client,
      { level, minTxid, maxTxid },
      {
        pageSize: this.pageSize,
        commit,
        timestamp: this.clock + maxTxid * 1000,
        pages,
        encoding: this.encoding,
      },
    );
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
