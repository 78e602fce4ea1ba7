import { LtxvfsError } from '../src/util/errors.js';

const UNIT_MS: Array<[RegExp, number]> = [
  [/^(ms|msecs?|milliseconds?)$/, 1],
  [/^(s|secs?|seconds?)$/, 1000],
  [/^(m|mins?|minutes?)$/, 60_000],
  [/^(h|hrs?|hours?)$/, 3_600_000],
  [/^(d|days?)$/, 86_400_000],
  [/^(w|weeks?)$/, 7 * 86_400_000],
];

/**
 * A point in time for `PRAGMA ltx_time`, `--timestamp` and `&time=`: an ISO 8601 time
 * (`2026-01-02T03:04:05Z`, a date alone means midnight UTC), `now`, or a time relative to now
 * written `-5 minutes`, `5 minutes ago`, `-1h30m`, `2 hours 15 minutes ago`.
 */
export function parseTimeTarget(text: string, now: Date = new Date()): Date {
  const s = text.trim().toLowerCase();
  if (s === 'now') return new Date(now.getTime());
  const relative = parseRelative(s);
  if (relative !== undefined) return new Date(now.getTime() - relative);
  if (/^\d{4}-\d{2}-\d{2}([t ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(z|[+-]\d{2}:?\d{2})?)?$/.test(s)) {
    const ms = Date.parse(s.replace(' ', 'T').toUpperCase());
    if (Number.isFinite(ms)) return new Date(ms);
  }
  throw new LtxvfsError(
    'BAD_ARGUMENT',
    `invalid time "${text}": expected an ISO 8601 time (2026-01-02T03:04:05Z) or a relative time like '-5 minutes' or '5 minutes ago'`,
  );
}

/** Milliseconds before now, or undefined when the text is not a relative time. */
function parseRelative(s: string): number | undefined {
  let body: string;
  if (s.startsWith('-')) body = s.slice(1);
  else if (s.endsWith(' ago')) body = s.slice(0, -4);
  else return undefined;
  const part = /\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*(?:,|and)?/y;
  let total = 0;
  let pos = 0;
  let parts = 0;
  while (pos < body.length) {
    part.lastIndex = pos;
    const m = part.exec(body);
    if (!m) return undefined;
    const unit = UNIT_MS.find(([re]) => re.test(m[2]!));
    if (!unit) return undefined;
    total += Number(m[1]) * unit[1];
    pos = part.lastIndex;
    parts++;
  }
  return parts > 0 ? Math.round(total) : undefined;
}
