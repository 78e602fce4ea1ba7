import { type DataArray, FacadeVFS, type TypedView } from '@journeyapps/wa-sqlite/src/FacadeVFS.js';
import * as VFS from '@journeyapps/wa-sqlite/src/VFS.js';
import { LtxvfsError } from '../src/util/errors.js';
import { present } from '../src/util/invariant.js';
import { formatTxid, parseTxid, type Txid } from '../src/util/txid.js';
import { MemoryFile } from './memory-file.js';
import type { WaSqliteBuild } from './module.js';
import { patchPageOne } from './page-one.js';
import {
  formatHydration,
  type LtxPragma,
  ltxPragmaKind,
  type PragmaRequest,
  parsePragmaRequest,
} from './pragmas.js';
import type { ReplicaRegistry, ReplicaSource, ReplicaView } from './replica-port.js';
import { parseTimeTarget } from './time-target.js';

/** The main database of one connection (or one ATTACHed schema), served from a replica. */
interface MainFile {
  readonly kind: 'main';
  readonly name: string;
  readonly replica: ReplicaSource;
  /** null: follow the latest TXID; otherwise every read transaction sees this TXID. */
  pinned: Pin | null;
  /**
   * Held from SHARED lock to unlock. Between transactions it may hold a spare view (taken at
   * open or by a PRAGMA) that the next transaction reuses when it is still the right TXID.
   */
  view: ReplicaView | null;
  locked: boolean;
  /** Page 1 as served, patched once per TXID (and per stored copy of the page). */
  pageOne: PatchedPageOne | null;
}

interface PatchedPageOne {
  readonly txid: Txid;
  readonly pageCount: number;
  readonly patched: Uint8Array;
}

type OpenFile = MainFile | MemoryFile;

/** A state a URI pins its connection to (`txid=` or `time=`). */
type TimeTarget = Parameters<ReplicaSource['acquireAt']>[0];

/** A TXID a connection stays on; its shape is fixed, so file size needs no view. */
interface Pin {
  txid: Txid;
  timestamp: Date;
  pageSize: number;
  pageCount: number;
}

function pinOf(view: ReplicaView): Pin {
  return { txid: view.txid, timestamp: view.timestamp, pageSize: view.pageSize, pageCount: view.pageCount };
}

interface PendingRead {
  rc: number;
  data?: Uint8Array;
}

export interface LtxVfsOptions {
  /** Registered VFS name, used as `?vfs=<name>`; default "ltx". */
  name?: string;
  /** The wa-sqlite build `module` comes from (see instantiateWaSqlite); default "asyncify". */
  build?: WaSqliteBuild;
  logger?: (line: string) => void;
}

/**
 * On the "sync" build a read whose page is not local cannot wait for the store: the VFS fails it
 * with SQLITE_IOERR_READ and keeps this as the call's error, so the caller reruns the statement
 * on a build that can wait (see LocalFastPath).
 */
export class PageNotLocal extends Error {
  constructor(readonly what: string) {
    super(`${what} is not local (the synchronous build cannot wait for the store)`);
    this.name = 'PageNotLocal';
  }
}

const NO_LOCK = VFS.SQLITE_LOCK_NONE;
const WRITE_FLAGS = VFS.SQLITE_OPEN_READWRITE | VFS.SQLITE_OPEN_CREATE;

/**
 * The wa-sqlite VFS "ltx": the main database file is a replica (page reads resolve to LTX
 * objects), everything else (temp files, sorter spills, sub-journals) lives in memory, and every
 * write is refused with SQLITE_READONLY.
 *
 * Runs on wa-sqlite's Asyncify build or its JSPI build (say which in `options.build`). Calls into
 * one module instance must be serialized (the Node API does that); each instance needs its own
 * LtxVfs.
 *
 * Reads that the replica can answer from memory return synchronously; the others suspend the
 * wasm stack (see `hybrid`). When a call fails because of the replica, the error is kept for
 * `takeLastError()`, so callers can report the named error instead of SQLite's "disk I/O error".
 */
