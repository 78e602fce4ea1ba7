import { rm } from 'node:fs/promises';
import path from 'node:path';
import { hydrationSidecarPath } from '../src/replica/hydrator.js';

/**
 * A database file of this run and everything SQLite, the replicator and the hydrator keep beside
 * it, so no state of an earlier run (another bucket) leaks into this one.
 */
export async function removeScratch(dbPath: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm', '-journal']) await rm(`${dbPath}${suffix}`, { force: true });
  await rm(hydrationSidecarPath(dbPath), { force: true });
  await rm(path.join(path.dirname(dbPath), `.${path.basename(dbPath)}-ltxvfs`), {
    force: true,
    recursive: true,
  });
}
