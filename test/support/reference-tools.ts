import { spawnSync } from 'node:child_process';
import { it, type TestContext } from 'vitest';

/**
 * The reference tools some suites compare against (the C `lz4`, the `sqlite3` shell, lz4-napi).
 * Without one, a check would quietly not happen: with CI unset that is a skip that prints its
 * reason; with CI=true (a clean machine that `npm test` provisioned) it is a failure, so a
 * green CI run never hides a comparison that did not run.
 */
export const ciRequiresReferenceTools = process.env.CI === 'true';

export function commandAvailable(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: 'ignore' }).status === 0;
}

function missingMessage(what: string, hint: string): string {
  return `${what} is not available (${hint})`;
}

/**
 * Declares, inside a describe block whose tests need `what`, the test that stands in for them:
 * a failing one under CI=true, a skipped one (reason printed) otherwise.
 */
export function referenceToolMissing(what: string, hint: string): void {
  const message = missingMessage(what, hint);
  if (ciRequiresReferenceTools) {
    it(`reference tool ${what} is present`, () => {
      throw new Error(`${message}; CI=true, so the checks that need it may not be skipped`);
    });
    return;
  }
  console.warn(`[skipped] ${message}`);
  it.skip(`skipped: ${message}`, () => {});
}

/** Inside a test: fails under CI=true, else skips it with the reason printed. */
export function skipOrFailForMissingTool(ctx: TestContext, what: string, hint: string): never {
  const message = missingMessage(what, hint);
  if (ciRequiresReferenceTools) throw new Error(`${message}; CI=true, so this check may not be skipped`);
  console.warn(`[skipped] ${ctx.task.name}: ${message}`);
  return ctx.skip(message);
}
