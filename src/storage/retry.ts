/**
 * Exponential backoff with full jitter, bounded both in attempts and in total time, so an
 * unreachable endpoint fails within a few seconds instead of hanging a CLI or a test.
 */
export interface RetryPolicy {
  /** Attempts in all, including the first. */
  maxAttempts: number;
  /** Delay cap before the first retry; doubles each retry. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** No new attempt starts once this much time has passed since the first one. */
  totalBudgetMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 100,
  maxDelayMs: 1_000,
  totalBudgetMs: 4_000,
};

export interface RetryContext {
  /** 1 for the first attempt. */
  attempt: number;
}

/**
 * Runs `operation` until it succeeds, `isRetryable` says no, or the policy is exhausted; then
 * rethrows the last error.
 */
export async function withRetry<T>(
  operation: (context: RetryContext) => Promise<T>,
  isRetryable: (error: unknown) => boolean,
  policy: RetryPolicy = DEFAULT_RETRY_POLICY,
  sleep: (ms: number) => Promise<void> = defaultSleep,
  now: () => number = Date.now,
): Promise<T> {
  const started = now();
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation({ attempt });
    } catch (error) {
      if (attempt >= policy.maxAttempts || !isRetryable(error)) throw error;
      const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
      const delay = Math.random() * cap;
      if (now() - started + delay >= policy.totalBudgetMs) throw error;
      await sleep(delay);
    }
  }
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const NETWORK_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
]);

/** A failure below HTTP (no response at all): connection refused/reset, DNS, socket timeout. */
export function isNetworkError(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const e = error as {
    code?: unknown;
    name?: unknown;
    cause?: unknown;
    $metadata?: { httpStatusCode?: number };
  };
  if (typeof e.code === 'string' && NETWORK_ERROR_CODES.has(e.code)) return true;
  if (e.name === 'TimeoutError' || e.name === 'RequestTimeout') return true;
  if (Array.isArray((error as { errors?: unknown }).errors)) {
    // AggregateError from happy-eyeballs connects: retryable if any part is.
    return ((error as { errors: unknown[] }).errors ?? []).some(isNetworkError);
  }
  return e.cause !== undefined && e.cause !== error && isNetworkError(e.cause);
}
