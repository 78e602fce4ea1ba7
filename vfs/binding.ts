import * as SQLite from '@journeyapps/wa-sqlite';
import { LtxvfsError } from '../src/util/errors.js';
import type { Row, SqlParam, SqlParams, SqlValue } from './values.js';

/** Binds every parameter of a prepared statement; a named parameter with no value is an error. */
export function bindAll(sqlite3: SQLiteAPI, stmt: number, params: SqlParams): void {
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

/** One column of the current row; blobs are copied out of wasm memory. */
export function readColumn(sqlite3: SQLiteAPI, stmt: number, i: number): SqlValue {
  const value = sqlite3.column(stmt, i);
  // Blobs come back as views of wasm memory that the next step overwrites.
  if (value instanceof Uint8Array) return value.slice();
  if (Array.isArray(value)) return Uint8Array.from(value);
  return value as SqlValue;
}

/** The current row of a statement as an object (column name -> value). */
export function readRow(sqlite3: SQLiteAPI, stmt: number, columns: readonly string[]): Row {
  const row: Row = {};
  for (let i = 0; i < columns.length; i++) {
    const name = columns[i];
    if (name !== undefined) row[name] = readColumn(sqlite3, stmt, i);
  }
  return row;
}

/** Steps once: the row as an object, or undefined when the statement is done. */
export async function stepRow(
  sqlite3: SQLiteAPI,
  stmt: number,
  columns: readonly string[],
): Promise<Row | undefined> {
  return (await sqlite3.step(stmt)) === SQLite.SQLITE_ROW ? readRow(sqlite3, stmt, columns) : undefined;
}
