import { randomBytes } from 'node:crypto';
import { closeSync, openSync, unlinkSync, write, writeSync } from 'node:fs';
import { readdir, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LtxvfsError } from '../util/errors.js';
import { isProcessAlive } from '../util/process.js';
import type { LocalFileSource } from './types.js';

const SPOOL_SUFFIX = '.spool.tmp';
const SPOOL_NAME = /^\.[\w-]+-(\d+)-[0-9a-f]{12}\.spool\.tmp$/;

/** Bytes a spool gathers before one write() call: big enough to keep syscalls rare. */
const SPOOL_BUFFER_BYTES = 1024 * 1024;

/** Rejects a source that is missing, not a regular file, or not the size it claims. */
export async function checkLocalSource(source: LocalFileSource): Promise<void> {
  if (!Number.isSafeInteger(source.size) || source.size < 0) {
    throw new LtxvfsError('BAD_ARGUMENT', `invalid size ${source.size} for the local file ${source.path}`);
  }
  let actual: number;
  try {
    const st = await stat(source.path);
    if (!st.isFile()) throw new LtxvfsError('BAD_ARGUMENT', `${source.path} is not a regular file`);
    actual = st.size;
  } catch (err) {
    if (err instanceof LtxvfsError) throw err;
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `cannot read the local file ${source.path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  if (actual !== source.size) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `the local file ${source.path} has ${actual} bytes, not the ${source.size} given`,
    );
  }
}

/**
 * A temp file that an encoder streams into, so a file of any size can be produced with a 1 MiB
 * buffer and then uploaded with `ReplicaClient.writeFileFrom`. Writes may be synchronous (from
 * code that must not yield, e.g. inside a database read transaction) or awaited. The owner calls
 * remove() when done, on success and on failure.
 */
export class SpoolFile implements LocalFileSource {
  readonly path: string;
  size = 0;
  private fd: number | undefined;
  private readonly buffer = Buffer.allocUnsafe(SPOOL_BUFFER_BYTES);
  private used = 0;

  /** Creates an empty spool file in `dir` (default: the OS temp directory). */
  constructor(dir: string = tmpdir(), prefix = 'ltxvfs-spool') {
    this.path = join(dir, `.${prefix}-${process.pid}-${randomBytes(6).toString('hex')}${SPOOL_SUFFIX}`);
    try {
      this.fd = openSync(this.path, 'wx', 0o600);
    } catch (err) {
      throw new LtxvfsError(
        'STORAGE_IO',
        `cannot create the temp file ${this.path}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
  }

  writeSync(chunk: Uint8Array): void {
    const fd = this.openFd();
    this.size += chunk.length;
    if (this.used + chunk.length <= this.buffer.length) {
      this.buffer.set(chunk, this.used);
      this.used += chunk.length;
      return;
    }
    this.flushSync(fd);
    if (chunk.length >= this.buffer.length) writeAllSync(fd, chunk, this.path);
    else {
      this.buffer.set(chunk, 0);
      this.used = chunk.length;
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    const fd = this.openFd();
    this.size += chunk.length;
    if (this.used + chunk.length <= this.buffer.length) {
      this.buffer.set(chunk, this.used);
      this.used += chunk.length;
      return;
    }
    await writeAll(fd, this.buffer.subarray(0, this.used), this.path);
    this.used = 0;
    if (chunk.length >= this.buffer.length) await writeAll(fd, chunk, this.path);
    else {
      this.buffer.set(chunk, 0);
      this.used = chunk.length;
    }
  }

  /**
   * Flushes and closes the file; it is then ready to upload. No fsync: the spool is scratch
   * (a crash loses it and the work is redone); the store makes its own durable copy.
   */
  finish(): LocalFileSource {
    const fd = this.openFd();
    this.flushSync(fd);
    this.fd = undefined;
    closeSync(fd);
    return { path: this.path, size: this.size };
  }

  /** Closes (if open) and deletes the file; never throws. */
  async remove(): Promise<void> {
    this.closeQuietly();
    await unlink(this.path).catch(() => {});
  }

  /** remove() for synchronous error paths. */
  removeSync(): void {
    this.closeQuietly();
    try {
      unlinkSync(this.path);
    } catch {
      // already gone
    }
  }

  private closeQuietly(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // closing is best effort on the way out
    }
    this.fd = undefined;
  }

  private openFd(): number {
    if (this.fd === undefined)
      throw new LtxvfsError('STORAGE_IO', `the temp file ${this.path} is already closed`);
    return this.fd;
  }

  private flushSync(fd: number): void {
    if (this.used === 0) return;
    writeAllSync(fd, this.buffer.subarray(0, this.used), this.path);
    this.used = 0;
  }
}

/**
 * Streams `chunks` into a new SpoolFile (removed again if anything fails) and returns it
 * finished. Memory: the spool's buffer plus whatever the producer holds.
 */
export async function spoolChunks(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  dir?: string,
): Promise<SpoolFile> {
  const spool = new SpoolFile(dir);
  try {
    for await (const chunk of chunks) await spool.write(chunk);
    spool.finish();
    return spool;
  } catch (err) {
    await spool.remove();
    throw err;
  }
}

function writeAllSync(fd: number, data: Uint8Array, path: string): void {
  let at = 0;
  try {
    while (at < data.length) at += writeSync(fd, data, at, data.length - at);
  } catch (err) {
    throw new LtxvfsError('STORAGE_IO', `write ${path}: ${(err as Error).message}`, { cause: err });
  }
}

async function writeAll(fd: number, data: Uint8Array, path: string): Promise<void> {
  let at = 0;
  while (at < data.length) {
    at += await new Promise<number>((resolve, reject) =>
      write(fd, data, at, data.length - at, null, (err, written) =>
        err
          ? reject(new LtxvfsError('STORAGE_IO', `write ${path}: ${err.message}`, { cause: err }))
          : resolve(written),
      ),
    );
  }
}

/**
 * Deletes spool files in `dir` left by processes that no longer exist (killed mid-write; a
 * normal exit or a thrown error removes its own). Returns how many were removed.
 */
export async function removeStaleSpools(dir: string = tmpdir()): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const pid = SPOOL_NAME.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || isProcessAlive(Number(pid))) continue;
    await unlink(join(dir, name)).then(
      () => removed++,
      () => {},
    );
  }
  return removed;
}
