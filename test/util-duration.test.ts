import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '../src/util/duration.js';
import { isLtxvfsError } from '../src/util/errors.js';

describe('parseDuration', () => {
  it('accepts the units the CLI documents', () => {
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('1s')).toBe(1000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5m')).toBe(300_000);
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('0')).toBe(0);
    expect(parseDuration(' 20ms ')).toBe(20);
  });
  it('rejects anything else with BAD_ARGUMENT naming the option', () => {
    for (const bad of ['', '5', 'ms', '1x', '1s2', '-1s', '1 s', 'abc']) {
      let caught: unknown;
      try {
        parseDuration(bad, '--sync-interval');
      } catch (err) {
        caught = err;
      }
      expect(isLtxvfsError(caught, 'BAD_ARGUMENT'), bad).toBe(true);
      expect((caught as Error).message).toContain('--sync-interval');
    }
  });
  it('formats for logs', () => {
    expect(formatDuration(250)).toBe('250ms');
    expect(formatDuration(1500)).toBe('1.5s');
    expect(formatDuration(300_000)).toBe('5m');
  });
});
