/**
 * The retry policy, as pure functions of their inputs (the time and the random draw
 * are parameters), so `sdk/conformance/retry-verdicts.json` can pin every verdict.
 *
 * Connection errors, timeouts, 429 and 5xx are retried while retries remain. A
 * `Retry-After` of at most `maxRetryAfterMs` is waited exactly; a longer one is not
 * retried (the error, with its `retryAfter`, goes to the caller). Otherwise the
 * delay is exponential backoff with jitter.
 *
 * @module
 */

/** How a client retries. */
export interface RetryPolicy {
  /** Retries after the first attempt (so `maxRetries + 1` attempts at most). */
  maxRetries: number;
  /** Backoff before the first retry. */
  initialDelayMs: number;
  /** Largest backoff. */
  maxDelayMs: number;
  /** Each backoff is scaled by a random factor in `[1 - jitter, 1]`. */
  jitter: number;
  /** The longest `Retry-After` the client waits for; a longer one is not retried. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxRetries: 2,
  initialDelayMs: 500,
  maxDelayMs: 8000,
  jitter: 0.25,
  maxRetryAfterMs: 60_000,
};

/** How an attempt ended: a response status (with its `Retry-After`) or no response. */
export type AttemptOutcome =
  | { status: number; retryAfter?: string | null | undefined }
  | { error: "connection" | "timeout" };

/** True for the statuses worth retrying: 429 and 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status <= 599);
}

/**
 * Milliseconds a `Retry-After` value asks to wait (delta-seconds or an HTTP date,
 * a past date being 0), or `undefined` when it is not one.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, at - nowMs);
}

/**
 * The delay before the next attempt after attempt number `attempt` (1 = the first
 * request) ended with `outcome`, or `null` when the client must not retry.
 * `random` is a draw in `[0, 1)`.
 */
export function retryDelay(
  policy: RetryPolicy,
  attempt: number,
  outcome: AttemptOutcome,
  nowMs: number = Date.now(),
  random: number = Math.random(),
): number | null {
  if (attempt > policy.maxRetries) return null;
  if ("status" in outcome) {
    if (!isRetryableStatus(outcome.status)) return null;
    const asked = parseRetryAfter(outcome.retryAfter, nowMs);
    if (asked !== undefined) return asked <= policy.maxRetryAfterMs ? asked : null;
  }
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** (attempt - 1));
  return Math.round(base * (1 - policy.jitter * random));
}
