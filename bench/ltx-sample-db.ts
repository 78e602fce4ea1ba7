import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/**
 * A realistic SQLite database for LTX codec measurements and tests: rows of text, integers and
 * JSON with secondary indexes, built by better-sqlite3 (rollback journal, so the file is the
 * whole database). Deterministic for a given size.
 */
export interface SampleDatabase {
  pageSize: number;
  pages: Array<{ pgno: number; data: Uint8Array }>;
  bytes: Uint8Array;
}

const WORDS =
  'alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu replica snapshot transaction page index cursor vacuum journal checkpoint'.split(
    ' ',
  );

export function buildSampleDatabase(options: { users?: number; pageSize?: number } = {}): SampleDatabase {
  const users = options.users ?? 20_000;
  const pageSize = options.pageSize ?? 4096;
  const dir = mkdtempSync(join(tmpdir(), 'ltx-sample-'));
  const path = join(dir, 'sample.db');
  try {
    const db = new Database(path);
    db.pragma(`page_size = ${pageSize}`);
    db.pragma('journal_mode = DELETE');
    db.exec(`
      CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL, age INTEGER,
                          balance REAL, bio TEXT, created_at INTEGER);
      CREATE UNIQUE INDEX users_email ON users(email);
      CREATE INDEX users_age_created ON users(age, created_at);
      CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), kind TEXT,
                           payload TEXT, ts INTEGER);
      CREATE INDEX events_user_ts ON events(user_id, ts);
    `);
    let seed = 0x2545f491;
    const rand = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const words = (n: number) => Array.from({ length: n }, () => WORDS[rand(WORDS.length)]).join(' ');
    const insertUser = db.prepare('INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)');
    const insertEvent = db.prepare('INSERT INTO events (user_id, kind, payload, ts) VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (let id = 1; id <= users; id++) {
        const name = `${WORDS[rand(WORDS.length)]} ${WORDS[rand(WORDS.length)]}`;
        insertUser.run(
          id,
          name,
          `${name.replace(' ', '.')}.${id}@example.com`,
          18 + rand(70),
          rand(1_000_000) / 100,
          words(3 + rand(12)),
          1_600_000_000 + rand(100_000_000),
        );
        for (let e = rand(3); e > 0; e--) {
          const payload = JSON.stringify({
            ip: `10.${rand(256)}.${rand(256)}.${rand(256)}`,
            ok: rand(2) === 1,
            note: words(2),
          });
          insertEvent.run(id, WORDS[rand(8)], payload, 1_700_000_000 + rand(10_000_000));
        }
      }
    })();
    db.close();
    const bytes = new Uint8Array(readFileSync(path));
    const pages = [];
    for (let i = 0; i * pageSize < bytes.length; i++) {
      pages.push({ pgno: i + 1, data: bytes.subarray(i * pageSize, (i + 1) * pageSize) });
    }
    return { pageSize, pages, bytes };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
