/** A value SQLite hands back: integers beyond 2^53 come as bigint, blobs as a fresh Uint8Array. */
export type SqlValue = number | bigint | string | Uint8Array | null;

/** Anything a statement parameter may be bound to. */
export type SqlParam = SqlValue | boolean;

/** Positional (`?`, `?NNN`) or named (`:name`, `@name`, `$name`, keys with their prefix or without). */
export type SqlParams = readonly SqlParam[] | Readonly<Record<string, SqlParam>>;

export type Row = Record<string, SqlValue>;

/** JSON form used by `ltxvfs query --json`: bigints as decimal strings, blobs as hex strings. */
export function toJsonValue(value: SqlValue): number | string | null {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Uint8Array)
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex');
  return value;
}

/** Text form for the human table: NULL, numbers, text, blobs as X'..'. */
export function toDisplayText(value: SqlValue): string {
  if (value === null) return 'NULL';
  if (value instanceof Uint8Array) return `X'${toJsonValue(value)}'`;
  return String(value);
}