export class LtxVfs extends FacadeVFS {
  override mxPathname = 512;
  private readonly files = new Map<number, OpenFile>();
  private readonly module: WaSqliteModule;
  private readonly logger?: (line: string) => void;
  /** Asyncify re-enters a suspended method once more on resume; this tells the two entries apart. */
  private suspended = false;
  private lastError: Error | undefined;
  private readonly jspi: boolean;
  /** The plain build: nothing may wait (see PageNotLocal). */
  private readonly synchronous: boolean;
  /** The wa-sqlite build this VFS was registered on. */
  readonly build: WaSqliteBuild;

  constructor(
    module: WaSqliteModule,
    private readonly registry: ReplicaRegistry,
    options: LtxVfsOptions = {},
  ) {
    super(options.name ?? 'ltx', module);
    this.module = module;
    this.logger = options.logger;
    this.build = options.build ?? 'asyncify';
    this.jspi = this.build === 'jspi';
    this.synchronous = this.build === 'sync';
  }

  /**
   * Under JSPI, a method that may await must be declared async to the module (it is then called
   * through a suspending import); under Asyncify `hybrid` suspends by itself.
   */
  override hasAsyncMethod(methodName: string): boolean {
    if (this.synchronous) return false;
    if (methodName === 'xOpen') return true;
    if (this.jspi && (methodName === 'xRead' || methodName === 'xFileControl')) return true;
    return super.hasAsyncMethod(methodName);
  }

  /** The error behind the last failed VFS call (and forgets it). */
  takeLastError(): Error | undefined {
    const err = this.lastError;
    this.lastError = undefined;
    return err;
  }

  clearLastError(): void {
    this.lastError = undefined;
  }

  /**
   * Releases the views that files outside a read transaction still hold: those of immutable
   * connections (no locks, so no jUnlock releases them) and the spare one a pinned file keeps. A
   * held view of an old TXID would stop the hydrated file from moving on.
   */
  releaseIdleViews(): void {
    for (const file of this.files.values()) {
      if (file instanceof MemoryFile || file.locked || file.view === null) continue;
      file.view.release();
      file.view = null;
    }
  }

  /** TXID the connection's main file (by file id) currently reads; for diagnostics and tests. */
  openMainFiles(): Array<{ name: string; txid: Txid | null; pinned: boolean; locked: boolean }> {
    const out = [];
    for (const file of this.files.values()) {
      if (file instanceof MemoryFile) continue;
      out.push({
        name: file.name,
        txid: file.view?.txid ?? file.pinned?.txid ?? null,
        pinned: file.pinned !== null,
        locked: file.locked,
      });
    }
    return out;
  }

  override jOpen(
    filename: string | null,
    fileId: number,
    flags: number,
    pOutFlags: TypedView,
  ): number | Promise<number> {
    if (!(flags & VFS.SQLITE_OPEN_MAIN_DB) || filename === null) {
      this.files.set(fileId, new MemoryFile());
      pOutFlags.setInt32(0, flags, true);
      return this.synchronous ? VFS.SQLITE_OK : Promise.resolve(VFS.SQLITE_OK);
    }
    let opening: { file: MainFile; target: TimeTarget | undefined };
    try {
      opening = this.mainFileFor(filename);
    } catch (err) {
      const rc = this.fail(err, VFS.SQLITE_CANTOPEN);
      return this.synchronous ? rc : Promise.resolve(rc);
    }
    const opened = () => {
      this.files.set(fileId, opening.file);
      pOutFlags.setInt32(0, (flags & ~WRITE_FLAGS) | VFS.SQLITE_OPEN_READONLY, true);
      return VFS.SQLITE_OK;
    };
    const { file, target } = opening;
    if (this.synchronous) {
      if (target === undefined) return opened();
      const known = target.txid === undefined ? null : (file.replica.acquireKnown?.(target.txid) ?? null);
      if (known === null) return this.fail(new PageNotLocal(`the state at ${filename}`), VFS.SQLITE_CANTOPEN);
      file.view = known;
      file.pinned = pinOf(known);
      return opened();
    }
    if (target === undefined) return Promise.resolve(opened());
    return file.replica.acquireAt(target).then(
      (view) => {
        file.view = view;
        file.pinned = pinOf(view);
        return opened();
      },
      (err: unknown) => this.fail(err, VFS.SQLITE_CANTOPEN),
    );
  }

