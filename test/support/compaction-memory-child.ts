/**
 * Child of compaction-memory.test.ts: runs one compaction of the L0 files in REPLICA_DIR into L1
 * and reports how much memory it took, sampled every 5 ms (when it yields), as one JSON line on
 * stdout. (Not getrusage's maxRSS: a child inherits its parent's high-water mark across exec.)
 */
import { FileReplicaClient } from '../../src/storage/file-client.js';
import { CompactionScheduler } from '../../src/writer/compaction/compaction.js';

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
}

async function main(): Promise<void> {
  const client = new FileReplicaClient(env('REPLICA_DIR'));
  const scheduler = new CompactionScheduler({
    client,
    config: {
      levels: [1000],
      snapshotIntervalMs: 86_400_000,
      retentionMs: 86_400_000,
      l0RetentionMs: 300_000,
      retentionEnabled: false,
    },
    takeSnapshot: async () => null,
    readBudgetBytes: Number(env('READ_BUDGET')),
    spoolDir: env('SPOOL_DIR'),
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  gc();
  const before = process.memoryUsage();
  let peakArrayBuffers = before.arrayBuffers;
  let peakLiveArrayBuffers = before.arrayBuffers;
  let peakRss = before.rss;
  let samples = 0;
  // Every few ms: what is allocated (live + garbage not yet collected), then, after a full GC,
  // what is live: memory the code path holds on to, which is what must not grow with the size.
  const sample = () => {
    const m = process.memoryUsage();
    peakArrayBuffers = Math.max(peakArrayBuffers, m.arrayBuffers);
    peakRss = Math.max(peakRss, m.rss);
    gc();
    peakLiveArrayBuffers = Math.max(peakLiveArrayBuffers, process.memoryUsage().arrayBuffers);
    samples++;
  };
  const timer = setInterval(sample, 5);
  const written = await scheduler.compactLevel(1);
  clearInterval(timer);
  sample();
  process.stdout.write(
    `${JSON.stringify({
      outputSize: written?.size ?? 0,
      arrayBuffersBefore: before.arrayBuffers,
      peakArrayBuffers,
      peakLiveArrayBuffers,
      samples,
      rssBefore: before.rss,
      peakRss,
    })}\n`,
  );
}

main().catch((err: unknown) => {
  process.stderr.write(`compaction-memory-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
