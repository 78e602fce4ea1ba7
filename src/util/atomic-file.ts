import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';

/*
 * Files that are either whole or absent: written under `<path>.tmp`, fsynced, renamed over
 * `path`, and the directory fsynced so the rename itself survives a crash. On any error the temp
 * file is removed and nothing at `path` changed.
 */

/** Writes `path` atomically from `write(fd)` (synchronous writes into the temp file). */
export function writeFileAtomicSync<T>(path: string, write: (fd: number) => T): T {
  const temp = new TempFile(path);
  try {
    return temp.publish(write(temp.fd));
  } catch (err) {
    temp.abandon();
    throw err;
  }
}

/** The same, for a writer that awaits between its (synchronous) writes into the temp file. */
export async function writeFileAtomic<T>(path: string, write: (fd: number) => Promise<T>): Promise<T> {
  const temp = new TempFile(path);
  try {
    return temp.publish(await write(temp.fd));
  } catch (err) {
    temp.abandon();
    throw err;
  }
}

/** Writes all of `data` at `position` (or at the current offset), however short each write is. */
export function writeAllSync(fd: number, data: Uint8Array, position?: number): void {
  let done = 0;
  while (done < data.length) {
    const at = position === undefined ? null : position + done;
    done += writeSync(fd, data, done, data.length - done, at);
  }
}

/** fsync of a directory, so a rename or unlink inside it is durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

class TempFile {
  readonly tmp: string;
  readonly fd: number;
  private open = true;

  constructor(readonly path: string) {
    this.tmp = `${path}.tmp`;
    this.fd = openSync(this.tmp, 'w');
  }

  publish<T>(result: T): T {
    fsyncSync(this.fd);
    this.open = false;
    closeSync(this.fd);
    renameSync(this.tmp, this.path);
    fsyncDirSync(dirname(this.path));
    return result;
  }

  abandon(): void {
    if (this.open) closeSync(this.fd);
    this.open = false;
    rmSync(this.tmp, { force: true });
  }
}
