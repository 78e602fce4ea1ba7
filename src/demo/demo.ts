import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type Database from 'better-sqlite3';
import { createLtx, type Ltx } from '../../vfs/index.js';
import type { HydrationStatus } from '../replica/port.js';
import { Replica } from '../replica/replica.js';
import { loadBetterSqlite3 } from '../util/better-sqlite3.js';
import { LtxvfsError } from '../util/errors.js';
import { formatTxid, type Txid } from '../util/txid.js';
import { Replicator } from '../writer/replicator.js';
import { INSERT_REVIEW, makeReview, REVIEWS_SCHEMA, seededRandom, stars } from './reviews.js';

export interface DemoOptions {
  durationMs: number;
  keep: boolean;
  /** Use this directory (created if missing) instead of a fresh temp dir. */
  dir?: string;
  writeIntervalMs: number;
  out: (line: string) => void;
}

interface ReviewRow {
  id: number;
  sandwich: string;
  reviewer: string;
  rating: number;
  body: string;
  created_at: number;
}

const SEED_REVIEWS = 20_000;
const NEWEST_REVIEW = 'SELECT * FROM reviews ORDER BY id DESC LIMIT 1';
const REVIEW_BY_ID = 'SELECT * FROM reviews WHERE id = ?';
const REVISED_REVIEW_ID = 1;

/** One review in a line: who, what, how many stars. */
function headline(r: ReviewRow): string {
  return `#${r.id} ${r.sandwich} ${stars(r.rating)} by ${r.reviewer}`;
}

