import * as SQLite from '@journeyapps/wa-sqlite';
import { type Binder, type BindingExports, bindAll, exportBinder } from './binding.js';
import { type LtxVfs, PageNotLocal } from './ltx-vfs.js';
import type { WaSqliteInstance } from './module.js';
import type { Stepper } from './stepper.js';
import type { Row, SqlParams, SqlValue } from './values.js';

/** What a fast-path call returns when the statement needs a page that is not local. */
export const NOT_LOCAL: unique symbol = Symbol('not local');
export type NotLocal = typeof NOT_LOCAL;

/** A fast-path answer: at once, or after the event loop's turn; NOT_LOCAL: take the waiting path. */
export type FastAnswer<T> = T | NotLocal | Promise<T | NotLocal>;

/** The fast path's answer, else (NOT_LOCAL) what `waiting` gives. */
export function orWaiting<T>(answer: FastAnswer<T>, waiting: () => Promise<T>): Promise<T> {
  if (answer instanceof Promise) return answer.then((value) => (value === NOT_LOCAL ? waiting() : value));
  return answer === NOT_LOCAL ? waiting() : Promise.resolve(answer);
}

/**
 * The plain ("sync") wa-sqlite module that every fast path of one Ltx shares, with its own ltx
 * VFS. Calls into it need no mutex: none of them can wait, so each runs to its end before any
 * other JavaScript does.
 */
export interface SyncInstance extends WaSqliteInstance {
  readonly vfs: LtxVfs;
  readonly stepper: Stepper;
}

/** The plain build's exports the fast path calls directly. */
interface SyncModule extends BindingExports {
  _sqlite3_prepare_v3(
    db: number,
    sql: number,
    bytes: number,
    flags: number,
    stmtOut: number,
    tailOut: number,
  ): number;
  _sqlite3_stmt_readonly(stmt: number): number;
  _sqlite3_column_count(stmt: number): number;
  _sqlite3_step(stmt: number): number;
  _sqlite3_reset(stmt: number): number;
  _sqlite3_clear_bindings(stmt: number): number;
  _sqlite3_finalize(stmt: number): number;
  getValue(ptr: number, type: string): number;
}

interface FastStatement {
  readonly handle: number;
  readonly columns: readonly string[];
  /** Calls to leave to the waiting path before trying this one again (after a miss). */
  skip: number;
  /** The next `skip` after a miss: doubles while the statement keeps missing. */
  backoff: number;
  /** Parameters are bound (a call without them must clear them first). */
  bound: boolean;
}

/** A statement the fast path never runs (not a lone read-only query). */
const INELIGIBLE = 'ineligible';
/** The handle of a statement whose preparing needed a page that was not local. */
const UNPREPARED = 0;
const CACHE_SIZE = 32;
const MAX_BACKOFF = 256;
const SQLITE_PREPARE_PERSISTENT = 0x01;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * SELECT, WITH, VALUES or EXPLAIN after any leading comments: a query that reads and changes no
 * state of the connection (prepare still checks that SQLite agrees it is read-only).
 */
