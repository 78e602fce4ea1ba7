import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { encodeLtxFile, litestreamHeader } from '../../src/ltx/index.js';
import { formatTxid } from '../../src/util/txid.js';

/*
 * A file replica of `files` L0 files, what `replicate --once` from cron leaves behind: TXID 1 holds
 * a real SQLite database (one table, one row), each later TXID rewrites the row's value to its own
 * TXID in 8 digits (page 2 only). Written with the LTX library straight into the directory layout
 * (no fsync per file), so 50,000 files take seconds.
 */

export interface ManyFileReplica {
  /** The image at TXID n (page 2 patched). */
  imageAt(txid: number): Uint8Array;
  /** Writes the L0 file of one more TXID (to test a poll). */
  append(txid: number): void;
  pageSize: number;
}

const PAGE_SIZE = 4096;

export function makeManyFileReplica(dir: string, files: number, scratch: string): ManyFileReplica {
  const dbPath = join(scratch, 'many-files-source.db');
  rmSync(dbPath, { force: true });
  const db = new Database(dbPath);
  db.pragma('journal_mode = DELETE');
  db.pragma(`page_size = ${PAGE_SIZE}`);
  db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('00000001')");
  db.close();
  const base = new Uint8Array(readFileSync(dbPath));
  const marker = Buffer.from('00000001');
  const at = Buffer.from(base).indexOf(marker, PAGE_SIZE);
  if (base.length !== 2 * PAGE_SIZE || at < PAGE_SIZE) throw new Error('unexpected source database layout');
  const level0 = join(dir, 'ltx', '0');
  mkdirSync(level0, { recursive: true });
  const t0 = Date.UTC(2026, 0, 1);
  const imageAt = (txid: number): Uint8Array => {
    const image = new Uint8Array(base);
    image.set(Buffer.from(String(txid).padStart(8, '0')), at);
    return image;
  };
  const write = (txid: number): void => {
    const image = imageAt(txid);
    const pages =
      txid === 1
        ? [
            { pgno: 1, data: image.subarray(0, PAGE_SIZE) },
            { pgno: 2, data: image.subarray(PAGE_SIZE) },
          ]
        : [{ pgno: 2, data: image.subarray(PAGE_SIZE) }];
    const header = litestreamHeader({
      pageSize: PAGE_SIZE,
      commit: 2,
      minTxid: txid,
      maxTxid: txid,
      timestamp: t0 + txid * 1000,
    });
    writeFileSync(join(level0, `${formatTxid(txid)}-${formatTxid(txid)}.ltx`), encodeLtxFile(header, pages));
  };
  for (let txid = 1; txid <= files; txid++) write(txid);
  return { imageAt, append: write, pageSize: PAGE_SIZE };
}
