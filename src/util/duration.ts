import { LtxvfsError } from './errors.js';

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

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
  const part = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)/y;
  let total = 0;
  let pos = 0;
  let parts = 0;
  while (pos < s.length) {
    part.lastIndex = pos;
    const m = part.exec(s);
    if (!m) break;
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    pos = part.lastIndex;
    parts++;
  }
  if (parts === 0 || pos !== s.length || !Number.isFinite(total)) {
    throw new LtxvfsError(
      'BAD_ARGUMENT',
      `invalid ${what} "${text}": expected a duration like 500ms, 1s, 5m, 24h or 1h30m`,
    );
  }
  return Math.round(total);
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
