/**
 * The rollback journal the follower writes is SQLite's own format: SQLite (better-sqlite3) must
 * play it back as a hot journal, and FollowedFile.apply must move a real database file from one
 * state to another the way a SQLite commit does. The states are files better-sqlite3 wrote.
 */
import {
  closeSync,
  copyFileSync,
  existsSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FollowedFile, journalPath } from '../src/follow/followed-file.js';
import { journalHeader, journalRecord, recordChecksum } from '../src/follow/journal.js';
import { patchPageOne } from '../src/replica/page-one.js';
import { makeTempDir, type TempDir } from './support/tmp.js';

const PAGE = 4096;
let tmp: TempDir;

beforeAll(async () => {
  tmp = await makeTempDir('ltxvfs-follow-journal-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

/** A rollback-mode database written by SQLite; returns its bytes after each step. */
function makeStates(path: string, steps: Array<(db: Database.Database) => void>): Uint8Array[] {
  const db = new Database(path);
  db.pragma(`page_size = ${PAGE}`);
  db.pragma('auto_vacuum = FULL');
  db.pragma('journal_mode = DELETE');
  const out: Uint8Array[] = [];
  for (const step of steps) {
    step(db);
    out.push(new Uint8Array(readFileSync(path)));
  }
  db.close();
  return out;
}

function sumOf(path: string): { rows: number; sum: number; ok: string } {
  const db = new Database(path);
  try {
    const r = db.prepare('SELECT count(*) AS rows, coalesce(sum(length(v)), 0) AS sum FROM t').get() as {
      rows: number;
      sum: number;
    };
    return { ...r, ok: String(db.pragma('integrity_check', { simple: true })) };
  } finally {
    db.close();
  }
}

const steps = [
  (db: Database.Database) => {
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)');
    const ins = db.prepare('INSERT INTO t (v) VALUES (randomblob(?))');
    db.transaction(() => {
      for (let i = 0; i < 300; i++) ins.run(500);
    })();
  },
  (db: Database.Database) => {
    const ins = db.prepare('INSERT INTO t (v) VALUES (randomblob(?))');
    db.transaction(() => {
      for (let i = 0; i < 300; i++) ins.run(700);
      db.exec('UPDATE t SET v = randomblob(300) WHERE id % 7 = 0');
    })();
  },
  (db: Database.Database) => {
    db.exec('DELETE FROM t WHERE id > 100');
  },
];

describe('rollback journal format', () => {
  it('records carry SQLite checksums: nonce plus every 200th byte from pageSize - 200 down', () => {
    const page = new Uint8Array(1024);
    page[824] = 5;
    page[624] = 7;
    page[24] = 11;
    page[0] = 99; // not sampled: the loop stops above 0
    page[825] = 100; // not sampled
    expect(recordChecksum(page, 1000)).toBe(1000 + 5 + 7 + 11);
    expect(recordChecksum(page, 0xffffffff)).toBe((0xffffffff + 23) % 0x1_0000_0000);
  });

  it('a journal of the old pages is played back by SQLite as a hot journal after a torn write', () => {
    const path = join(tmp.dir, 'hot.db');
    const [, second] = makeStates(path, steps.slice(0, 2));
    const before = second as Uint8Array;
    const pages = before.length / PAGE;
    const nonce = 0x12345678;
    // Journal pages 1, 2 and the last one, as an apply would before overwriting them.
    const saved = [1, 2, pages].map((pgno) => ({
      pgno,
      data: before.subarray((pgno - 1) * PAGE, pgno * PAGE),
    }));
    const journal = Buffer.concat([
      journalHeader(saved.length, nonce, pages, PAGE),
      ...saved.map((p) => journalRecord(p, nonce)),
    ]);
    writeFileSync(journalPath(path), journal);
    // The torn apply: garbage over the journaled pages and growth past the old end.
    const fd = openSync(path, 'r+');
    for (const { pgno } of saved) writeSync(fd, new Uint8Array(PAGE).fill(0xab), 0, PAGE, (pgno - 1) * PAGE);
    writeSync(fd, new Uint8Array(PAGE * 3).fill(0xcd), 0, PAGE * 3, pages * PAGE);
    closeSync(fd);

    const state = sumOf(path); // opening the file rolls the journal back
    expect(existsSync(journalPath(path))).toBe(false);
    expect(state.ok).toBe('ok');
    expect(state.rows).toBe(600);
    expect(Buffer.compare(readFileSync(path), Buffer.from(before))).toBe(0);
  });
});

describe('FollowedFile.apply', () => {
  function toChange(image: Uint8Array, counter: number) {
    const commit = image.length / PAGE;
    const pgnos = Array.from({ length: commit }, (_, i) => i + 1);
    const page = (pgno: number) => {
      const bytes = image.slice((pgno - 1) * PAGE, pgno * PAGE);
      return pgno === 1 ? patchPageOne(bytes, counter, commit) : bytes;
    };
    return { pageSize: PAGE, commit, pgnos, page };
  }

  it('moves a real database through growth and shrink, readable by SQLite after each step, no journal left', () => {
    const source = join(tmp.dir, 'states.db');
    const states = makeStates(source, steps);
    const path = join(tmp.dir, 'followed.db');
    const first = states[0] as Uint8Array;
    writeFileSync(path, toChange(first, 1).page(1));
    writeFileSync(path, Buffer.concat([toChange(first, 1).page(1), first.subarray(PAGE)]));
    const file = new FollowedFile(path, 1000);
    try {
      const expected = [600, 100];
      for (const [i, image] of states.slice(1).entries()) {
        const change = toChange(image, i + 2);
        const timing = file.apply(change, PAGE);
        expect(existsSync(journalPath(path))).toBe(false);
        expect(timing.journaled).toBeGreaterThan(0);
        const bytes = readFileSync(path);
        expect(bytes.length).toBe(image.length);
        expect(Buffer.compare(bytes.subarray(PAGE), Buffer.from(image.subarray(PAGE)))).toBe(0);
        expect(bytes.readUInt32BE(24)).toBe(i + 2);
        expect(bytes[18]).toBe(1);
        const copy = join(tmp.dir, `copy-${i}.db`);
        copyFileSync(path, copy);
        const state = sumOf(copy);
        expect(state.ok).toBe('ok');
        expect(state.rows).toBe(expected[i]);
      }
    } finally {
      file.close();
    }
  });
});
