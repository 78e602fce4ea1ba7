import * as SQLite from '@journeyapps/wa-sqlite';
import { LtxvfsError } from '../src/util/errors.js';
import type { LtxVfs } from './ltx-vfs.js';
import type { WaSqliteInstance } from './module.js';
import type { Mutex } from './mutex.js';
import type { Row, SqlParam, SqlParams, SqlValue } from './values.js';

/** One wa-sqlite module instance with its own ltx VFS; every call into it goes through `mutex`. */
export interface PooledInstance extends WaSqliteInstance {
  readonly vfs: LtxVfs;
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

/**
 * A query answered from cached pages completes in microtasks only, so a caller awaiting queries in
 * a loop would starve timers and I/O: the replica's poller would never run and the TXID would stay
 * put. Every MAX_BUSY_MS one call waits for a turn of the event loop (setImmediate: timers and I/O
 * callbacks run first), which costs microseconds per stretch.
 */
async function yieldIfBusy(): Promise<void> {
  if (Date.now() - lastTurn < MAX_BUSY_MS) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  lastTurn = Date.now();
}

/**
 * A read-only connection to a replica (opened by `Ltx.open`). Methods are async and may be called
 * concurrently: calls on connections that share a module instance run one after the other.
 */
export class LtxDatabase {
  private closed = false;
  /** Prepared statements by SQL text, least recently used first. */
  private readonly statements = new Map<string, number>();

  constructor(
    readonly uri: string,
    private readonly instance: PooledInstance,
    private readonly handle: number,
    private readonly onClose: (db: LtxDatabase) => void,
  ) {}

  /** All rows as objects (column name -> value). */
  async all(sql: string, params?: SqlParams): Promise<Row[]> {
    const { columns, rows } = await this.query(sql, params);
    return rows.map((values) => {
      const row: Row = {};
      columns.forEach((name, i) => {
        row[name] = values[i]!;
      });
      return row;
    });
  }

  /** The first row, or undefined. */
  async get(sql: string, params?: SqlParams): Promise<Row | undefined> {
    return (await this.all(sql, params))[0];
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
    return this.call(async () => {
      const cached = this.statements.get(sql);
      if (cached !== undefined) {
        this.statements.delete(sql); // re-insert: most recently used last
        this.statements.set(sql, cached);
        return this.runCached(sql, cached, params);
      }
      const { sqlite3 } = this.instance;
      let result: QueryResult = { columns: [], rows: [] };
      const prepared: number[] = [];
      try {
        for await (const stmt of sqlite3.statements(this.handle, sql, { unscoped: true })) {
          // Finalizing is deferred: a lone statement may be kept for the next call.
          prepared.push(stmt);
          const rows = await this.stepAll(stmt, params);
          if (rows.columns.length > 0) result = rows;
        }
      } catch (err) {
        for (const stmt of prepared) await sqlite3.finalize(stmt).catch(() => undefined);
        throw err;
      }
      if (prepared.length === 1 && isCacheable(sql)) await this.remember(sql, prepared[0]!);
      else for (const stmt of prepared) await sqlite3.finalize(stmt);
      return result;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.call(async () => {
        for (const stmt of this.statements.values())
          await this.instance.sqlite3.finalize(stmt).catch(() => undefined);
        this.statements.clear();
        await this.instance.sqlite3.close(this.handle);
      });
    } finally {
      this.onClose(this);
    }
  }

  private async stepAll(stmt: number, params: SqlParams | undefined): Promise<QueryResult> {
    const { sqlite3 } = this.instance;
    if (params !== undefined) bindAll(sqlite3, stmt, params);
    const columns = sqlite3.column_names(stmt);
    const rows: SqlValue[][] = [];
    while ((await sqlite3.step(stmt)) === SQLite.SQLITE_ROW) {
      const row: SqlValue[] = [];
      for (let i = 0; i < columns.length; i++) row.push(readColumn(sqlite3, stmt, i));
      rows.push(row);
    }
    return { columns, rows };
  }

  private async runCached(sql: string, stmt: number, params: SqlParams | undefined): Promise<QueryResult> {
    const { sqlite3 } = this.instance;
    try {
      const result = await this.stepAll(stmt, params);
      await sqlite3.reset(stmt);
      sqlite3.clear_bindings(stmt);
      return result;
    } catch (err) {
      this.statements.delete(sql);
      await sqlite3.finalize(stmt).catch(() => undefined);
      throw err;
    }
  }

  /** Keeps a prepared statement (reset, so it holds no read transaction) for the next call. */
  private async remember(sql: string, stmt: number): Promise<void> {
    const { sqlite3 } = this.instance;
    await sqlite3.reset(stmt);
    sqlite3.clear_bindings(stmt);
    this.statements.set(sql, stmt);
    if (this.statements.size > STATEMENT_CACHE_SIZE) {
      const [oldestSql, oldest] = this.statements.entries().next().value as [string, number];
      this.statements.delete(oldestSql);
      await sqlite3.finalize(oldest);
    }
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  private assertOpen(): void {
    if (this.closed) throw new LtxvfsError('BAD_ARGUMENT', `database ${this.uri} is closed`);
  }

  /** Serializes on the module instance and turns failures into named errors. */
  private call<T>(task: () => Promise<T>): Promise<T> {
    return this.instance.mutex.run(async () => {
      await yieldIfBusy();
      this.instance.vfs.clearLastError();
      try {
        return await task();
      } catch (err) {
        throw translateError(err, this.instance.vfs.takeLastError(), this.uri);
      }
    });
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

function bindAll(sqlite3: SQLiteAPI, stmt: number, params: SqlParams): void {
  const count = sqlite3.bind_parameter_count(stmt);
  const positional = Array.isArray(params);
  for (let i = 1; i <= count; i++) {
    let value: SqlParam | undefined;
    if (positional) {
      value = (params as readonly SqlParam[])[i - 1];
    } else {
      const name = sqlite3.bind_parameter_name(stmt, i);
      const named = params as Readonly<Record<string, SqlParam>>;
      value = name ? (named[name] ?? named[name.slice(1)]) : undefined;
      if (value === undefined && name && !(name in named) && !(name.slice(1) in named)) {
        throw new LtxvfsError('BAD_ARGUMENT', `missing value for parameter ${name}`);
      }
    }
    bindValue(sqlite3, stmt, i, value ?? null);
  }
}

function bindValue(sqlite3: SQLiteAPI, stmt: number, i: number, value: SqlParam): void {
  if (value === null) sqlite3.bind_null(stmt, i);
  else if (typeof value === 'boolean') sqlite3.bind_int(stmt, i, value ? 1 : 0);
  // Whole numbers stay INTEGER (the stock binder sends anything beyond 32 bits as REAL).
  else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) sqlite3.bind_int64(stmt, i, BigInt(value));
    else sqlite3.bind_double(stmt, i, value);
  } else if (typeof value === 'bigint') sqlite3.bind_int64(stmt, i, value);
  else if (typeof value === 'string') sqlite3.bind_text(stmt, i, value);
  else if (value instanceof Uint8Array) sqlite3.bind_blob(stmt, i, value);
  else throw new LtxvfsError('BAD_ARGUMENT', `cannot bind a value of type ${typeof value} to parameter ${i}`);
}

function readColumn(sqlite3: SQLiteAPI, stmt: number, i: number): SqlValue {
  const value = sqlite3.column(stmt, i);
  // Blobs come back as views of wasm memory that the next step overwrites.
  if (value instanceof Uint8Array) return value.slice();
  if (Array.isArray(value)) return Uint8Array.from(value);
  return value as SqlValue;
}