export function isPlainQuery(sql: string): boolean {
  return /^(?:\s|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*(?:select|with|values|explain)\b/i.test(sql);
}

/**
 * The fast path of one connection: a second SQLite connection to the same URI, on the plain
 * build, that runs a lone read-only query while every page it reads is local (the hydrated file
 * or the page cache). The plain build needs neither Asyncify's instrumentation (a scan runs twice
 * as fast) nor a promise per step, nor JSPI's stack switch per page read.
 *
 * A read that is not local fails the statement (PageNotLocal); the caller then runs the whole
 * call on its waiting connection, which fetches the pages, so a later call finds them. The query
 * has no side effects and both connections read a consistent state, so running it again from the
 * start gives what the first run would have. A statement that keeps missing is left to the
 * waiting path for a growing number of calls, so a cache too small for a scan costs little.
 */
export class LocalFastPath {
  private readonly statements = new Map<string, FastStatement | typeof INELIGIBLE>();
  private readonly module: SyncModule;
  private readonly binder: Binder;
  private closed = false;
  /** The SQL of the last statement used, already the most recent in `statements`. */
  private lastSql: string | undefined;
  /** Calls answered here, and calls that needed a page that was not local. */
  readonly counts = { fast: 0, notLocal: 0 };

  private constructor(
    private readonly instance: SyncInstance,
    private readonly db: number,
    /** An immutable connection to one TXID: the state its reads take is released after each call. */
    private readonly immutable: boolean,
  ) {
    this.module = instance.module as unknown as SyncModule;
    this.binder = exportBinder(this.module);
  }

  /**
   * A fast path for `uri`, or undefined where the plain build cannot open it without waiting.
   * `immutable`: the URI pins one TXID with `immutable=1`.
   */
  static async open(
    instance: SyncInstance,
    uri: string,
    cacheSizeKiB: number,
    immutable = false,
  ): Promise<LocalFastPath | undefined> {
    const { sqlite3, vfs } = instance;
    vfs.clearLastError();
    let db: number | undefined;
    try {
      db = await sqlite3.open_v2(uri, SQLite.SQLITE_OPEN_READONLY | SQLite.SQLITE_OPEN_URI);
      await sqlite3.exec(db, `PRAGMA temp_store = MEMORY; PRAGMA cache_size = -${cacheSizeKiB}`);
      vfs.releaseIdleViews();
      return new LocalFastPath(instance, db, immutable);
    } catch {
      vfs.clearLastError();
      if (db !== undefined) await sqlite3.close(db).catch(() => undefined);
      return undefined;
    }
  }

  /** The first row (undefined: none), or NOT_LOCAL when the waiting path must answer. */
  first(sql: string, params: SqlParams | undefined): Row | undefined | NotLocal {
    const statement = this.statement(sql);
    if (statement === undefined) return NOT_LOCAL;
    const rc = this.start(statement, params);
    if (rc === SQLite.SQLITE_DONE) return this.finish(statement, undefined);
    if (rc !== SQLite.SQLITE_ROW) return this.missed(statement);
    return this.finish(statement, this.instance.stepper.row(statement.handle, statement.columns));
  }

  /** Every row as an array of values, or NOT_LOCAL. */
  all(sql: string, params: SqlParams | undefined): { columns: string[]; rows: SqlValue[][] } | NotLocal {
    const statement = this.statement(sql);
    if (statement === undefined) return NOT_LOCAL;
    const { handle, columns } = statement;
    const { stepper } = this.instance;
    const rows: SqlValue[][] = [];
    for (
      let rc = this.start(statement, params);
      rc !== SQLite.SQLITE_DONE;
      rc = this.module._sqlite3_step(handle)
    ) {
      if (rc !== SQLite.SQLITE_ROW) return this.missed(statement);
      const row: SqlValue[] = new Array(columns.length);
      for (let i = 0; i < columns.length; i++) row[i] = stepper.column(handle, i);
      rows.push(row);
    }
    return this.finish(statement, { columns: [...columns], rows });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const statement of this.statements.values()) {
      if (statement !== INELIGIBLE && statement.handle !== UNPREPARED)
        this.module._sqlite3_finalize(statement.handle);
    }
    this.statements.clear();
    await this.instance.sqlite3.close(this.db).catch(() => undefined);
  }

  /** Binds and takes the first step; any failure to bind is left to the waiting path's error. */
  private start(statement: FastStatement, params: SqlParams | undefined): number {
    this.instance.vfs.clearLastError();
    const { handle } = statement;
    try {
      if (params !== undefined) {
        bindAll(this.binder, handle, params);
        statement.bound = true;
      } else if (statement.bound) {
        this.module._sqlite3_clear_bindings(handle);
        statement.bound = false;
      }
    } catch {
      return SQLite.SQLITE_MISUSE;
    }
    return this.module._sqlite3_step(handle);
  }

  private finish<T>(statement: FastStatement, value: T): T {
    this.rewind(statement);
    if (this.immutable) this.instance.vfs.releaseIdleViews();
    statement.backoff = 1;
    this.counts.fast++;
    return value;
  }

  /** The statement failed (a page not local, or an error the waiting path will report). */
  private missed(statement: FastStatement): NotLocal {
    this.rewind(statement);
    if (this.immutable) this.instance.vfs.releaseIdleViews();
    const err = this.instance.vfs.takeLastError();
    if (err instanceof PageNotLocal) {
      statement.skip = statement.backoff;
      statement.backoff = Math.min(statement.backoff * 2, MAX_BACKOFF);
    }
    this.counts.notLocal++;
    return NOT_LOCAL;
  }

  /** Reset, so it holds no read transaction; its bindings stay until the next call replaces them. */
  private rewind(statement: FastStatement): void {
    this.module._sqlite3_reset(statement.handle);
  }

  /** The cached statement for `sql`, prepared on first use; undefined: not run here (this time). */
  private statement(sql: string): FastStatement | undefined {
    if (this.closed) return undefined;
    const known = this.statements.get(sql);
    if (known === INELIGIBLE) return undefined;
    if (known !== undefined) {
      if (sql !== this.lastSql) {
        this.statements.delete(sql); // most recently used last
        this.statements.set(sql, known);
        this.lastSql = sql;
      }
      if (known.skip > 0) {
        known.skip--;
        return undefined;
      }
      if (known.handle !== UNPREPARED) return known;
    } else if (!isPlainQuery(sql)) {
      this.remember(sql, INELIGIBLE);
      return undefined;
    }
    return this.prepare(sql, known?.backoff ?? 1);
  }

  /**
   * Prepares `sql` if it is exactly one read-only query that returns rows. Preparing reads the
   * schema: when its pages are not local, or SQLite refuses the SQL (the waiting path reports
   * that), the statement is left UNPREPARED and tried again later with the same backoff as a miss.
   */
  private prepare(sql: string, backoff: number): FastStatement | undefined {
    const m = this.module;
    const bytes = encoder.encode(sql);
    const stmtOut = (bytes.length + 4) & ~3; // two pointers after the text and its NUL, aligned
    const buffer = m._sqlite3_malloc(stmtOut + 8);
    if (buffer === 0) return undefined;
    try {
      m.HEAPU8.set(bytes, buffer);
      m.HEAPU8[buffer + bytes.length] = 0;
      this.instance.vfs.clearLastError();
      const rc = m._sqlite3_prepare_v3(
        this.db,
        buffer,
        bytes.length + 1,
        SQLITE_PREPARE_PERSISTENT,
        buffer + stmtOut,
        buffer + stmtOut + 4,
      );
      const handle = m.getValue(buffer + stmtOut, 'i32');
      if (rc !== SQLite.SQLITE_OK || handle === 0) {
        if (handle !== 0) m._sqlite3_finalize(handle);
        // Not local, or an SQL error (a table the primary has not created yet, say): tried again
        // after the same backoff as a miss, never given up for good.
        if (this.instance.vfs.takeLastError() instanceof PageNotLocal) this.counts.notLocal++;
        this.remember(sql, {
          handle: UNPREPARED,
          columns: [],
          skip: backoff,
          backoff: Math.min(backoff * 2, MAX_BACKOFF),
          bound: false,
        });
        return undefined;
      }
      const tail = m.getValue(buffer + stmtOut + 4, 'i32');
      const rest = decoder.decode(m.HEAPU8.subarray(tail, buffer + bytes.length));
      const lone = /^(?:\s|;|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*$/.test(rest);
      if (!lone || m._sqlite3_stmt_readonly(handle) === 0 || m._sqlite3_column_count(handle) === 0) {
        m._sqlite3_finalize(handle);
        this.remember(sql, INELIGIBLE);
        return undefined;
      }
      const statement = {
        handle,
        columns: this.instance.stepper.columnNames(handle),
        skip: 0,
        backoff: 1,
        bound: false,
      };
      this.remember(sql, statement);
      return statement;
    } finally {
      m._sqlite3_free(buffer);
    }
  }

  private remember(sql: string, statement: FastStatement | typeof INELIGIBLE): void {
    this.statements.set(sql, statement);
    this.lastSql = sql;
    if (this.statements.size <= CACHE_SIZE) return;
    const oldest = this.statements.entries().next().value;
    if (oldest === undefined) return;
    this.statements.delete(oldest[0]);
    if (oldest[1] !== INELIGIBLE && oldest[1].handle !== UNPREPARED)
      this.module._sqlite3_finalize(oldest[1].handle);
  }
}