  /** The main file for a URI, and the state it is pinned to (undefined: it follows the latest). */
  private mainFileFor(filename: string): { file: MainFile; target: TimeTarget | undefined } {
    const { path, params } = splitUri(filename);
    const entry = this.registry.resolve(path);
    if (!entry) {
      const known = this.registry.names();
      throw new LtxvfsError(
        'REPLICA_NOT_REGISTERED',
        `no replica registered as "${path}" (registered: ${known.length ? known.map((n) => `"${n}"`).join(', ') : 'none'})`,
      );
    }
    const file: MainFile = {
      kind: 'main',
      name: entry.name,
      replica: entry.replica,
      pinned: null,
      view: null,
      locked: false,
      pageOne: null,
    };
    const txidParam = params.get('txid');
    const timeParam = params.get('time') ?? params.get('timestamp');
    if (txidParam !== undefined && timeParam !== undefined) {
      throw new LtxvfsError('BAD_ARGUMENT', `"${filename}": give either txid= or time=, not both`);
    }
    if (txidParam !== undefined) return { file, target: { txid: parseTxid(txidParam) } };
    if (timeParam !== undefined) return { file, target: { timestamp: parseTimeTarget(timeParam) } };
    // Fail at open, not at the first query, when the replica has nothing to serve yet.
    entry.replica.acquireLatest().release();
    return { file, target: undefined };
  }

  override jClose(fileId: number): number {
    const file = this.files.get(fileId);
    this.files.delete(fileId);
    if (file && !(file instanceof MemoryFile)) {
      file.view?.release();
      file.view = null;
    }
    return VFS.SQLITE_OK;
  }

  // ---- the per-transaction calls, answered straight from wasm memory -------------------------
  // FacadeVFS wraps every pointer in a proxy object (and decodes xAccess's file name) before it
  // calls the jXxx method; these run several times per query, so they skip that.

  /**
   * A read within one page that the cache or the hydrated file holds (SQLite's page reads and its
   * change-counter read) is copied once, from the page straight into wasm memory; anything else
   * (a miss, a pinned TXID not acquired yet, a read across pages) takes jRead.
   */
  override xRead(
    pFile: number,
    pData: number,
    iAmt: number,
    iOffsetLo: number,
    iOffsetHi: number,
  ): number | Promise<number> {
    // Asyncify re-enters a suspended call: that entry must reach jRead's handleAsync again.
    if (!this.suspended) {
      const file = this.files.get(pFile);
      if (file !== undefined && !(file instanceof MemoryFile)) {
        const view = file.view ?? this.immutableView(file);
        if (view !== null) {
          const rc = this.readLocal(file, view, pData, iAmt, joinOffset(iOffsetLo, iOffsetHi));
          if (rc !== undefined) return rc;
        }
      }
    }
    return super.xRead(pFile, pData, iAmt, iOffsetLo, iOffsetHi);
  }

  override xFileSize(pFile: number, pSize: number): number | Promise<number> {
    const file = this.files.get(pFile);
    if (file === undefined || file instanceof MemoryFile) return super.xFileSize(pFile, pSize);
    try {
      const size = this.sizeOf(file);
      // An i64, little endian, as two words (no BigInt, no DataView).
      this.module.setValue(pSize, size % 0x1_0000_0000, 'i32');
      this.module.setValue(pSize + 4, Math.floor(size / 0x1_0000_0000), 'i32');
      return VFS.SQLITE_OK;
    } catch (err) {
      return this.fail(err, VFS.SQLITE_IOERR_FSTAT);
    }
  }

  override xAccess(_pVfs: number, _zName: number, _flags: number, pResOut: number): number {
    // No journal, WAL or anything else ever exists next to a replica.
    this.module.setValue(pResOut, 0, 'i32');
    return VFS.SQLITE_OK;
  }

  override xCheckReservedLock(_pFile: number, pResOut: number): number {
    // Nobody ever writes through this VFS.
    this.module.setValue(pResOut, 0, 'i32');
    return VFS.SQLITE_OK;
  }

  override jAccess(_filename: string, _flags: number, pResOut: TypedView): number {
    // No journal, WAL or anything else ever exists next to a replica.
    pResOut.setInt32(0, 0, true);
    return VFS.SQLITE_OK;
  }

  override jDelete(): number {
    return VFS.SQLITE_OK;
  }

