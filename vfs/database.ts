import * as SQLite from '@journeyapps/wa-sqlite';
import { LtxvfsError } from '../src/util/errors.js';
import { bindAll } from './binding.js';
import {
  type FastAnswer,
  isPlainQuery,
  type LocalFastPath,
  NOT_LOCAL,
  orWaiting,
} from './local-fast-path.js';
import type { LtxVfs } from './ltx-vfs.js';
import type { WaSqliteInstance } from './module.js';
import type { Mutex } from './mutex.js';
import { LtxStatement, type StatementHost, toRow } from './statement.js';
import type { Stepper } from './stepper.js';
import type { Row, SqlParams, SqlValue } from './values.js';

/** One wa-sqlite module instance with its own ltx VFS; every call into it goes through `mutex`. */
export interface PooledInstance extends WaSqliteInstance {
  readonly vfs: LtxVfs;
  readonly stepper: Stepper;
  readonly mutex: Mutex;
  connections: number;
}

/** A SQL error from SQLite itself (syntax, no such table, ...); `resultCode` is SQLite's. */
export class SqlError extends LtxvfsError {
  readonly resultCode: number;
  constructor(message: string, resultCode: number) {
    super('SQL_ERROR', message);
    this.name = 'SqlError';
    this.resultCode = resultCode;
  }
}

const STATEMENT_CACHE_SIZE = 32;

/**
 * PRAGMAs act when prepared (the ltx VFS answers them at prepare time), and ATTACH/DETACH/VACUUM
 * change the connection itself: those are prepared fresh every time.
 */
function isCacheable(sql: string): boolean {
  return !/^\s*(pragma|attach|detach|vacuum)\b/i.test(sql);
}

export interface QueryResult {
  columns: string[];
  rows: SqlValue[][];
}

/** Longest stretch of back-to-back calls before one gives the event loop a turn. */
const MAX_BUSY_MS = 10;
let lastTurn = Date.now();

function turnIsDue(): boolean {
  return Date.now() - lastTurn >= MAX_BUSY_MS;
}

/**
 * A query answered from cached pages completes in microtasks only, so a caller awaiting queries in
 * a loop would starve timers and I/O: the replica's poller would never run and the TXID would stay
 * put. Every MAX_BUSY_MS one call waits for a turn of the event loop (setImmediate: timers and I/O
 * callbacks run first), which costs microseconds per stretch.
 */
function yieldIfBusy(): Promise<void> | undefined {
  return turnIsDue() ? takeTurn() : undefined;
}

function takeTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
    lastTurn = Date.now();
  });
}

/**
 * A read-only connection to a replica (opened by `Ltx.open`). Methods are async and may be called
 * concurrently: calls on connections that share a module instance run one after the other.
 */
export class LtxDatabase {
  private closed = false;
  /** Prepared statements by SQL text, least recently used first. */
  private readonly statements = new Map<string, number>();
  /** Statements handed out by prepare(), finalized on close. */
  private readonly prepared = new Set<LtxStatement>();
  private readonly host: StatementHost;
  /**
   * Set once the connection runs anything but a plain query (a PRAGMA that sets, ATTACH, BEGIN,
   * a temp table, ...): the fast path's connection would not see that state, so it is not used
   * again.
   */
  private diverged = false;
  /** Calls of this connection running or queued on its module instance (iterations included). */
  private active = 0;

  constructor(
    readonly uri: string,
    private readonly instance: PooledInstance,
    private readonly handle: number,
    private readonly onClose: (db: LtxDatabase) => void,
    private readonly fast?: LocalFastPath,
  ) {
    this.host = {
      uri,
      sqlite3: instance.sqlite3,
      stepper: instance.stepper,
      call: (task) => this.call(task),
      forget: (statement) => this.prepared.delete(statement),
      fastFirst: (sql, params) => this.fastFirst(sql, params),
      fastAll: (sql, params) => this.fastAll(sql, params),
      hold: () => {
        this.active++;
        let held = true;
        return () => {
          if (held) this.active--;
          held = false;
        };
      },
    };
  }

  /**
   * How this connection's calls were answered: `fast` by the synchronous fast path (every page
   * local), `notLocal` tried there first but run on the waiting path because a page was not local
   * (or the statement failed there). For diagnostics and tests.
   */
  get fastPathCounts(): { readonly fast: number; readonly notLocal: number } {
    return this.fast?.counts ?? { fast: 0, notLocal: 0 };
  }

  /**
   * Prepares one statement for repeated use (`get`, `all`, `iterate`, `columns`, `finalize`).
   * SQL with more than one statement is refused; use `exec` or `query` for scripts.
   */
  async prepare(sql: string): Promise<LtxStatement> {
    this.assertOpen();
    return this.call(async () => {
      const { sqlite3 } = this.instance;
      let handle: number | undefined;
      for await (const stmt of sqlite3.statements(this.handle, sql, { unscoped: true })) {
        handle = stmt;
        break;
      }
      if (handle === undefined) throw new LtxvfsError('BAD_ARGUMENT', `no SQL statement in "${sql}"`);
      const source = sqlite3.sql(handle);
      this.sawStatement(source);
      if (!isOnlyStatement(sql, source)) {
        await sqlite3.finalize(handle);
        throw new LtxvfsError(
          'BAD_ARGUMENT',
          `prepare() takes one statement; "${sql}" has more after "${source}" (use exec() or query())`,
        );
      }
      const statement = new LtxStatement(this.host, source, handle, sqlite3.column_names(handle));
      this.prepared.add(statement);
      return statement;
    });
  }

