// A reader of the followed file (better-sqlite3): queries the bank invariant in a loop, checks
// PRAGMA integrity_check every few reads, reopens now and then. argv: <dbPath> <total>.
// Until SIGTERM; then prints a JSON summary on stdout.
import Database from 'better-sqlite3';

const [dbPath, totalText] = process.argv.slice(2);
const total = Number(totalText);
const summary = {
  reads: 0,
  torn: 0,
  integrityChecks: 0,
  integrityFailures: 0,
  backwards: 0,
  distinctN: 0,
  errors: [],
};
const seen = new Set();
let lastN = -1;
let db;
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});
const open = () => {
  const d = new Database(dbPath);
  d.pragma('busy_timeout = 20000');
  return d;
};
while (!stopping) {
  try {
    if (db === undefined || summary.reads % 50 === 0) {
      db?.close();
      db = open();
    }
    const row = db
      .prepare(
        'SELECT (SELECT sum(bal) FROM a) + (SELECT sum(bal) FROM b) AS total, (SELECT n FROM meta) AS n',
      )
      .get();
    summary.reads++;
    if (row.total !== total) summary.torn++;
    if (row.n < lastN) summary.backwards++;
    lastN = row.n;
    seen.add(row.n);
    if (summary.reads % 10 === 0) {
      summary.integrityChecks++;
      if (db.pragma('integrity_check', { simple: true }) !== 'ok') summary.integrityFailures++;
    }
  } catch (err) {
    if (summary.errors.length < 20) summary.errors.push(String(err?.message ?? err));
    db?.close();
    db = undefined;
  }
  await new Promise((r) => setImmediate(r));
}
db?.close();
summary.distinctN = seen.size;
process.stdout.write(`${JSON.stringify(summary)}\n`);
