import { LtxvfsError } from './errors.js';
import { present } from './invariant.js';

const UNIT_MS = new Map<string, number>([
  ['ms', 1],
  ['s', 1000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
]);

/** Long unit names, accepted in relative times ('5 minutes ago'), not in option values. */
const UNIT_WORD_MS = new Map<string, number>(UNIT_MS);
for (const [unit, words] of [
  ['ms', ['msec', 'msecs', 'millisecond', 'milliseconds']],
  ['s', ['sec', 'secs', 'second', 'seconds']],
  ['m', ['min', 'mins', 'minute', 'minutes']],
  ['h', ['hr', 'hrs', 'hour', 'hours']],
  ['d', ['day', 'days']],
] as const) {
  for (const word of words) UNIT_WORD_MS.set(word, present(UNIT_MS.get(unit), `duration unit ${unit}`));
}
for (const week of ['w', 'week', 'weeks']) UNIT_WORD_MS.set(week, 7 * 86_400_000);

/**
 * Milliseconds of a sum of `<number><unit>` parts that covers all of `text` (`1h30m`), or
 * undefined when it is not one. With `words`, units may also be written out (`2 hours`,
 * `15 mins`, `1 week`) and parts separated by spaces, `,` or `and`.
 */
export function sumDurationParts(text: string, options: { words?: boolean } = {}): number | undefined {
  const part = options.words
    ? /\s*(\d+(?:\.\d+)?|\.\d+)\s*([a-z]+)\s*(?:,|and)?/y
    : /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)/y;
  const units = options.words ? UNIT_WORD_MS : UNIT_MS;
  let total = 0;
  let pos = 0;
  let parts = 0;
  while (pos < text.length) {
    part.lastIndex = pos;
    const m = part.exec(text);
    if (!m) return undefined;
    const [, amount = '', unit = ''] = m;
    const unitMs = units.get(unit);
    if (unitMs === undefined) return undefined;
    total += Number(amount) * unitMs;
    pos = part.lastIndex;
    parts++;
  }
  return parts > 0 && Number.isFinite(total) ? Math.round(total) : undefined;
}

/**
 * Parses durations written like Go's `time.ParseDuration` (what Litestream's config uses) plus a
 * day unit: `500ms`, `1s`, `1.5s`, `5m`, `24h`, `1h30m`, `7d`. A bare `0` is zero. Returns
 * milliseconds (rounded to the nearest whole millisecond).
 *
 * `what` names the option in the error, e.g. `--sync-interval`.
 */
export function parseDuration(text: string, what = 'duration'): number {
  const s = text.trim();
  if (s === '0') return 0;
  const total = sumDurationParts(s);
  if (total === undefined) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid ${what} "${text}": expected a duration like 500ms, 1s, 5m, 24h or 1h30m`,
    );
  }
  return total;
}

/** Short human form for logs: `250ms`, `1.5s`, `5m`, `2h`, `3d`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  for (const [unit, size] of units) {
    if (ms >= size) {
      const value = ms / size;
      return `${Number.isInteger(value) ? value : value.toFixed(1)}${unit}`;
    }
  }
  return `${ms}ms`;
}
