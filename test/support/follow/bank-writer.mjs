// The primary's application for the follow tests: every transaction moves money between a row
// of table a and a row of table b (so sum(a) + sum(b) never changes), bumps meta.n, and adds or
// removes a blob in table log so the file grows and (auto_vacuum = FULL) shrinks.
// argv: <dbPath> <pauseMs>. Runs until SIGTERM; prints {"transactions": N} on exit.
import Database from 'better-sqlite3';

const [dbPath, pauseText] = process.argv.slice(2);
const pauseMs = Number(pauseText ?? '5');
const db = new Database(dbPath);
db.pragma('busy_timeout = 10000');
db.pragma('journal_mode = WAL');
const accounts = db.prepare('SELECT count(*) AS n FROM a').get().n;
let seed = 12345;
const rand = (n) => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed % n;
};
const moveA = db.prepare('UPDATE a SET bal = bal - ? WHERE id = ?');
const moveB = db.prepare('UPDATE b SET bal = bal + ? WHERE id = ?');
const bump = db.prepare('UPDATE meta SET n = n + 1');
const addLog = db.prepare('INSERT INTO log (v) VALUES (randomblob(?))');
const dropLog = db.prepare('DELETE FROM log WHERE id IN (SELECT id FROM log ORDER BY id LIMIT ?)');
const tx = db.transaction(() => {
  const amount = rand(100) - 50;
  moveA.run(amount, 1 + rand(accounts));
  moveB.run(amount, 1 + rand(accounts));
  bump.run();
  const r = rand(10);
  if (r < 6) addLog.run(200 + rand(6000));
  else if (r < 8) dropLog.run(1 + rand(8));
});
let count = 0;
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
});
while (!stopping) {
  tx.immediate();
  count++;
  await new Promise((r) => setTimeout(r, pauseMs));
}
db.close();
process.stdout.write(`${JSON.stringify({ transactions: count })}\n`);
