const spec = process.env.LTXVFS_TEST_CRASH_AT;
const [target, countText] = spec ? spec.split(':') : [];
let remaining = countText ? Number(countText) : 1;

/**
 * Crash tests only: with LTXVFS_TEST_CRASH_AT=<name>[:<n>], the process kills itself with SIGKILL
 * the n-th time it passes the named point, so kill -9 lands exactly between two effects
 * (e.g. an L0 staged but not yet recorded, or uploaded but not yet noted). Unset: a no-op.
 */
export function crashPoint(name: string): void {
  if (target !== name) return;
  remaining--;
  if (remaining <= 0) process.kill(process.pid, 'SIGKILL');
}