  override jRead(fileId: number, pData: DataArray, iOffset: number): number | Promise<number> {
    const file = this.files.get(fileId);
    if (!file) return VFS.SQLITE_IOERR_READ;
    if (file instanceof MemoryFile) return file.read(pData, iOffset);
    return this.hybrid<PendingRead>(
      () => this.readSync(file, pData, iOffset),
      () => this.readAsync(file, iOffset, pData.length),
      (result) => {
        if (result.data) pData.set(result.data);
        return result.rc;
      },
    );
  }

  override jWrite(fileId: number, pData: DataArray, iOffset: number): number {
    const file = this.files.get(fileId);
    if (!file) return VFS.SQLITE_IOERR_WRITE;
    if (file instanceof MemoryFile) return file.write(pData, iOffset);
    return this.refuseWrite(file);
  }

  override jTruncate(fileId: number, size: number): number {
    const file = this.files.get(fileId);
    if (!file) return VFS.SQLITE_IOERR_TRUNCATE;
    if (file instanceof MemoryFile) return file.truncate(size);
    return this.refuseWrite(file);
  }

  override jSync(): number {
    return VFS.SQLITE_OK;
  }

  override jFileSize(fileId: number, pSize: TypedView): number {
    const file = this.files.get(fileId);
    if (!file) return VFS.SQLITE_IOERR_FSTAT;
    if (file instanceof MemoryFile) {
      pSize.setBigInt64(0, BigInt(file.byteLength), true);
      return VFS.SQLITE_OK;
    }
    try {
      const size = this.sizeOf(file);
      pSize.setBigInt64(0, BigInt(size), true);
      return VFS.SQLITE_OK;
    } catch (err) {
      return this.fail(err, VFS.SQLITE_IOERR_FSTAT);
    }
  }

  override jLock(fileId: number, lockType: number): number {
    const file = this.files.get(fileId);
    if (!file || file instanceof MemoryFile) return VFS.SQLITE_OK;
    if (lockType > VFS.SQLITE_LOCK_SHARED) return this.refuseWrite(file);
    if (file.locked) return VFS.SQLITE_OK;
    return this.beginRead(file);
  }

  override jUnlock(fileId: number, lockType: number): number {
    const file = this.files.get(fileId);
    if (!file || file instanceof MemoryFile) return VFS.SQLITE_OK;
    if (lockType === NO_LOCK) {
      file.view?.release();
      file.view = null;
      file.locked = false;
    }
    return VFS.SQLITE_OK;
  }

  override jFileControl(fileId: number, op: number, pArg: DataView): number | Promise<number> {
    const file = this.files.get(fileId);
    if (op !== VFS.SQLITE_FCNTL_PRAGMA || !file || file instanceof MemoryFile) return VFS.SQLITE_NOTFOUND;
    // pArg may be detached by the time an async branch resumes: keep the address, not the view.
    const argv = pArg.byteOffset;
    const name = this.module.UTF8ToString(this.module.getValue(argv + 4, 'i32'));
    const kind = ltxPragmaKind(name);
    if (!kind) return VFS.SQLITE_NOTFOUND;
    const pValue = this.module.getValue(argv + 8, 'i32');
    const value = pValue ? this.module.UTF8ToString(pValue) : null;
    let request: PragmaRequest;
    try {
      request = parsePragmaRequest(name, value);
    } catch (err) {
      return this.pragmaError(argv, err, VFS.SQLITE_ERROR);
    }
    if (request.kind === 'read') {
      try {
        this.setPragmaResult(argv, this.readPragma(file, kind));
        return VFS.SQLITE_OK;
      } catch (err) {
        return this.pragmaError(argv, err, VFS.SQLITE_ERROR);
      }
    }
    if (file.locked) {
      const busy = new LtxvfsError(
        'BAD_ARGUMENT',
        `PRAGMA ${name} cannot move "${file.name}" inside an open read transaction; finish it (COMMIT, or reset the running statements) first`,
      );
      return this.pragmaError(argv, busy, VFS.SQLITE_BUSY);
    }
    if (request.kind === 'latest') {
      this.repin(file, null);
      return VFS.SQLITE_OK;
    }
    const target = request.kind === 'txid' ? { txid: request.txid } : { timestamp: request.at };
    return this.hybrid<{ view?: ReplicaView; error?: unknown }>(
      () => undefined,
      async () => {
        try {
          return { view: await file.replica.acquireAt(target) };
        } catch (error) {
          return { error };
        }
      },
      ({ view, error }) => {
        if (!view) return this.pragmaError(argv, error, VFS.SQLITE_ERROR);
        this.repin(file, view);
        return VFS.SQLITE_OK;
      },
    );
  }

