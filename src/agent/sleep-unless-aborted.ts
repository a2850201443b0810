/**
 * The agent's one interruptible wait (registration retries, push-mode schedules and backoff).
 *
 * @module
 */

/** Resolves after `ms`, or rejects with `stopped()` as soon as `signal` aborts. */
export function sleepUnlessAborted(
  ms: number,
  signal: AbortSignal | undefined,
  stopped: () => Error,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(stopped())
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer)
      reject(stopped())
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
