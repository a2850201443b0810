/**
 * Polls a condition until it holds, for integration tests that wait on background work (a verifier
 * round, a lease take-over).
 * @module
 */

/**
 * Resolves once `cond()` is true; throws `timed out waiting for <what>` after `ms` milliseconds.
 * Polls every 50 ms.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  ms: number,
  what: string | (() => string),
): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return
    await Bun.sleep(50)
  }
  throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`)
}
