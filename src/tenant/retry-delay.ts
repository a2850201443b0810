/**
 * Wait between retries, as upstream `keylime/common/retry.py: retry_time`: with
 * `exponential_backoff` and a base above 1 the n-th wait is `base ** n` seconds, otherwise `base`.
 *
 * @module
 */

/** Seconds to wait before retry number `tries` (1-based). */
export function retryDelay(exponential: boolean, base: number, tries: number): number {
  if (exponential && base > 1) return base ** tries
  return Math.abs(base)
}

/** Sleeps `seconds`. */
export function sleepSeconds(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000))
}
