import { openReplicaClient } from '../src/storage/index.js';
import { createLtx } from '../vfs/index.js';

/**
 * One reader process of the scale-out benchmark: opens the replica through the ltx VFS, then
 * every `sampleMs` asks for the newest review and records how old it is (the primary stamps each
 * row with its commit time; both processes share this machine's clock). Waits for "go" on stdin
 * after it is ready, so every reader of a round measures the same interval, then prints one JSON
 * line with its samples and request counters and exits.
 *
 * argv: <replica-url> <measure-ms> <sample-ms> <poll-ms> [manifest|list]
 * (`list`: open and follow by listing, as on a replica without the writer's manifest)
 */
/** The JSON line a reader prints at the end (scale-out.ts parses it). */
export interface ReaderResult {
  pid: number;
  openMs: number;
  samples: number;
  lagMs: number[];
  /** Queries that failed (the reader keeps going; a following replica must survive hiccups). */
  errors: string[];
  errorCount: number;
  requests: { list: number; get: number; head: number; put: number; bytesRead: number };
}

async function main(): Promise<void> {
  const [url, measureText, sampleText, pollText, polling = 'manifest'] = process.argv.slice(2);
  if (!url || !measureText || !sampleText || !pollText || (polling !== 'manifest' && polling !== 'list'))
    throw new Error('usage: scale-out-reader <url> <measure-ms> <sample-ms> <poll-ms> [manifest|list]');
  const measureMs = Number(measureText);
  const sampleMs = Number(sampleText);
  const begun = performance.now();
  const ltx = await createLtx({ instances: 1 });
  const client = openReplicaClient(url);
  await ltx.registerReplica('replica.db', client, {
    pollIntervalMs: Number(pollText),
    manifest: polling === 'manifest',
  });
  const db = await ltx.open('file:replica.db?vfs=ltx');
  await db.get('SELECT max(created_at) AS ts FROM reviews');
  const openMs = performance.now() - begun;
  process.stdout.write(`${JSON.stringify({ ready: true, openMs })}\n`);
  await new Promise<void>((resolve) => process.stdin.once('data', () => resolve()));
  client.resetStats();
  const lagMs: number[] = [];
  const errors: string[] = [];
  const end = performance.now() + measureMs;
  while (performance.now() < end) {
    try {
      const row = (await db.get('SELECT max(created_at) AS ts FROM reviews')) as { ts: number } | undefined;
      if (row?.ts) lagMs.push(Date.now() - row.ts);
    } catch (err) {
      errors.push(err instanceof Error ? err.message : String(err));
    }
    await new Promise((r) => setTimeout(r, sampleMs));
  }
  const s = client.stats();
  const result: ReaderResult = {
    pid: process.pid,
    openMs,
    samples: lagMs.length,
    lagMs,
    errorCount: errors.length,
    errors: errors.slice(0, 5),
    requests: { list: s.list, get: s.get, head: s.head, put: s.put, bytesRead: s.bytesRead },
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await db.close();
  await ltx.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`scale-out reader: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
