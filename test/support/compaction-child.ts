/*
 * Child process of test/compaction-crash.test.ts (compiled with tsc, run with node): runs the
 * CompactionScheduler for a number of ticks of a simulated clock over a file replica, and
 * optionally kills itself with SIGKILL right before or right after its k-th storage request, so
 * the parent can crash it at every kind of point (mid-listing, mid-read, after the output PUT,
 * between deletes, mid-snapshot).
 *
 * Env: REPLICA_DIR, DB_PATH (primary in rollback-journal mode, not written while we run), TXID
 * (the primary's current TXID), START_MS, TICKS, STEP_MS, CONFIG (JSON CompactionConfig),
 * CRASH_AT (request number, 0 = never), CRASH_WHEN (before|after).
 */
import { readFileSync } from 'node:fs';
import { imagePages, writeLtxFile } from '../../bench/support/ltx-images.js';
// The file client directly: the S3 SDK would double the start-up time of every restart.
import { FileReplicaClient } from '../../src/storage/file-client.js';
import type { ReplicaClient } from '../../src/storage/types.js';
import { CompactionScheduler } from '../../src/writer/compaction/compaction.js';
import type { CompactionConfig } from '../../src/writer/compaction/compaction-config.js';
import { defined } from './defined.js';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`compaction-child: ${name} is not set`);
  return v;
};

const crashAt = Number(process.env.CRASH_AT ?? 0);
const crashAfter = process.env.CRASH_WHEN === 'after';
let requests = 0;

/** Wraps every request method so the process can die at an exact request. */
function crashing(client: ReplicaClient): ReplicaClient {
  const methods = [
    'levels',
    'listFiles',
    'readRange',
    'readFile',
    'writeFile',
    'writeFileFrom',
    'deleteFiles',
  ] as const;
  const wrapped: Record<string, unknown> = {};
  for (const name of methods) {
    const original = (client[name] as (...args: unknown[]) => Promise<unknown>).bind(client);
    wrapped[name] = async (...args: unknown[]) => {
      requests++;
      const dieNow = requests === crashAt;
      if (dieNow && !crashAfter) process.kill(process.pid, 'SIGKILL');
      const result = await original(...args);
      if (dieNow) process.kill(process.pid, 'SIGKILL');
      return result;
    };
  }
  return new Proxy(client, {
    get: (target, prop, receiver) => wrapped[prop as string] ?? Reflect.get(target, prop, receiver),
  });
}

async function main(): Promise<void> {
  const client = crashing(new FileReplicaClient(env('REPLICA_DIR')));
  const config = JSON.parse(env('CONFIG')) as CompactionConfig;
  const txid = Number(env('TXID'));
  let now = Number(env('START_MS'));
  const step = Number(env('STEP_MS'));
  const scheduler = new CompactionScheduler({
    client,
    config,
    now: () => now,
    logger: (line) => process.stderr.write(`${line}\n`),
    takeSnapshot: async () => {
      const image = new Uint8Array(readFileSync(env('DB_PATH')));
      const pageSize =
        ((defined(image[16]) << 8) | defined(image[17])) === 1
          ? 65536
          : (defined(image[16]) << 8) | defined(image[17]);
      return writeLtxFile(
        client,
        { level: 9, minTxid: 1, maxTxid: txid },
        { pageSize, commit: image.length / pageSize, timestamp: now, pages: imagePages(image, pageSize) },
      );
    },
  });
  for (let i = 0; i < Number(env('TICKS')); i++) {
    now += step;
    await scheduler.tick();
  }
  const stats = scheduler.stats();
  process.stdout.write(`${JSON.stringify({ ...stats, requests })}\n`);
  if (stats.errors > 0) process.exitCode = 3;
}

main().catch((err: unknown) => {
  process.stderr.write(`compaction-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
