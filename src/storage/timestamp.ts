import { LtxvfsError } from '../util/errors.js';

/**
 * Litestream stores the LTX header timestamp as S3 metadata `litestream-timestamp` in Go's
 * RFC3339Nano form: UTC, `Z`, fractional seconds with trailing zeros removed (none if whole).
 */
export const LITESTREAM_TIMESTAMP_METADATA = 'litestream-timestamp';

export function formatRfc3339Nano(date: Date): string {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const [whole, fraction] = iso.slice(0, -1).split('.');
  const trimmed = (fraction ?? '').replace(/0+$/, '');
  return trimmed === '' ? `${whole}Z` : `${whole}.${trimmed}Z`;
}

/** Parses RFC 3339 with any number of fractional digits (kept to the millisecond). */
export function parseRfc3339(text: string): Date {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/.exec(text.trim());
  if (!match) throw new LtxvfsError('BAD_ARGUMENT', `invalid RFC 3339 timestamp "${text}"`);
  const millis = (match[2] ?? '').slice(0, 3).padEnd(3, '0');
  const date = new Date(`${match[1]}.${millis}${match[3]}`);
  if (Number.isNaN(date.getTime()))
    throw new LtxvfsError('BAD_ARGUMENT', `invalid RFC 3339 timestamp "${text}"`);
  return date;
}