  override jDeviceCharacteristics(): number {
    return 0;
  }

  // ---- reads ---------------------------------------------------------------------------------

  private readSync(file: MainFile, pData: DataArray, offset: number): number | undefined {
    const outcome = this.withViewSync(file, (view) => {
      const pages = new Map<number, Uint8Array>();
      for (const pgno of pagesCovering(view, offset, pData.length)) {
        const page = view.readPageSync(pgno);
        if (!page) return undefined;
        pages.set(pgno, page);
      }
      return assemble(view, offset, pData.length, pages);
    });
    if (outcome === undefined) return undefined;
    if ('error' in outcome) return this.fail(outcome.error, VFS.SQLITE_IOERR_READ);
    pData.set(outcome.data);
    return outcome.rc;
  }

  /** SQLITE_OK once the bytes are in wasm memory; undefined when the general path must answer. */
  private readLocal(
    file: MainFile,
    view: ReplicaView,
    pData: number,
    amount: number,
    offset: number,
  ): number | undefined {
    const pageSize = view.pageSize;
    const index = Math.floor(offset / pageSize);
    const within = offset - index * pageSize;
    const pgno = index + 1;
    if (within + amount > pageSize || pgno > view.pageCount) return undefined;
    let page: Uint8Array | undefined;
    try {
      if (pgno !== 1 && view.readPageIntoSync !== undefined) {
        return view.readPageIntoSync(pgno, within, amount, this.module.HEAPU8, pData)
          ? VFS.SQLITE_OK
          : undefined;
      }
      page = pgno === 1 ? this.pageOneOf(file, view) : view.readPageSync(pgno);
    } catch (err) {
      return this.fail(err, VFS.SQLITE_IOERR_READ);
    }
    // A page of the wrong size is reported by the general path, with its context.
    if (page === undefined || page.length !== pageSize) return undefined;
    this.module.HEAPU8.set(
      within === 0 && amount === pageSize ? page : page.subarray(within, within + amount),
      pData,
    );
    return VFS.SQLITE_OK;
  }

  /**
   * Page 1 patched for `view` (see patchPageOne), made once per TXID: a state's page 1 never
   * changes, and SQLite reads its change counter at the start of every transaction (from the
   * hydrated file that would be a read and a patch each time).
   */
  private pageOneOf(file: MainFile, view: ReplicaView): Uint8Array | undefined {
    const known = file.pageOne;
    if (known !== null && known.txid === view.txid && known.pageCount === view.pageCount)
      return known.patched;
    const raw = view.readPageSync(1);
    if (raw === undefined) return undefined;
    const patched = patchPageOne(raw, view.txid, view.pageCount);
    file.pageOne = { txid: view.txid, pageCount: view.pageCount, patched };
    return patched;
  }

  private async readAsync(file: MainFile, offset: number, length: number): Promise<PendingRead> {
    try {
      return await this.withViewAsync(file, async (view) => {
        const wanted = pagesCovering(view, offset, length);
        const loaded = await Promise.all(wanted.map((pgno) => view.readPage(pgno)));
        const pages = new Map<number, Uint8Array>();
        for (const [i, pgno] of wanted.entries())
          pages.set(pgno, present(loaded[i], `page ${pgno} of the read`));
        return assemble(view, offset, length, pages);
      });
    } catch (err) {
      return { rc: this.fail(err, VFS.SQLITE_IOERR_READ) };
    }
  }

  // ---- views ---------------------------------------------------------------------------------

