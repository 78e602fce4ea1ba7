import { LtxvfsError } from '../src/util/errors.js';
import type { SqlParam, SqlParams } from './values.js';

/** Where parameter values go: wa-sqlite's API, or a module's exports directly (see exportBinder). */
export interface Binder {
  count(stmt: number): number;
  /** The parameter's name with its prefix (`:id`), or null for a positional one. */
  name(stmt: number, i: number): string | null;
  null(stmt: number, i: number): void;
  int64(stmt: number, i: number, value: bigint | number): void;
  double(stmt: number, i: number, value: number): void;
  text(stmt: number, i: number, value: string): void;
  blob(stmt: number, i: number, value: Uint8Array): void;
}

/** Binds every parameter of a prepared statement; a named parameter with no value is an error. */
export function bindAll(sqlite3: SQLiteAPI | Binder, stmt: number, params: SqlParams): void {
  const binder = 'count' in sqlite3 ? sqlite3 : apiBinder(sqlite3);
  const count = binder.count(stmt);
  const positional = Array.isArray(params);
  for (let i = 1; i <= count; i++) {
    let value: SqlParam | undefined;
    if (positional) {
      value = (params as readonly SqlParam[])[i - 1];
    } else {
      const name = binder.name(stmt, i);
      const named = params as Readonly<Record<string, SqlParam>>;
      value = name ? (named[name] ?? named[name.slice(1)]) : undefined;
      if (value === undefined && name && !(name in named) && !(name.slice(1) in named)) {
        throw new LtxvfsError('BAD_ARGUMENT', `missing value for parameter ${name}`);
      }
    }
    bindValue(binder, stmt, i, value ?? null);
  }
}

function bindValue(binder: Binder, stmt: number, i: number, value: SqlParam): void {
  if (value === null) binder.null(stmt, i);
  else if (typeof value === 'boolean') binder.int64(stmt, i, value ? 1 : 0);
  // Whole numbers stay INTEGER (the stock binder sends anything beyond 32 bits as REAL).
  else if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) binder.int64(stmt, i, value);
    else binder.double(stmt, i, value);
  } else if (typeof value === 'bigint') binder.int64(stmt, i, value);
  else if (typeof value === 'string') binder.text(stmt, i, value);
  else if (value instanceof Uint8Array) binder.blob(stmt, i, value);
  else throw new LtxvfsError('BAD_ARGUMENT', `cannot bind a value of type ${typeof value} to parameter ${i}`);
}

const apiBinders = new WeakMap<SQLiteAPI, Binder>();

function apiBinder(sqlite3: SQLiteAPI): Binder {
  let binder = apiBinders.get(sqlite3);
  if (binder === undefined) {
    binder = {
      count: (stmt) => sqlite3.bind_parameter_count(stmt),
      name: (stmt, i) => sqlite3.bind_parameter_name(stmt, i) || null,
      null: (stmt, i) => void sqlite3.bind_null(stmt, i),
      int64: (stmt, i, value) => void sqlite3.bind_int64(stmt, i, BigInt(value)),
      double: (stmt, i, value) => void sqlite3.bind_double(stmt, i, value),
      text: (stmt, i, value) => void sqlite3.bind_text(stmt, i, value),
      blob: (stmt, i, value) => void sqlite3.bind_blob(stmt, i, value),
    };
    apiBinders.set(sqlite3, binder);
  }
  return binder;
}

/** The exports exportBinder calls (all plain numbers in and out). */
export interface BindingExports {
  HEAPU8: Uint8Array;
  _sqlite3_malloc(bytes: number): number;
  _sqlite3_free(ptr: number): void;
  _sqlite3_bind_parameter_count(stmt: number): number;
  _sqlite3_bind_parameter_name(stmt: number, i: number): number;
  _sqlite3_bind_null(stmt: number, i: number): number;
  _sqlite3_bind_int(stmt: number, i: number, value: number): number;
  _sqlite3_bind_int64(stmt: number, i: number, lo: number, hi: number): number;
  _sqlite3_bind_double(stmt: number, i: number, value: number): number;
  _sqlite3_bind_text(stmt: number, i: number, ptr: number, bytes: number, destructor: number): number;
  _sqlite3_bind_blob(stmt: number, i: number, ptr: number, bytes: number, destructor: number): number;
}

/** SQLite copies the value before the bind call returns. */
const SQLITE_TRANSIENT = -1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Binding through a module's exports, for statements prepared with `_sqlite3_prepare_v3` (which
 * wa-sqlite's API does not know). Integers go as two 32-bit halves, text and blobs through a
 * temporary copy in wasm memory.
 */
export function exportBinder(m: BindingExports): Binder {
  const copied = (bytes: Uint8Array, bind: (ptr: number) => void) => {
    // A zero-length value still needs a pointer: SQLite binds NULL for a null one.
    const ptr = m._sqlite3_malloc(Math.max(1, bytes.length));
    if (ptr === 0) throw new LtxvfsError('INTERNAL', 'out of wasm memory binding a parameter');
    try {
      m.HEAPU8.set(bytes, ptr);
      bind(ptr);
    } finally {
      m._sqlite3_free(ptr);
    }
  };
  return {
    count: (stmt) => m._sqlite3_bind_parameter_count(stmt),
    name: (stmt, i) => {
      const at = m._sqlite3_bind_parameter_name(stmt, i);
      if (at === 0) return null;
      let end = at;
      while (m.HEAPU8[end] !== 0) end++;
      return decoder.decode(m.HEAPU8.subarray(at, end));
    },
    null: (stmt, i) => void m._sqlite3_bind_null(stmt, i),
    int64: (stmt, i, value) => {
      if (typeof value === 'number' && (value | 0) === value) {
        m._sqlite3_bind_int(stmt, i, value);
        return;
      }
      const wide = BigInt(value);
      if (wide > 0x7fff_ffff_ffff_ffffn || wide < -0x8000_0000_0000_0000n) {
        throw new LtxvfsError('BAD_ARGUMENT', `${value} does not fit a 64-bit integer parameter ${i}`);
      }
      const big = BigInt.asUintN(64, wide);
      m._sqlite3_bind_int64(stmt, i, Number(big & 0xffff_ffffn) | 0, Number(big >> 32n) | 0);
    },
    double: (stmt, i, value) => void m._sqlite3_bind_double(stmt, i, value),
    text: (stmt, i, value) => {
      const bytes = encoder.encode(value);
      copied(bytes, (ptr) => m._sqlite3_bind_text(stmt, i, ptr, bytes.length, SQLITE_TRANSIENT));
    },
    blob: (stmt, i, value) =>
      copied(value, (ptr) => m._sqlite3_bind_blob(stmt, i, ptr, value.length, SQLITE_TRANSIENT)),
  };
}
