// An application for the --exec suites: writes one row per transaction every few milliseconds
// into t(id, v) until <stopFile> exists, then closes and exits 0. argv: <dbPath> <stopFile>.
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';

const [dbPath, stopFile] = process.argv.slice(2);
const db = new Database(dbPath);
db.pragma('busy_timeout = 5000');
db.pragma('journal_mode = WAL');
const insert = db.prepare('INSERT INTO t(v) VALUES (?)');
let n = 0;
const timer = setInterval(() => {
  if (existsSync(stopFile)) {
    clearInterval(timer);
    db.close();
    process.stdout.write(`steady-writer: ${n} rows\n`);
    process.exit(0);
  }
  n++;
  insert.run(`row-${n}-${'x'.repeat(200)}`);
}, 5);
