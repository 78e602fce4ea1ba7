import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Command } from 'commander';
import { openReplicaClient } from '../src/storage/index.js';
import type { ReplicaClient } from '../src/storage/types.js';
import { Replicator } from '../src/writer/replicator.js';
import { createLtx } from '../vfs/index.js';
import { makeDataset } from './datasets.js';
import { formatBytes, renderSection } from './report.js';
import { removeScratch } from './scratch.js';
import { measureWarmReads, WARM_COLUMNS, WARM_SCAN_SQL } from './warm-reads.js';

/**
 * `node dist/bench/warm.js [--mib 128] [--lookups 20000]`: only the warm section (hydrated, warm
 * cache, better-sqlite3), on a replica in a local directory, so a change to the read path can be
 * measured in a minute without S3. The full bench (run.ts) runs the same measurement against S3.
 */
async function main(argv: string[]): Promise<void> {
  const program = new Command()
    .option('--mib <n>', 'database size in MiB', '128')
    .option('--lookups <n>', 'timed point lookups per case', '20000')
    .option('--warmup <n>', 'untimed lookups first, per case (the JIT settles)', '20000')
    .option('--scans <n>', 'timed full scans per case', '3')
    .option('--work-dir <dir>', 'databases and scratch files (kept between runs)', '.tmp/bench');
  program.parse(argv);
  const o = program.opts<{ mib: string; lookups: string; warmup: string; scans: string; workDir: string }>();
  const workDir = path.resolve(o.workDir);
  await mkdir(workDir, { recursive: true });
  const mib = Number(o.mib);
  const ds = await makeDataset(workDir, `reviews-${mib}MiB`, mib * 1024 * 1024);
  const replicaDir = path.join(workDir, `${ds.name}-warm-replica`);
  const primary = path.join(workDir, `${ds.name}-warm-primary.db`);
  const hydratePath = path.join(workDir, `${ds.name}-warm-hydrated.db`);
  await rm(replicaDir, { recursive: true, force: true });
  for (const p of [primary, hydratePath]) await removeScratch(p);
  await copyFile(ds.path, primary);
  const replicator = new Replicator({ dbPath: primary, replica: replicaDir, syncIntervalMs: 100 });
  await replicator.start();
  await replicator.sync();
  await replicator.stop();

  const ltx = await createLtx();
  const clients = new Map<string, ReplicaClient>();
  try {
    const hydratedClient = openReplicaClient(replicaDir);
    clients.set('hydrated.db', hydratedClient);
    const hydrated = await ltx.registerReplica('hydrated.db', hydratedClient, {
      pollIntervalMs: 0,
      hydratePath,
    });
    for (;;) {
      const h = hydrated.hydration();
      if (h.state === 'done') break;
      if (h.state === 'error') throw new Error(`hydration failed: ${h.error}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const warmClient = openReplicaClient(replicaDir);
    clients.set('warm.db', warmClient);
    await ltx.registerReplica('warm.db', warmClient, { pollIntervalMs: 0, cacheBytes: ds.bytes * 2 });
    const filler = await ltx.open('file:warm.db?vfs=ltx');
    await filler.all(WARM_SCAN_SQL); // fills the cache
    await filler.close();
    const result = await measureWarmReads({
      ltx,
      hydratedName: 'hydrated.db',
      warmName: 'warm.db',
      nativePath: primary,
      rows: ds.rows,
      lookups: Number(o.lookups),
      warmup: Number(o.warmup),
      scans: Number(o.scans),
      requestsOf: (name) => {
        const s = clients.get(name)?.stats();
        return s ? s.list + s.get + s.head : 0;
      },
      dataset: formatBytes(ds.bytes),
    });
    process.stdout.write(
      `${renderSection({
        id: 'warm',
        title: `Warm and hydrated reads vs better-sqlite3 (Node ${process.versions.node}, ${ltx.vfsInstances[0]?.build ?? '?'})`,
        columns: WARM_COLUMNS,
        rows: result.rows,
      })}\n`,
    );
  } finally {
    await ltx.close();
    for (const c of clients.values()) await c.close();
    await rm(replicaDir, { recursive: true, force: true });
    for (const p of [primary, hydratePath]) await removeScratch(p);
  }
}

main(process.argv).catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
