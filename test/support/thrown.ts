import { isLtxvfsError } from '../../src/util/errors.js';

/** What `fn` throws: the LtxvfsError code (undefined for another error) and the message. */
export function thrown(fn: () => unknown): { code: string | undefined; message: string } {
  try {
    fn();
  } catch (err) {
    return { code: isLtxvfsError(err) ? err.code : undefined, message: (err as Error).message };
  }
  throw new Error('expected a throw');
}