  /** All rows as objects (column name -> value). */
  async all(sql: string, params?: SqlParams): Promise<Row[]> {
    const { columns, rows } = await this.query(sql, params);
    return rows.map((values) => toRow(columns, values));
  }

  /**
   * The first row of the last statement that returns rows, or undefined. Only that first row is
   * stepped: the rest of the result is never read (nor, on a cold replica, downloaded).
   */
  get(sql: string, params?: SqlParams): Promise<Row | undefined> {
    this.assertOpen();
    return orWaiting(this.fastFirst(sql, params), () =>
      this.call(() => this.runEach<Row | undefined>(sql, (stmt) => this.firstRow(stmt, params), undefined)),
    );
  }

  /** Runs one or more statements; rows are discarded. */
  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  /**
   * `pragma('ltx_txid')` reads a PRAGMA's first value; `pragma('ltx_txid', 42)` sets it.
   * Names may be schema-qualified (`other.ltx_txid`).
   */
  async pragma(name: string, value?: string | number | bigint): Promise<SqlValue | undefined> {
    if (!/^([A-Za-z_][A-Za-z0-9_]*\.)?[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new LtxvfsError('BAD_ARGUMENT', `invalid PRAGMA name "${name}"`);
    }
    const sql =
      value === undefined
        ? `PRAGMA ${name}`
        : `PRAGMA ${name} = ${typeof value === 'string' ? `'${value.replaceAll("'", "''")}'` : value}`;
    const { rows } = await this.query(sql);
    return rows[0]?.[0];
  }

  /** Column names in order and rows as arrays (keeps duplicate column names apart). */
  query(sql: string, params?: SqlParams): Promise<QueryResult> {
    this.assertOpen();
    return orWaiting(this.fastAll(sql, params), () =>
      this.call(() => this.runEach(sql, (stmt) => this.allRows(stmt, params), { columns: [], rows: [] })),
    );
  }

  /**
   * Runs each statement of `sql` with `run` (which leaves it reset) and returns what `run` gave
   * for the last statement that has result columns, else `empty`. SQL seen before runs its cached
   * statement; a lone cacheable statement is kept for the next call.
   */
  private async runEach<T>(sql: string, run: (stmt: number) => Promise<T>, empty: T): Promise<T> {
    const { sqlite3 } = this.instance;
    const cached = this.statements.get(sql);
    if (cached !== undefined) {
      this.statements.delete(sql); // re-insert: most recently used last
      this.statements.set(sql, cached);
      try {
        return await run(cached);
      } catch (err) {
        this.statements.delete(sql);
        await sqlite3.finalize(cached).catch(() => undefined);
        throw err;
      }
    }
    let result = empty;
    const prepared: number[] = [];
    try {
      for await (const stmt of sqlite3.statements(this.handle, sql, { unscoped: true })) {
        // Finalizing is deferred: a lone statement may be kept for the next call.
        prepared.push(stmt);
        this.sawStatement(sqlite3.sql(stmt));
        const value = await run(stmt);
        if (sqlite3.column_count(stmt) > 0) result = value;
      }
    } catch (err) {
      for (const stmt of prepared) await sqlite3.finalize(stmt).catch(() => undefined);
      throw err;
    }
    const [only] = prepared;
    if (only !== undefined && prepared.length === 1 && isCacheable(sql)) await this.remember(sql, only);
    else for (const stmt of prepared) await sqlite3.finalize(stmt);
    return result;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.fast?.close();
      await this.call(async () => {
        for (const statement of this.prepared)
          await this.instance.sqlite3.finalize(statement.detach()).catch(() => undefined);
        this.prepared.clear();
        for (const stmt of this.statements.values())
          await this.instance.sqlite3.finalize(stmt).catch(() => undefined);
        this.statements.clear();
        await this.instance.sqlite3.close(this.handle);
      });
    } finally {
      this.onClose(this);
    }
  }

  /** Binds, steps once, reads the row if there is one, and rewinds the statement. */
  private async firstRow(stmt: number, params: SqlParams | undefined): Promise<Row | undefined> {
    const { sqlite3, stepper } = this.instance;
    if (params !== undefined) bindAll(sqlite3, stmt, params);
    try {
      return await stepper.stepRow(stmt, stepper.columnNames(stmt));
    } finally {
      await this.rewind(stmt);
    }
  }

  /** Binds, steps to the end, and rewinds the statement. */
  private async allRows(stmt: number, params: SqlParams | undefined): Promise<QueryResult> {
    try {
      return await this.stepAll(stmt, params);
    } finally {
      await this.rewind(stmt);
    }
  }

