import { LtxvfsError } from './errors.js';

/**
 * Returns `value`, or throws INTERNAL naming `what` when it is missing. For values the caller's own
 * logic guarantees (a parser past its header has one, a map filled from the same keys): a broken
 * guarantee is a bug in ltxvfs, and this makes it fail where it broke instead of later.
 */
export function present<T>(value: T | null | undefined, what: string): T {
  if (value === undefined || value === null)
    throw new LtxvfsError('INTERNAL', `internal error: ${what} is missing`);
  return value;
}
