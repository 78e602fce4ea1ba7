import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempDir {
  /** Absolute path of a fresh, empty directory. */
  dir: string;
  /** Removes the directory and everything in it. */
  cleanup(): Promise<void>;
}

/** A fresh directory under the OS temp dir; call cleanup() (e.g. in afterAll) when done. */
export async function makeTempDir(prefix = 'ltxvfs-test-'): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return {
    dir,
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
