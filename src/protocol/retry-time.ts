/**
 * Wait between retries, as upstream `keylime/common/retry.py: retry_time`, which the tenant, the
 * verifier's loop and its webhook notices all use: with `exponential_backoff` and a base above 1
 * the n-th wait is `base ** n` seconds, otherwise `|base|`.
 *
 * @module
 */

/** Seconds to wait before retry number `tries` (1-based). */
export function retryTime(exponential: boolean, baseSeconds: number, tries: number): number {
  if (exponential && baseSeconds > 1) return baseSeconds ** tries
  return Math.abs(baseSeconds)
}
