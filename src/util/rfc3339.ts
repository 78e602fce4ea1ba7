import { LtxvfsError } from './errors.js';

/**
 * Go's RFC3339Nano, the form Litestream writes (S3 `litestream-timestamp` metadata, lease
 * `expires_at`): UTC, `Z`, fractional seconds with trailing zeros removed (none if whole).
 */
export function formatRfc3339Nano(date: Date): string {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  const [whole, fraction] = iso.slice(0, -1).split('.');
  const trimmed = (fraction ?? '').replace(/0+$/, '');
  return trimmed === '' ? `${whole}Z` : `${whole}.${trimmed}Z`;
}

/** RFC 3339 with any number of fractional digits (kept to the millisecond), or undefined. */
export function tryParseRfc3339(text: string): Date | undefined {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i.exec(text.trim());
  if (match?.[1] === undefined || match[3] === undefined) return undefined;
  const millis = (match[2] ?? '').slice(0, 3).padEnd(3, '0');
  const date = new Date(`${match[1].toUpperCase()}.${millis}${match[3].toUpperCase()}`);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** tryParseRfc3339, with BAD_ARGUMENT naming the text when it is not RFC 3339. */
export function parseRfc3339(text: string): Date {
  const date = tryParseRfc3339(text);
  if (date === undefined) throw new LtxvfsError('BAD_ARGUMENT', `invalid RFC 3339 timestamp "${text}"`);
  return date;
}
