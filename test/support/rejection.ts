import { isLtxvfsError } from '../../src/util/errors.js';

/** Awaits a promise that must fail, and returns its error code (for LtxvfsErrors) and message. */
export async function rejection(p: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await p;
  } catch (err) {
    return { code: isLtxvfsError(err) ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error('expected a rejection');
}
