import * as SQLite from '@journeyapps/wa-sqlite';
import type { WaSqliteBuild } from './module.js';
import type { Row, SqlValue } from './values.js';

/** The module exports the stepper calls directly (all plain numbers in and out). */
interface StepperModule {
  HEAPU8: Uint8Array;
  ccall(name: string, returnType: string | null, argTypes: string[], args: unknown[]): unknown;
  getTempRet0(): number;
  _sqlite3_column_type(stmt: number, i: number): number;
  _sqlite3_column_int64(stmt: number, i: number): number;
  _sqlite3_column_double(stmt: number, i: number): number;
  _sqlite3_column_text(stmt: number, i: number): number;
  _sqlite3_column_blob(stmt: number, i: number): number;
  _sqlite3_column_bytes(stmt: number, i: number): number;
  _sqlite3_db_handle(stmt: number): number;
  _sqlite3_column_count(stmt: number): number;
  _sqlite3_column_name(stmt: number, i: number): number;
}

const HI_MAX = 0x1f_ffff; // Number.MAX_SAFE_INTEGER >> 32
const HI_MIN = -0x20_0000; // Number.MIN_SAFE_INTEGER >> 32
const text = new TextDecoder();

/**
 * How the Node API steps, rewinds and reads statements of one module instance.
 *
 * wa-sqlite's `step` and `reset` always return a promise (through an async retry wrapper), so a
 * query whose pages are all local still pays several promise turns per call. On the Asyncify build
 * a call into SQLite returns its plain result unless a VFS method suspended the wasm stack, and
 * only then a promise: `step` here is synchronous when every page it needs is local and falls back
 * to waiting on the first miss, in the middle of the statement. Under JSPI every call of a
 * suspendable export returns a promise anyway, so it keeps wa-sqlite's calls. Rows are read with
 * the column exports directly (text by its byte length, no NUL scan).
 */
export class Stepper {
  private readonly module: StepperModule;
  private readonly direct: boolean;

  constructor(
    module: WaSqliteModule,
    private readonly sqlite3: SQLiteAPI,
    build: WaSqliteBuild,
  ) {
    this.module = module as unknown as StepperModule;
    this.direct = build === 'asyncify';
  }

  /** SQLITE_ROW or SQLITE_DONE (a promise only if a page had to be fetched); other codes throw. */
  step(stmt: number): number | Promise<number> {
    if (!this.direct) return this.sqlite3.step(stmt);
    const rc = this.module.ccall('sqlite3_step', 'number', ['number'], [stmt]) as number | Promise<number>;
    return typeof rc === 'number' ? this.checked(stmt, rc) : rc.then((value) => this.checked(stmt, value));
  }

  /** The current row as an object, or undefined once the statement is done. */
  stepRow(stmt: number, columns: readonly string[]): Row | undefined | Promise<Row | undefined> {
    const rc = this.step(stmt);
    if (typeof rc === 'number') return rc === SQLite.SQLITE_ROW ? this.row(stmt, columns) : undefined;
    return rc.then((value) => (value === SQLite.SQLITE_ROW ? this.row(stmt, columns) : undefined));
  }

  /** Back to the start (its error, the last step's, was reported by that step). */
  reset(stmt: number): void | Promise<void> {
    if (!this.direct)
      return this.sqlite3.reset(stmt).then(
        () => undefined,
        () => undefined,
      );
    const rc = this.module.ccall('sqlite3_reset', 'number', ['number'], [stmt]);
    if (rc instanceof Promise) return rc.then(() => undefined);
  }

  /** The result column names, read from wasm memory (a query's names are read once per call). */
  columnNames(stmt: number): string[] {
    const m = this.module;
    const names: string[] = [];
    const count = m._sqlite3_column_count(stmt);
    for (let i = 0; i < count; i++) {
      const at = m._sqlite3_column_name(stmt, i);
      const heap = m.HEAPU8;
      let end = at;
      while (heap[end] !== 0) end++;
      names.push(text.decode(heap.subarray(at, end)));
    }
    return names;
  }

  row(stmt: number, columns: readonly string[]): Row {
    const row: Row = {};
    for (let i = 0; i < columns.length; i++) {
      const name = columns[i];
      if (name !== undefined) row[name] = this.column(stmt, i);
    }
    return row;
  }

  /** One column of the current row: integers beyond 2^53 as bigint, blobs copied out of wasm memory. */
  column(stmt: number, i: number): SqlValue {
    const m = this.module;
    switch (m._sqlite3_column_type(stmt, i)) {
      case SQLite.SQLITE_INTEGER: {
        const lo = m._sqlite3_column_int64(stmt, i);
        const hi = m.getTempRet0();
        if (hi > HI_MAX || hi < HI_MIN) return (BigInt(hi) << 32n) | BigInt(lo >>> 0);
        return hi * 0x1_0000_0000 + (lo >>> 0);
      }
      case SQLite.SQLITE_FLOAT:
        return m._sqlite3_column_double(stmt, i);
      case SQLite.SQLITE_TEXT: {
        // Text first, then its length (SQLite's documented order).
        const at = m._sqlite3_column_text(stmt, i);
        const length = m._sqlite3_column_bytes(stmt, i);
        return text.decode(m.HEAPU8.subarray(at, at + length));
      }
      case SQLite.SQLITE_BLOB: {
        const at = m._sqlite3_column_blob(stmt, i);
        const length = m._sqlite3_column_bytes(stmt, i);
        return m.HEAPU8.slice(at, at + length);
      }
      default:
        return null;
    }
  }

  private checked(stmt: number, rc: number): number {
    if (rc === SQLite.SQLITE_ROW || rc === SQLite.SQLITE_DONE) return rc;
    const db = this.module._sqlite3_db_handle(stmt);
    const message = this.module.ccall('sqlite3_errmsg', 'string', ['number'], [db]) as string;
    throw new SQLite.SQLiteError(message, rc);
  }
}
