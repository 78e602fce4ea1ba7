import { existsSync, statSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import Database from 'better-sqlite3';
import { INSERT_REVIEW, makeReview, REVIEWS_SCHEMA, seededRandom } from '../src/demo/reviews.js';

/** A benchmark database: sandwich reviews, filled to about `targetBytes`. */
export interface Dataset {
  name: string;
  path: string;
  bytes: number;
  rows: number;
  pageSize: number;
}

/** Bytes per review row including its share of the index, measured on this schema. */
const APPROX_ROW_BYTES = 221;

/**
 * Builds the database once (reused when it is already there with the same name), in
 * rollback-journal mode so the file is complete on its own; the replicator switches to WAL.
 */
export async function makeDataset(dir: string, name: string, targetBytes: number): Promise<Dataset> {
  const file = `${dir}/${name}.db`;
  if (!existsSync(file)) {
    const temp = `${file}.building`;
    await rm(temp, { force: true });
    const db = new Database(temp);
    db.pragma('journal_mode = OFF');
    db.pragma('synchronous = OFF');
    db.exec(REVIEWS_SCHEMA);
    const insert = db.prepare(INSERT_REVIEW);
    const random = seededRandom(targetBytes % 2147483647);
    const totalRows = Math.max(1000, Math.round(targetBytes / APPROX_ROW_BYTES));
    const batch = db.transaction((from: number, count: number) => {
      for (let i = 0; i < count; i++)
        insert.run(makeReview(random, 1_700_000_000_000 + (from + i) * 1000, 4));
    });
    for (let done = 0; done < totalRows; done += 50_000) batch(done, Math.min(50_000, totalRows - done));
    db.close();
    await rename(temp, file);
  }
  const db = new Database(file, { readonly: true });
  const rows = (db.prepare('SELECT count(*) AS n FROM reviews').get() as { n: number }).n;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  return { name, path: file, bytes: statSync(file).size, rows, pageSize };
}
