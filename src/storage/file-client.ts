import { createHash, randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { closeSync, constants as fsConstants, openSync, readSync, statSync } from 'node:fs';
import {
  copyFile,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  realpath,
  rename,
  unlink,
  utimes,
} from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fsyncDir } from '../util/atomic-file.js';
import { LtxvfsError } from '../util/errors.js';
import {
  assertFileRef,
  assertLevel,
  assertObjectName,
  fileLevelDir,
  ltxFileName,
  parseFileLevelDir,
  parseLtxFileName,
} from './keys.js';
import { checkLocalSource } from './local-source.js';
import { StatsCounter } from './stats.js';
import type {
  ListOptions,
  LocalFileSource,
  LtxFileInfo,
  LtxFileRef,
  ObjectCondition,
  ReplicaClient,
  RequestStats,
  SmallObject,
  WriteOptions,
} from './types.js';

const DELETE_BATCH = 1000;
const STAT_CONCURRENCY = 64;
/** Files stat-ed per turn of the event loop while listing a level. */
const STAT_BATCH = 1024;
/** A small-object lock older than this was left by a crashed process. */
const STALE_LOCK_MS = 10_000;
const LOCK_WAIT_MS = 5_000;

/** Ranges up to this size are read with blocking calls (readSmallSync). */
const SYNC_READ_MAX = 64 * 1024;

/**
 * A replica in a local directory, in Litestream's file layout: `ROOT/ltx/<level>/<min>-<max>.ltx`,
 * small objects at `ROOT/<name>`. Nothing outside ROOT is ever read or written.
 */
let newFileModeOnce: Promise<number> | undefined;

/** The mode `open(path, 'wx')` gives a new file here (0666 less the umask), found once by a probe. */
function newFileMode(dir: string): Promise<number> {
  newFileModeOnce ??= (async () => {
    const probe = join(dir, `.mode-probe.${randomBytes(6).toString('hex')}.tmp`);
    const handle = await open(probe, 'wx');
    try {
      return (await handle.stat()).mode & 0o777;
    } finally {
      await handle.close();
      await unlink(probe).catch(() => {});
    }
  })();
  // A failed probe (a full disk, say) is tried again by the next write, not remembered.
  newFileModeOnce.catch(() => {
    newFileModeOnce = undefined;
  });
  return newFileModeOnce;
}

export class FileReplicaClient implements ReplicaClient {
  readonly url: string;
  readonly root: string;
  private readonly counter = new StatsCounter();
  /**
   * Level directories already checked to stay inside the root (refreshed by every listing), so a
   * read of one of 20,000 files costs an open, not two realpath walks.
   */
  private readonly checkedLevelDirs = new Map<number, string>();

  constructor(root: string) {
    this.root = resolve(root);
    this.url = pathToFileURL(this.root).href;
  }

  async levels(): Promise<number[]> {
    this.counter.count('list');
    const ltxDir = await this.resolveInside('ltx');
    const entries = await this.readDir(ltxDir, 'list levels');
    const levels: number[] = [];
    for (const entry of entries) {
      const level = parseFileLevelDir(entry.name);
      if (level === null) continue;
      const levelDir = await this.resolveInside(fileLevelDir(level));
      const files = await this.readDir(levelDir, 'list levels');
      if (files.some((f) => parseLtxFileName(f.name) !== null)) levels.push(level);
    }
    return levels.sort((a, b) => a - b);
  }

  async listAll(): Promise<LtxFileInfo[]> {
    this.counter.count('list');
    const ltxDir = await this.resolveInside('ltx');
    const levels: number[] = [];
    for (const entry of await this.readDir(ltxDir, 'list all levels')) {
      const level = parseFileLevelDir(entry.name);
      if (level !== null) levels.push(level);
    }
    levels.sort((a, b) => a - b);
    const lists = await Promise.all(levels.map((level) => this.listLevel(level, {})));
    return lists.flat();
  }

  async listFiles(level: number, options: ListOptions = {}): Promise<LtxFileInfo[]> {
    assertLevel(level);
    this.counter.count('list');
    return this.listLevel(level, options);
  }