  /**
   * Pins the view of a read transaction. Only jRead and jFileControl may suspend the wasm stack
   * (Asyncify cannot resume inside xLock), so a pinned TXID whose view is not at hand is acquired
   * by the transaction's first read instead.
   */
  private beginRead(file: MainFile): number {
    if (file.pinned) {
      if (file.view && file.view.txid !== file.pinned.txid) {
        file.view.release();
        file.view = null;
      }
      // A state the replica has at hand is pinned now, so the transaction's reads need not wait.
      try {
        if (!file.view) file.view = file.replica.acquireKnown?.(file.pinned.txid) ?? null;
      } catch (err) {
        return this.fail(err, VFS.SQLITE_IOERR_LOCK);
      }
      file.locked = true;
      return VFS.SQLITE_OK;
    }
    try {
      const latest = file.replica.acquireLatest();
      file.view?.release();
      file.view = latest;
      file.locked = true;
      return VFS.SQLITE_OK;
    } catch (err) {
      return this.fail(err, VFS.SQLITE_IOERR_LOCK);
    }
  }

  /**
   * An immutable connection (the fast path's, for a pinned URI) takes no locks, so its reads take
   * the pinned state themselves and keep it until releaseIdleViews. null elsewhere, and when the
   * state is not at hand without I/O.
   */
  private immutableView(file: MainFile): ReplicaView | null {
    if (!this.synchronous || file.pinned === null || file.locked) return null;
    file.view = file.replica.acquireKnown?.(file.pinned.txid) ?? null;
    return file.view;
  }

  private sizeOf(file: MainFile): number {
    if (file.view) return file.view.pageCount * file.view.pageSize;
    if (file.pinned) return file.pinned.pageCount * file.pinned.pageSize;
    const view = file.replica.acquireLatest();
    try {
      return view.pageCount * view.pageSize;
    } finally {
      view.release();
    }
  }

  /**
   * Runs `use` on the file's view, or outside a transaction on a short-lived one (SQLite reads
   * the header at open without a lock). undefined when that needs I/O (a pinned TXID).
   */
  private withViewSync<T>(
    file: MainFile,
    use: (view: ReplicaView) => T | undefined,
  ): T | { error: unknown } | undefined {
    try {
      if (file.view) return use(file.view);
      if (file.pinned) {
        const view = this.immutableView(file);
        return view === null ? undefined : use(view);
      }
      const view = file.replica.acquireLatest();
      try {
        return use(view);
      } finally {
        view.release();
      }
    } catch (error) {
      return { error };
    }
  }

  private async withViewAsync<T>(file: MainFile, use: (view: ReplicaView) => Promise<T>): Promise<T> {
    if (!file.view && file.locked && file.pinned) {
      // First read of a pinned read transaction: this view is kept until jUnlock.
      file.view = await file.replica.acquireAt({ txid: file.pinned.txid });
    }
    if (file.view) return use(file.view);
    const view = file.pinned
      ? await file.replica.acquireAt({ txid: file.pinned.txid })
      : file.replica.acquireLatest();
    try {
      return await use(view);
    } finally {
      view.release();
    }
  }

  private repin(file: MainFile, view: ReplicaView | null): void {
    file.view?.release();
    file.view = view;
    file.pinned = view ? pinOf(view) : null;
  }

  // ---- pragmas -------------------------------------------------------------------------------

  private readPragma(file: MainFile, kind: LtxPragma): string {
    switch (kind) {
      case 'lag':
        return String(Math.round(file.replica.lagSeconds() * 1000) / 1000);
      case 'hydration':
        return formatHydration(file.replica.hydration(), formatTxid);
      case 'txid':
      case 'time': {
        let txid: Txid;
        let timestamp: Date;
        if (file.view) ({ txid, timestamp } = file.view);
        else if (file.pinned) ({ txid, timestamp } = file.pinned);
        else {
          const view = file.replica.acquireLatest();
          ({ txid, timestamp } = view);
          view.release();
        }
        return kind === 'txid' ? formatTxid(txid) : timestamp.toISOString();
      }
    }
  }

  /** azArg[0] must be a string SQLite can sqlite3_free. */
  private setPragmaResult(argv: number, text: string): void {
    const bytes = new TextEncoder().encode(`${text}\0`);
    const ptr = this.module._sqlite3_malloc(bytes.length);
    this.module.HEAPU8.set(bytes, ptr);
    this.module.setValue(argv, ptr, 'i32');
  }

  private pragmaError(argv: number, err: unknown, rc: number): number {
    this.fail(err, rc);
    this.setPragmaResult(argv, err instanceof Error ? err.message : String(err));
    return rc;
  }