/** The same with the review's text. */
function fullReview(r: ReviewRow): string {
  return `#${r.id} ${r.sandwich} ${stars(r.rating)} by ${r.reviewer}: "${r.body}"`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * `ltxvfs demo`: the whole story in one process, on the embedded default (a local directory as
 * the replica store). A sandwich-review app writes to its SQLite database while the real
 * replicator ships every commit as an LTX file; a read replica opened with
 * `file:replica.db?vfs=ltx` follows it, says what it sees and how far behind it is, answers a
 * question about the past, and hydrates a local copy in the background.
 */
export async function runDemo(options: DemoOptions): Promise<void> {
  const { out } = options;
  const started = performance.now();
  const elapsed = () => performance.now() - started;
  const say = (who: string, text: string) =>
    out(`[${(elapsed() / 1000).toFixed(1).padStart(5)}s] ${who.padEnd(9)} ${text}`);

  const dir = options.dir ? path.resolve(options.dir) : await mkdtemp(path.join(os.tmpdir(), 'ltxvfs-demo-'));
  await mkdir(dir, { recursive: true });
  if (options.dir && (await readdir(dir)).length > 0) {
    throw new LtxvfsError('BAD_ARGUMENT', `--dir ${dir} is not empty: the demo needs a fresh directory`);
  }
  const dbPath = path.join(dir, 'sandwiches.db');
  const replicaDir = path.join(dir, 'replica');
  const hydratePath = path.join(dir, 'reader-copy.db');

  out('ltxvfs demo: a sandwich-review app, its replicator, and a live read replica');
  out(`  primary  ${dbPath}  (better-sqlite3, WAL mode)`);
  out(`  replica  ${replicaDir}  (LTX files, Litestream's layout: ltx/<level>/<min>-<max>.ltx)`);
  out(
    `  reader   file:replica.db?vfs=ltx  (wa-sqlite + the ltx VFS, hydrating into ${path.basename(hydratePath)})`,
  );
  out('');

  let replicator: Replicator | undefined;
  let primary: Database.Database | undefined;
  let ltx: Ltx | undefined;
  let writer: NodeJS.Timeout | undefined;
  let revisedBefore: { txid: Txid; row: ReviewRow } | undefined;
  let historyShown = false;
  let failed = false;
  // Ctrl-C ends the story early, but still the clean way: final sync, check, clean up.
  let interrupted = false;
  const onInterrupt = () => {
    interrupted = true;
    say('demo', 'interrupted: finishing up');
  };
  process.on('SIGINT', onInterrupt);
  try {
    // The primary: an app database with some history already in it.
    primary = new (loadBetterSqlite3('ltxvfs demo'))(dbPath);
    primary.pragma('journal_mode = WAL');
    primary.exec(REVIEWS_SCHEMA);
    const insert = primary.prepare(INSERT_REVIEW);
    const random = seededRandom(2024);
    primary.transaction(() => {
      for (let i = 0; i < SEED_REVIEWS; i++) insert.run(makeReview(random, Date.now(), 3));
    })();
    say('primary', `seeded ${SEED_REVIEWS.toLocaleString('en-US')} reviews`);

    replicator = new Replicator({ dbPath, replica: replicaDir, syncIntervalMs: 200 });
    await replicator.start();
    const first = await replicator.sync();
    say('replicate', `first LTX file holds every page: TXID ${formatTxid(first.txid)}`);

    // A steady stream of writes, each its own commit.
    let commits = 0;
    const primaryDb = primary;
    writer = setInterval(() => {
      insert.run(makeReview(random, Date.now(), 3));
      commits++;
    }, options.writeIntervalMs);

    ltx = await createLtx();
    const openBegun = performance.now();
    const source = await ltx.registerReplica('replica.db', replicaDir, { pollIntervalMs: 250, hydratePath });
    const reader = await ltx.open('file:replica.db?vfs=ltx');
    const opened = performance.now();
    const firstRow = (await reader.get(NEWEST_REVIEW)) as unknown as ReviewRow;
    const answered = performance.now();
    say(
      'replica',
      `opened in ${Math.round(opened - openBegun)} ms, first query answered ${Math.round(answered - opened)} ms later: ${headline(firstRow)}`,
    );

    // Hydration reports its progress as it goes; show it until the local copy is complete.
    let hydrationDone = false;
    let lastProgressAt = 0;
    const onHydration = (h: HydrationStatus) => {
      if (hydrationDone) return;
      if (h.state === 'done') {
        hydrationDone = true;
        say(
          'hydrate',
          `done in ${((performance.now() - openBegun) / 1000).toFixed(1)} s: all ${h.pagesTotal} pages (${(h.bytesDownloaded / 1048576).toFixed(1)} MiB) are local; reads no longer touch the store`,
        );
      } else if (h.state === 'error') {
        hydrationDone = true;
        say('hydrate', `failed: ${h.error ?? 'unknown error'} (reads keep going to the store)`);
      } else if (
        h.state === 'running' &&
        h.pagesDone < h.pagesTotal &&
        performance.now() - lastProgressAt > 150
      ) {
        lastProgressAt = performance.now();
        const pct = h.pagesTotal > 0 ? Math.floor((100 * h.pagesDone) / h.pagesTotal) : 0;
        say(
          'hydrate',
          `${pct}% (${h.pagesDone}/${h.pagesTotal} pages) copied to ${path.basename(hydratePath)} in the background`,
        );
      }
    };
    if (source instanceof Replica) source.on('hydration', onHydration);
    onHydration(source.hydration());

    // The story, on a clock: follow, change a review, look into the past, finish.
    const duration = options.durationMs;
    const reportEveryMs = Math.max(1000, duration / 15);
    const reviseAt = duration * 0.3;
    const historyAt = duration * 0.55;
    while (elapsed() < duration && !interrupted) {
      await sleep(Math.min(reportEveryMs, Math.max(100, duration - elapsed())));
      const newest = (await reader.get(NEWEST_REVIEW)) as unknown as ReviewRow | undefined;
      const txid = await reader.pragma('ltx_txid');
      const lag = Number(await reader.pragma('ltx_lag'));
      if (newest) {
        const age = Date.now() - newest.created_at;
        say(
          'replica',
          `TXID ${String(txid)}  ${newest.id.toLocaleString('en-US')} reviews  newest ${(age / 1000).toFixed(1)} s old  ltx_lag ${lag.toFixed(2)} s  ${headline(newest)}`,
        );
      }
      if (!revisedBefore && elapsed() >= reviseAt) {
        const before = (await replicator.sync()).txid;
        const row = primaryDb
          .prepare('SELECT * FROM reviews WHERE id = ?')
          .get(REVISED_REVIEW_ID) as ReviewRow;
        const revised = row.rating === 5 ? 1 : 5;
        primaryDb
          .prepare('UPDATE reviews SET rating = ?, body = ? WHERE id = ?')
          .run(revised, 'Changed my mind after a second visit.', REVISED_REVIEW_ID);
        const after = (await replicator.sync()).txid;
        revisedBefore = { txid: before, row };
        say(
          'primary',
          `${row.reviewer} rewrites review #${REVISED_REVIEW_ID}: ${stars(row.rating)} -> ${stars(revised)} (TXID ${formatTxid(after)})`,
        );
      }
      if (revisedBefore && !historyShown && elapsed() >= historyAt) {
        const uri = `file:replica.db?vfs=ltx&txid=${formatTxid(revisedBefore.txid)}`;
        const past = await ltx.open(uri);
        const then = (await past.get(REVIEW_BY_ID, [REVISED_REVIEW_ID])) as unknown as ReviewRow;
        await past.close();
        // "Latest" must include the revision: on a busy machine the poller may not have run since.
        if (source instanceof Replica) await source.poll();
        const now = (await reader.get(REVIEW_BY_ID, [REVISED_REVIEW_ID])) as unknown as ReviewRow;
        say('history', `${uri} -> ${fullReview(then)}`);
        say('history', `${'file:replica.db?vfs=ltx (latest)'.padEnd(uri.length)} -> ${fullReview(now)}`);
        historyShown = true;
      }
    }

    clearInterval(writer);
    writer = undefined;
    const last = await replicator.sync();
    const primaryCount = (primaryDb.prepare('SELECT count(*) AS n FROM reviews').get() as { n: number }).n;
    say(
      'primary',
      `stopped writing after ${commits} commits; everything is in the replica up to TXID ${formatTxid(last.txid)}`,
    );
    if (source instanceof Replica) await source.poll();
    const final = (await reader.get('SELECT count(*) AS n FROM reviews')) as { n: number };
    const finalTxid = await reader.pragma('ltx_txid');
    const same = final.n === primaryCount;
    say(
      'replica',
      `caught up at TXID ${String(finalTxid)}: ${final.n.toLocaleString('en-US')} reviews; the primary has ${primaryCount.toLocaleString('en-US')} ${same ? '(same)' : '(DIFFERENT)'}`,
    );
    if (!historyShown)
      say('history', 'skipped: the run was too short to revise a review (use a longer --duration)');
    await reader.close();
    if (!same) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `the replica shows ${final.n} reviews but the primary has ${primaryCount} (kept ${dir} for inspection)`,
      );
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    process.off('SIGINT', onInterrupt);
    if (writer) clearInterval(writer);
    await ltx?.close();
    await replicator?.stop();
    primary?.close();
    // A failed run keeps its files to look at; a clean one removes them unless asked to keep.
    if (!failed && !options.keep) await rm(dir, { recursive: true, force: true });
  }

  // Like any command stopped by Ctrl-C, after the clean finish.
  if (interrupted) process.exitCode = 130;
  out('');
  const pastTxid = revisedBefore ? formatTxid(revisedBefore.txid) : '1';
  if (options.keep) {
    out(`Kept everything in ${dir}. Try next:`);
    out(`  ltxvfs ls ${replicaDir}`);
    out(
      `  ltxvfs query ${replicaDir} "SELECT sandwich, round(avg(rating), 2) AS stars, count(*) AS reviews FROM reviews GROUP BY sandwich ORDER BY stars DESC LIMIT 5"`,
    );
    out(
      `  ltxvfs query ${replicaDir} "SELECT * FROM reviews WHERE id = ${REVISED_REVIEW_ID}" --txid ${pastTxid}`,
    );
    out(`  ltxvfs restore ${replicaDir} -o ${path.join(dir, 'restored.db')}`);
  } else {
    out('Cleaned up. Run `ltxvfs demo --keep` to keep the replica, then try:');
    out('  ltxvfs ls <dir>/replica');
    out(
      '  ltxvfs query <dir>/replica "SELECT sandwich, round(avg(rating), 2) AS stars FROM reviews GROUP BY sandwich ORDER BY stars DESC LIMIT 5"',
    );
    out(
      `  ltxvfs query <dir>/replica "SELECT * FROM reviews WHERE id = ${REVISED_REVIEW_ID}" --txid ${pastTxid}`,
    );
    out('  ltxvfs restore <dir>/replica -o restored.db');
  }
}
