/**
 * Rate limit for a log line that can repeat many times a second while one condition lasts (a
 * database outage fails every batched write, every request): the first occurrence is written,
 * then at most one per interval, carrying how many were held back (`suppressed`).
 *
 * @module
 */
import type { LogFields, Logger, LogLevel } from './logger.ts'

/** Distinct keys remembered at most (keys are message texts, so a handful in practice). */
const MAX_KEYS = 256

/**
 * Writes a line at most once per interval per key.
 *
 * @example
 * ```ts
 * const throttle = new LogThrottle(60_000)
 * throttle.write(log, 'ERROR', 'batched state write failed; will retry', { error: err })
 * ```
 */
export class LogThrottle {
  readonly #intervalMs: number
  readonly #now: () => number
  readonly #keys = new Map<string, { at: number; suppressed: number }>()

  /** @param intervalMs - least time between two lines of one key (default 60 s) */
  constructor(intervalMs = 60_000, now: () => number = Date.now) {
    this.#intervalMs = intervalMs
    this.#now = now
  }

  /**
   * Writes `msg` unless a line with the same key was written less than the interval ago; the
   * line written after a quiet spell carries `suppressed` (lines held back since the last one).
   *
   * @returns whether the line was written
   */
  write(log: Logger, level: LogLevel, msg: string, fields: LogFields = {}, key = msg): boolean {
    const now = this.#now()
    const entry = this.#keys.get(key)
    if (entry !== undefined && now - entry.at < this.#intervalMs) {
      entry.suppressed++
      return false
    }
    if (entry === undefined && this.#keys.size >= MAX_KEYS) this.#keys.clear()
    const suppressed = entry?.suppressed ?? 0
    this.#keys.set(key, { at: now, suppressed: 0 })
    log.log(level, msg, suppressed > 0 ? { ...fields, suppressed } : fields)
    return true
  }

  /** Forgets `key`: its next line is written at once (the condition ended). */
  reset(key: string): void {
    this.#keys.delete(key)
  }
}