  // ---- errors and the sync/async switch ---------------------------------------------------------

  private refuseWrite(file: MainFile): number {
    this.lastError = new LtxvfsError(
      'REPLICA_READONLY',
      `"${file.name}" is a read-only replica: writes are refused`,
    );
    return VFS.SQLITE_READONLY;
  }

  private fail(err: unknown, rc: number): number {
    this.lastError = err instanceof Error ? err : new Error(String(err));
    // A page that is not local is routine on the plain build: the caller runs the call elsewhere.
    if (!(err instanceof PageNotLocal)) this.logger?.(`ltx vfs: ${this.lastError.message}`);
    return rc;
  }

  /**
   * Sync when `fast` can answer (a cache hit costs no Asyncify unwind), async otherwise.
   * Asyncify calls the method again when the wasm stack resumes, and that second entry must reach
   * handleAsync again to collect the result; `suspended` says which entry this is. Safe only while
   * calls into the module are serialized. `slow` must not reject: Asyncify would never resume.
   * Under JSPI the method simply returns a promise; the suspending import waits for it.
   */
  private hybrid<T>(
    fast: () => number | undefined,
    slow: () => Promise<T>,
    finish: (value: T) => number,
  ): number | Promise<number> {
    if (this.synchronous) return fast() ?? this.fail(new PageNotLocal('a page'), VFS.SQLITE_IOERR_READ);
    if (this.jspi) return fast() ?? slow().then(finish);
    if (!this.suspended) {
      const rc = fast();
      if (rc !== undefined) return rc;
    }
    this.suspended = !this.suspended;
    const value = this.module.handleAsync(slow);
    if (this.suspended) return VFS.SQLITE_OK; // unwinding: the value is ignored
    return finish(value);
  }
}

/** `replica.db?vfs=ltx&txid=5` -> path without leading slashes, and raw (undecoded) params. */
export function splitUri(filename: string): { path: string; params: Map<string, string> } {
  const q = filename.indexOf('?');
  const path = (q < 0 ? filename : filename.slice(0, q)).replace(/^\/+/, '');
  const params = new Map<string, string>();
  if (q >= 0) {
    for (const pair of filename.slice(q + 1).split('&')) {
      if (!pair) continue;
      const eq = pair.indexOf('=');
      params.set(eq < 0 ? pair : pair.slice(0, eq), eq < 0 ? '' : pair.slice(eq + 1));
    }
  }
  return { path, params };
}

/** Emscripten passes a 64-bit argument as two 32-bit signed halves. */
function joinOffset(lo: number, hi: number): number {
  return hi * 0x1_0000_0000 + (lo >>> 0);
}

function pagesCovering(view: ReplicaView, offset: number, length: number): number[] {
  const first = Math.floor(offset / view.pageSize) + 1;
  const last = Math.min(Math.floor((offset + length - 1) / view.pageSize) + 1, view.pageCount);
  const out: number[] = [];
  for (let pgno = first; pgno <= last; pgno++) out.push(pgno);
  return out;
}

/** The requested byte range out of whole pages; zeros and SHORT_READ past the end of the database. */
function assemble(
  view: ReplicaView,
  offset: number,
  length: number,
  pages: Map<number, Uint8Array>,
): PendingRead & { data: Uint8Array } {
  const data = new Uint8Array(length);
  let filled = 0;
  for (const [pgno, raw] of pages) {
    const page = pgno === 1 ? patchPageOne(raw, view.txid, view.pageCount) : raw;
    if (page.length !== view.pageSize) {
      throw new LtxvfsError(
        'REPLICA_CORRUPT',
        `page ${pgno} at TXID ${formatTxid(view.txid)} has ${page.length} bytes, expected ${view.pageSize}`,
      );
    }
    const pageStart = (pgno - 1) * view.pageSize;
    const from = Math.max(offset, pageStart);
    const to = Math.min(offset + length, pageStart + view.pageSize);
    data.set(page.subarray(from - pageStart, to - pageStart), from - offset);
    filled += to - from;
  }
  return { rc: filled < length ? VFS.SQLITE_IOERR_SHORT_READ : VFS.SQLITE_OK, data };
}