  private async listLevel(level: number, options: ListOptions): Promise<LtxFileInfo[]> {
    this.checkedLevelDirs.delete(level);
    const dir = await this.resolveInside(fileLevelDir(level));
    this.checkedLevelDirs.set(level, dir);
    const entries = await this.readDir(dir, `list level ${level}`);
    const fromTxid = options.fromTxid ?? 0;
    const candidates: { name: string; minTxid: number; maxTxid: number }[] = [];
    for (const entry of entries) {
      const txids = parseLtxFileName(entry.name);
      if (txids && txids.minTxid >= fromTxid) candidates.push({ name: entry.name, ...txids });
    }
    candidates.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    // Blocking stats in batches, with a turn of the event loop between them: a local stat takes
    // microseconds, far less than a thread-pool trip each (which dominated listing 20,000 files).
    const infos: (LtxFileInfo | null)[] = new Array(candidates.length).fill(null);
    for (let i = 0; i < candidates.length; i += STAT_BATCH) {
      if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const end = Math.min(candidates.length, i + STAT_BATCH);
      for (let k = i; k < end; k++) {
        const c = candidates[k];
        if (c === undefined) continue;
        const path = join(dir, c.name);
        let st: ReturnType<typeof statSync>;
        try {
          st = statSync(path, { throwIfNoEntry: false });
        } catch (err) {
          throw this.ioError(err, `stat ${path}`);
        }
        if (st === undefined || !st.isFile()) continue; // deleted while we listed, or not a file
        infos[k] = { level, minTxid: c.minTxid, maxTxid: c.maxTxid, size: st.size, createdAt: st.mtime };
      }
    }
    return infos.filter((f): f is LtxFileInfo => f !== null);
  }

