/**
 * Summary statistics for bench samples, in one place so every section reports the same
 * definition of "median" and "p99".
 */

/** The middle of the samples (the mean of the two middle ones for an even count); NaN if none. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}

/**
 * The nearest-rank percentile `p` (0-100) of the samples, which need not be sorted; NaN if none.
 * Nearest-rank (no interpolation) so a reported p99 is a latency that was really observed.
 */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}
