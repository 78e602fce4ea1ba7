// A stand-in application for the replicator tests: a separate process that owns its own
// better-sqlite3 connection and runs the SQL the test sends over IPC, one message at a time.
// argv: <dbPath> <pageSize>. Messages: { id, sql } -> { id, ok } | { id, error }.
import Database from 'better-sqlite3';

const [dbPath, pageSize] = process.argv.slice(2);
let db = open();

function open() {
  const d = new Database(dbPath);
  d.pragma('busy_timeout = 5000');
  if (pageSize) d.pragma(`page_size = ${Number(pageSize)}`);
  d.pragma('journal_mode = WAL');
  return d;
}

process.on('message', (msg) => {
  try {
    if (msg.reopen) {
      db.close();
      db = open();
    } else if (msg.close) {
      db.close();
    } else {
      db.exec(msg.sql);
    }
    process.send({ id: msg.id, ok: true });
  } catch (err) {
    process.send({ id: msg.id, error: String(err?.message ?? err) });
  }
});
process.send({ ready: true });