  /** Back to the start with no bindings, so the statement holds no read transaction. */
  private async rewind(stmt: number): Promise<void> {
    await this.instance.stepper.reset(stmt);
    this.instance.sqlite3.clear_bindings(stmt);
  }

  private async stepAll(stmt: number, params: SqlParams | undefined): Promise<QueryResult> {
    const { sqlite3, stepper } = this.instance;
    if (params !== undefined) bindAll(sqlite3, stmt, params);
    const columns = stepper.columnNames(stmt);
    const rows: SqlValue[][] = [];
    for (;;) {
      const step = stepper.step(stmt);
      if ((typeof step === 'number' ? step : await step) !== SQLite.SQLITE_ROW) break;
      const row: SqlValue[] = [];
      for (let i = 0; i < columns.length; i++) row.push(stepper.column(stmt, i));
      rows.push(row);
    }
    return { columns, rows };
  }

  /** Keeps a prepared statement (reset, so it holds no read transaction) for the next call. */
  private async remember(sql: string, stmt: number): Promise<void> {
    const { sqlite3 } = this.instance;
    await this.rewind(stmt);
    this.statements.set(sql, stmt);
    if (this.statements.size > STATEMENT_CACHE_SIZE) {
      const oldest = this.statements.entries().next().value;
      if (oldest !== undefined) {
        this.statements.delete(oldest[0]);
        await sqlite3.finalize(oldest[1]);
      }
    }
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  private assertOpen(): void {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `database ${this.uri} is closed`);
  }

  /** Serializes on the module instance and turns failures into named errors. */
  private async call<T>(task: () => Promise<T>): Promise<T> {
    this.active++;
    try {
      return await this.instance.mutex.run(async () => {
        const turn = yieldIfBusy();
        if (turn !== undefined) await turn;
        this.instance.vfs.clearLastError();
        try {
          return await task();
        } catch (err) {
          throw translateError(err, this.instance.vfs.takeLastError(), this.uri);
        }
      });
    } finally {
      this.active--;
    }
  }

  /**
   * The fast path answers only while this connection is idle (nothing of it running or queued,
   * no iteration open: those see their own transaction's state) and has no state of its own.
   */
  private fastReady(): LocalFastPath | undefined {
    return this.fast !== undefined && !this.diverged && this.active === 0 && !this.closed
      ? this.fast
      : undefined;
  }

  /**
   * The first row from the fast path, synchronously (NOT_LOCAL: take the waiting path). When the
   * event loop's turn is due (see yieldIfBusy) the answer is a promise that gives it first.
   */
  private fastFirst(sql: string, params: SqlParams | undefined): FastAnswer<Row | undefined> {
    const fast = this.fastReady();
    if (fast === undefined) return NOT_LOCAL;
    // "No row" (undefined) is an answer too: no `?? NOT_LOCAL` here.
    if (!turnIsDue()) return fast.first(sql, params);
    return takeTurn().then(() => {
      const again = this.fastReady();
      return again === undefined ? NOT_LOCAL : again.first(sql, params);
    });
  }

  private fastAll(sql: string, params: SqlParams | undefined): FastAnswer<QueryResult> {
    if (this.fastReady() === undefined) return NOT_LOCAL;
    const all = () => this.fastReady()?.all(sql, params) ?? NOT_LOCAL;
    return turnIsDue() ? takeTurn().then(all) : all();
  }

  /** A statement the waiting path prepared: anything but a plain query ends the fast path. */
  private sawStatement(sql: string): void {
    if (!this.diverged && !isPlainQuery(sql) && !isPragmaRead(sql)) this.diverged = true;
  }
}

/**
 * The replica's own error (a missing object, an unknown TXID, ...) wins over SQLite's generic
 * "disk I/O error"; a write becomes REPLICA_READONLY; anything else is SQLite's message.
 */
export function translateError(err: unknown, vfsError: Error | undefined, uri: string): Error {
  if (vfsError) return vfsError;
  if (err instanceof LtxvfsError) return err;
  if (err instanceof SQLite.SQLiteError) {
    const code = Number(err.code);
    if ((code & 0xff) === SQLite.SQLITE_READONLY) {
      return new LtxvfsError('REPLICA_READONLY', `${uri} is a read-only replica: ${err.message}`);
    }
    return new SqlError(err.message, code);
  }
  return err instanceof Error ? err : new Error(String(err));
}

/** `PRAGMA name` or `PRAGMA schema.name` with no value: it reads and changes nothing. */
function isPragmaRead(sql: string): boolean {
  return /^\s*pragma\s+[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?\s*;?\s*$/i.test(sql);
}

/** True when nothing but whitespace, semicolons and comments follows `statement` in `sql`. */
function isOnlyStatement(sql: string, statement: string): boolean {
  const at = sql.indexOf(statement);
  const rest = at < 0 ? '' : sql.slice(at + statement.length);
  return /^(\s|;|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*$/.test(rest);
}