  async readRange(file: LtxFileRef, offset: number, length: number): Promise<Uint8Array> {
    assertFileRef(file);
    assertRange(offset, length);
    if (length === 0) return new Uint8Array(0);
    this.counter.count('get');
    const small = length <= SYNC_READ_MAX ? this.readSmallSync(file, offset, length) : undefined;
    if (small !== undefined) {
      this.counter.read(small.length);
      return small;
    }
    let handle: Awaited<ReturnType<typeof open>> | undefined;
    let path = this.ltxPathUnchecked(file);
    try {
      ({ handle, path } = await this.openLtx(file));
      const buffer = Buffer.alloc(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      this.counter.read(filled);
      return new Uint8Array(buffer.buffer, buffer.byteOffset, filled);
    } catch (err) {
      throw this.ioError(err, `read range [${offset}, ${offset + length}) of ${path}`);
    } finally {
      await handle?.close();
    }
  }

  async readFile(file: LtxFileRef): Promise<Uint8Array> {
    assertFileRef(file);
    const path = await this.ltxPath(file);
    this.counter.count('get');
    try {
      const data = await readFile(path);
      this.counter.read(data.length);
      return new Uint8Array(data.buffer, data.byteOffset, data.length);
    } catch (err) {
      throw this.ioError(err, `read ${path}`);
    }
  }

  async writeFile(file: LtxFileRef, data: Uint8Array, options: WriteOptions): Promise<LtxFileInfo> {
    assertFileRef(file);
    const dir = await this.ensureDir(fileLevelDir(file.level));
    const target = join(dir, ltxFileName(file.minTxid, file.maxTxid));
    this.counter.count('put');
    const temp = await this.writeTemp(dir, basename(target), data, options.timestamp);
    await this.publishCreateOnly(temp, target, dir);
    this.counter.written(data.length);
    return { ...file, size: data.length, createdAt: options.timestamp };
  }

  async writeFileFrom(
    file: LtxFileRef,
    source: LocalFileSource,
    options: WriteOptions,
  ): Promise<LtxFileInfo> {
    assertFileRef(file);
    await checkLocalSource(source);
    const dir = await this.ensureDir(fileLevelDir(file.level));
    const target = join(dir, ltxFileName(file.minTxid, file.maxTxid));
    this.counter.count('put');
    const temp = await this.writeTemp(dir, basename(target), source, options.timestamp);
    await this.publishCreateOnly(temp, target, dir);
    this.counter.written(source.size);
    return { ...file, size: source.size, createdAt: options.timestamp };
  }

  /** Gives a finished temp file its final name, create-only, and removes the temp name. */
  private async publishCreateOnly(temp: string, target: string, dir: string): Promise<void> {
    try {
      // link() fails with EEXIST atomically, so of N racing writers exactly one creates the name.
      await link(temp, target);
    } catch (err) {
      if (errCode(err) === 'EEXIST') {
        throw new LtxvfsError('STORAGE_EXISTS', `write ${target}: the file already exists (create-only)`);
      }
      throw this.ioError(err, `write ${target}`);
    } finally {
      await unlink(temp).catch(() => {});
    }
    await fsyncDir(dir);
  }

  async deleteFiles(files: LtxFileRef[]): Promise<void> {
    for (const file of files) assertFileRef(file);
    for (let i = 0; i < files.length; i += DELETE_BATCH) {
      const batch = files.slice(i, i + DELETE_BATCH);
      this.counter.count('delete');
      const dirs = new Set<string>();
      for (let j = 0; j < batch.length; j += STAT_CONCURRENCY) {
        await Promise.all(
          batch.slice(j, j + STAT_CONCURRENCY).map(async (file) => {
            const path = await this.ltxPath(file);
            try {
              await unlink(path);
              dirs.add(dirname(path));
            } catch (err) {
              if (errCode(err) !== 'ENOENT') throw this.ioError(err, `delete ${path}`);
            }
          }),
        );
      }
      for (const dir of dirs) await fsyncDir(dir);
    }
  }

  async readObject(name: string): Promise<SmallObject | null> {
    assertObjectName(name);
    const path = await this.resolveInside(name);
    this.counter.count('get');
    const data = await this.readIfExists(path);
    if (data === null) return null;
    this.counter.read(data.length);
    return { data, etag: contentEtag(data) };
  }

  async readObjectIfChanged(
    name: string,
    etag: string | undefined,
  ): Promise<SmallObject | null | 'unchanged'> {
    assertObjectName(name);
    const path = await this.resolveInside(name);
    this.counter.count('get');
    const data = await this.readIfExists(path);
    if (data === null) return null;
    const current = contentEtag(data);
    if (etag !== undefined && current === etag) return 'unchanged';
    this.counter.read(data.length);
    return { data, etag: current };
  }

  async writeObject(name: string, data: Uint8Array, condition: ObjectCondition): Promise<{ etag: string }> {
    assertObjectName(name);
    const path = await this.resolveInside(name);
    const dir = await this.ensureDir(relative(this.root, dirname(path)) || '.');
    this.counter.count('put');
    await this.withObjectLock(path, async () => {
      const temp = await this.writeTemp(dir, basename(path), data);
      try {
        if ('ifNoneMatch' in condition) {
          try {
            await link(temp, path);
          } catch (err) {
            if (errCode(err) === 'EEXIST') throw conditionFailed(path, 'it already exists');
            throw this.ioError(err, `write ${path}`);
          }
        } else {
          const current = await this.readIfExists(path);
          if (current === null) throw conditionFailed(path, 'it does not exist');
          if (contentEtag(current) !== condition.ifMatch) throw conditionFailed(path, 'its ETag changed');
          await rename(temp, path).catch((err) => {
            throw this.ioError(err, `write ${path}`);
          });
        }
      } finally {
        await unlink(temp).catch(() => {});
      }
      await fsyncDir(dir);
    });
    this.counter.written(data.length);
    return { etag: contentEtag(data) };
  }

  async deleteObject(name: string, condition?: { ifMatch: string }): Promise<void> {
    assertObjectName(name);
    const path = await this.resolveInside(name);
    this.counter.count('delete');
    const remove = async () => {
      if (condition) {
        const current = await this.readIfExists(path);
        if (current === null) return;
        if (contentEtag(current) !== condition.ifMatch) throw conditionFailed(path, 'its ETag changed');
      }
      try {
        await unlink(path);
      } catch (err) {
        if (errCode(err) !== 'ENOENT') throw this.ioError(err, `delete ${path}`);
      }
      await fsyncDir(dirname(path)).catch(() => {});
    };
    if (condition) await this.withObjectLock(path, remove);
    else await remove();
  }

  stats(): RequestStats {
    return this.counter.snapshot();
  }

  resetStats(): void {
    this.counter.reset();
  }

  async close(): Promise<void> {}

  // --- paths --------------------------------------------------------------------------------

  private ltxPathUnchecked(file: LtxFileRef): string {
    return join(this.root, fileLevelDir(file.level), ltxFileName(file.minTxid, file.maxTxid));
  }

  /**
   * A small range of a file in a level directory already checked, read with blocking calls: a
   * tiny read from a local disk takes microseconds, far less than the three thread-pool trips
   * (open, read, close) of the asynchronous path, which dominate opening a replica of 20,000 small
   * files. Undefined when the asynchronous path must decide (no checked directory, a symlink).
   */
  private readSmallSync(file: LtxFileRef, offset: number, length: number): Uint8Array | undefined {
    const dir = this.checkedLevelDirs.get(file.level);
    if (dir === undefined) return undefined;
    const path = join(dir, ltxFileName(file.minTxid, file.maxTxid));
    let fd: number;
    try {
      fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (err) {
      if (errCode(err) === 'ELOOP') return undefined;
      throw this.ioError(err, `read range [${offset}, ${offset + length}) of ${path}`);
    }
    try {
      const buffer = Buffer.alloc(length);
      let filled = 0;
      while (filled < length) {
        const n = readSync(fd, buffer, filled, length - filled, offset + filled);
        if (n === 0) break;
        filled += n;
      }
      return new Uint8Array(buffer.buffer, buffer.byteOffset, filled);
    } catch (err) {
      throw this.ioError(err, `read range [${offset}, ${offset + length}) of ${path}`);
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Opens an LTX file for reading. In a level directory already checked, the file itself is
   * opened with O_NOFOLLOW: a plain file there cannot lead outside the root. A symlinked file
   * (ELOOP) takes the full check.
   */
  private async openLtx(
    file: LtxFileRef,
  ): Promise<{ handle: Awaited<ReturnType<typeof open>>; path: string }> {
    const dir = this.checkedLevelDirs.get(file.level);
    if (dir !== undefined) {
      const path = join(dir, ltxFileName(file.minTxid, file.maxTxid));
      try {
        return { handle: await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW), path };
      } catch (err) {
        if (errCode(err) !== 'ELOOP') throw err;
      }
    }
    const path = await this.ltxPath(file);
    return { handle: await open(path, 'r'), path };
  }

  private async ltxPath(file: LtxFileRef): Promise<string> {
    return this.resolveInside(`${fileLevelDir(file.level)}/${ltxFileName(file.minTxid, file.maxTxid)}`);
  }

  /**
   * Absolute path of `relativePath` under ROOT, refusing anything that lands outside ROOT,
   * lexically or through a symlink somewhere along the existing part of the path.
   */
  private async resolveInside(relativePath: string): Promise<string> {
    const absolute = resolve(this.root, relativePath);
    if (!isInside(this.root, absolute)) {
      throw new LtxvfsError(
        'STORAGE_PATH_ESCAPE',
        `"${relativePath}" resolves outside the replica root ${this.root}`,
      );
    }
    const realRoot = await realpathOrNull(this.root);
    if (realRoot === null) return absolute; // nothing exists yet, so nothing can point outside
    for (let probe = absolute; ; probe = dirname(probe)) {
      const real = await realpathOrNull(probe);
      if (real !== null) {
        if (!isInside(realRoot, real)) {
          throw new LtxvfsError(
            'STORAGE_PATH_ESCAPE',
            `${probe} is a symlink (or inside one) that leads outside the replica root ${this.root} (to ${real})`,
          );
        }
        return absolute;
      }
      if (probe === this.root || dirname(probe) === probe) return absolute;
    }
  }

  /** Creates `relativeDir` under ROOT (and ROOT) if needed, fsyncing every new directory entry. */
  private async ensureDir(relativeDir: string): Promise<string> {
    const dir = await this.resolveInside(relativeDir);
    let created: string | undefined;
    try {
      created = await mkdir(dir, { recursive: true });
    } catch (err) {
      throw this.ioError(await realMkdirError(dir, err), `create directory ${dir}`);
    }
    if (created !== undefined) {
      for (let d = dir; ; d = dirname(d)) {
        await fsyncDir(dirname(d)).catch(() => {});
        if (d === created || dirname(d) === d) break;
      }
      await this.resolveInside(relativeDir);
    }
    return dir;
  }

  private async readDir(dir: string, what: string): Promise<Dirent[]> {
    try {
      return await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (errCode(err) === 'ENOENT') return [];
      throw this.ioError(err, `${what}: read directory ${dir}`);
    }
  }

  private async readIfExists(path: string): Promise<Uint8Array | null> {
    try {
      const data = await readFile(path);
      return new Uint8Array(data.buffer, data.byteOffset, data.length);
    } catch (err) {
      if (errCode(err) === 'ENOENT') return null;
      throw this.ioError(err, `read ${path}`);
    }
  }

  /**
   * Writes a fully fsynced temp file next to its final name (same directory, hidden name), from
   * bytes in memory or by a kernel-side copy of a local file (no file-sized buffer).
   */
  private async writeTemp(
    dir: string,
    finalName: string,
    content: Uint8Array | LocalFileSource,
    mtime?: Date,
  ): Promise<string> {
    const temp = join(dir, `.${finalName}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      if (content instanceof Uint8Array) {
        const handle = await open(temp, 'wx');
        try {
          await handle.writeFile(content);
          await handle.sync();
        } finally {
          await handle.close();
        }
      } else {
        await copyFile(content.path, temp, fsConstants.COPYFILE_EXCL);
        const handle = await open(temp, 'r+');
        try {
          // copyFile keeps the source's mode (a private temp file's, 0600); an object gets the
          // mode every other object of the replica gets from the umask.
          await handle.chmod(await newFileMode(dir));
          const copied = (await handle.stat()).size;
          if (copied !== content.size) {
            throw new LtxvfsError(
              'BAD_ARGUMENT',
              `write ${join(dir, finalName)} from ${content.path}: the source changed size while it was copied (${content.size} -> ${copied} bytes)`,
            );
          }
          await handle.sync();
        } finally {
          await handle.close();
        }
      }
      // Litestream sets the mtime of a file-replica LTX file to its header timestamp and reports
      // it as CreatedAt; a hard link shares the inode, so the final name has it from the start.
      if (mtime) await utimes(temp, mtime, mtime);
      return temp;
    } catch (err) {
      await unlink(temp).catch(() => {});
      throw this.ioError(err, `write ${join(dir, finalName)}`);
    }
  }

  /**
   * Serialises conditional writers of one small object across processes: an O_EXCL lock file next
   * to it. A lock left behind by a crashed process is broken after STALE_LOCK_MS.
   */
  private async withObjectLock<T>(path: string, action: () => Promise<T>): Promise<T> {
    const lockPath = join(dirname(path), `.${basename(path)}.lock`);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const handle = await open(lockPath, 'wx');
        await handle.writeFile(`${process.pid}\n`);
        await handle.close();
        break;
      } catch (err) {
        if (errCode(err) !== 'EEXIST') throw this.ioError(err, `lock ${path}`);
      }
      const age = await lstat(lockPath).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (age > STALE_LOCK_MS) {
        const aside = `${lockPath}.${randomBytes(4).toString('hex')}.stale`;
        if (
          await rename(lockPath, aside).then(
            () => true,
            () => false,
          )
        ) {
          await unlink(aside).catch(() => {});
        }
        continue;
      }
      if (Date.now() > deadline) {
        throw new LtxvfsError(
          'STORAGE_IO',
          `lock ${path}: ${lockPath} is held by another writer for too long`,
        );
      }
      await new Promise((r) => setTimeout(r, 2 + Math.random() * 10));
    }
    try {
      return await action();
    } finally {
      await unlink(lockPath).catch(() => {});
    }
  }

  private ioError(err: unknown, what: string): LtxvfsError {
    if (err instanceof LtxvfsError) return err;
    const code = errCode(err);
    const reason = err instanceof Error ? err.message : String(err);
    if (code === 'ENOENT') return new LtxvfsError('STORAGE_NOT_FOUND', `${what}: not found`, { cause: err });
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return new LtxvfsError('STORAGE_FULL', `${what}: no space left on the file system (${code})`, {
        cause: err,
      });
    }
    if (code === 'EROFS') {
      return new LtxvfsError('STORAGE_READ_ONLY', `${what}: the file system is read-only (EROFS)`, {
        cause: err,
      });
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return new LtxvfsError('STORAGE_ACCESS_DENIED', `${what}: permission denied (${reason})`, {
        cause: err,
      });
    }
    return new LtxvfsError('STORAGE_IO', `${what}: ${reason}`, { cause: err });
  }
}

export function contentEtag(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

function conditionFailed(path: string, why: string): LtxvfsError {
  return new LtxvfsError('STORAGE_CONDITION_FAILED', `conditional write of ${path} failed: ${why}`);
}

function assertRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new LtxvfsError('BAD_ARGUMENT', `invalid byte range: offset ${offset}, length ${length}`);
  }
}

function isInside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);
}

async function realpathOrNull(path: string): Promise<string | null> {
  try {
    return await realpath(path);
  } catch (err) {
    if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return null;
    throw err;
  }
}

/**
 * A recursive mkdir reports ENOENT for a read-only (or otherwise unwritable) parent on some
 * systems; creating the first missing directory alone gives the real reason (EROFS, EACCES,
 * ENOSPC), so the error can say what is wrong.
 */
async function realMkdirError(dir: string, err: unknown): Promise<unknown> {
  if (errCode(err) !== 'ENOENT') return err;
  let missing = dir;
  for (let parent = dirname(missing); parent !== missing; missing = parent, parent = dirname(parent)) {
    const exists = await lstat(parent).then(
      () => true,
      () => false,
    );
    if (!exists) continue;
    try {
      await mkdir(missing);
      return err;
    } catch (probe) {
      return errCode(probe) === 'EEXIST' ? err : probe;
    }
  }
  return err;
}

function errCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? ((err as { code?: string }).code ?? undefined) : undefined;
}
