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

/**
 * Resolves with the first value of `probe()` that is neither `undefined` nor `false`; a probe that
 * throws counts as not yet (the last error is named in the timeout). Polls every `everyMs`.
 */
export async function untilValue<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  ms: number,
  what: string,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const v = await probe()
      if (v !== undefined && v !== false) return v
    } catch (err) {
      last = err
    }
    if (Date.now() > end) {
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`,
      )
    }
    await Bun.sleep(everyMs)
  }
}
