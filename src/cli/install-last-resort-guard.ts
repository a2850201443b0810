/**
 * The control plane's last line of defence: an exception or rejection that nothing caught is
 * logged and the process keeps serving. Agents and API clients are adversaries, and every path
 * they reach turns bad input into a typed failure of that agent or request; this guard is for the
 * bug that slips through anyway, so that it costs one request or one round, not the registrar,
 * the verifier and the CA together (and again after every restart while the agent stays enrolled).
 *
 * Lines are rate-limited (a bug hit by every round must not flood the log): at most
 * {@link GUARD_LINES_PER_MINUTE} a minute, then one line counting what was left out.
 *
 * @module
 */
import { stackFrames } from '../log/describe-error.ts'
import type { Logger } from '../log/logger.ts'

/** Most guard lines logged per minute. */
export const GUARD_LINES_PER_MINUTE = 10

/** What the guard has caught so far (tests, `/health` later). */
export interface GuardCounts {
  uncaughtExceptions: number
  unhandledRejections: number
}

/**
 * Installs process-level `uncaughtException` / `unhandledRejection` handlers that log and keep
 * the process running. Returns the counts and a function that removes the handlers.
 */
export function installLastResortGuard(
  log: Logger,
  now: () => number = Date.now,
): { counts: GuardCounts; remove: () => void } {
  const counts: GuardCounts = { uncaughtExceptions: 0, unhandledRejections: 0 }
  let windowStart = now()
  let lines = 0
  let suppressed = 0
  const report = (kind: string, err: unknown) => {
    const t = now()
    if (t - windowStart >= 60_000) {
      if (suppressed > 0) log.error('last-resort guard: lines left out', { count: suppressed })
      windowStart = t
      lines = 0
      suppressed = 0
    }
    if (lines >= GUARD_LINES_PER_MINUTE) {
      suppressed++
      return
    }
    lines++
    // the logger describes `error` safely (no query parameters or quoted values)
    log.error(`${kind} caught by the last-resort guard; still serving`, {
      error: err,
      stack: stackFrames(err),
    })
  }
  const onException = (err: unknown) => {
    counts.uncaughtExceptions++
    report('uncaught exception', err)
  }
  const onRejection = (reason: unknown) => {
    counts.unhandledRejections++
    report('unhandled rejection', reason)
  }
  process.on('uncaughtException', onException)
  process.on('unhandledRejection', onRejection)
  return {
    counts,
    remove: () => {
      process.off('uncaughtException', onException)
      process.off('unhandledRejection', onRejection)
    },
  }
}
