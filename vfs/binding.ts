import { LtxvfsError } from '../src/util/errors.js';
import type { SqlParam, SqlParams } from './values.js';

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
