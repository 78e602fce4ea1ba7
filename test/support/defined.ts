/**
 * `value`, or a failed assertion naming `what` when it is missing: for values a test has just
 * made or listed (an image it stored, the first file of a level it wrote). A missing one fails
 * the test here, with a message, instead of as a TypeError a few lines later.
 */
export function defined<T>(value: T | null | undefined, what = 'value'): T {
  if (value === undefined || value === null) throw new Error(`expected ${what} to be present, got ${value}`);
  return value;
}

/** XORs `mask` into byte `at` of `bytes` (a flipped bit for a corruption test); `at` must be inside. */
export function flipByte(bytes: Uint8Array, at: number, mask: number): void {
  bytes[at] = defined(bytes[at], `byte ${at} of ${bytes.length}`) ^ mask;
}
