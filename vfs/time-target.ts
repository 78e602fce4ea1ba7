import { sumDurationParts } from '../src/util/duration.js';
import { LtxvfsError } from '../src/util/errors.js';

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
  if (s.startsWith('-')) return sumDurationParts(s.slice(1), { words: true });
  if (s.endsWith(' ago')) return sumDurationParts(s.slice(0, -4), { words: true });
  return undefined;
}
