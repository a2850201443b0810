/**
 * Whether the database is serving, as `/health` reports it, learnt without a probe per request:
 *
 * - every statement's outcome counts (the PostgreSQL guard reports each one; the verifier loop
 *   reports its batched writes and lease ticks): a success, or an error the server itself
 *   answered, means up; an outage (`database-unavailable.ts`) means down;
 * - when nothing has reported for `probeMs`, a cheap probe (`select 1`) runs, so an idle process
 *   notices an outage, and a process that is down notices the recovery, by itself.
 *
 * Each change of state is logged once (down at ERROR with the reason, up at INFO with the outage
 * length); while down, a reminder at most once a minute, however many statements fail.
 *
 * @module
 */
import type { Logger } from '../log/logger.ts'
import { describeError } from '../log/describe-error.ts'
import { isDatabaseUnavailable } from './database-unavailable.ts'

/** Default time without any report after which a probe runs (ms). */
export const DEFAULT_PROBE_MS = 2000

/** Least time between two "still unavailable" lines (ms). */
const REMINDER_MS = 60_000

/** What `/health` shows of the database. */
export interface DatabaseHealthStatus {
  /** `up`, or `down` since the last outage error. */
  state: 'up' | 'down'
  /** When the state last changed (ms since the epoch). */
  since: number
  /** Why it is down (a safe error description); absent when up. */
  reason?: string
}

/** Options of {@link DatabaseHealth}. */
export interface DatabaseHealthOptions {
  /** The redacted location, for log lines. */
  location: string
  /** A cheap statement proving the database serves (`select 1`), bounded in time. */
  probe: () => Promise<unknown>
  /** Time without any report before a probe runs (ms, default {@link DEFAULT_PROBE_MS}). */
  probeMs?: number
  log: Logger
  now?: () => number
}

/** The tracked state of one database instance. */
export class DatabaseHealth {
  readonly #o: DatabaseHealthOptions
  readonly #probeMs: number
  readonly #now: () => number
  #state: 'up' | 'down' = 'up'
  #since: number
  #reason: string | undefined
  #lastReport: number
  #failures = 0
  #remindedAt = 0
  #probing = false
  #timer: ReturnType<typeof setInterval> | undefined

  constructor(options: DatabaseHealthOptions) {
    this.#o = options
    this.#probeMs = options.probeMs ?? DEFAULT_PROBE_MS
    this.#now = options.now ?? Date.now
    this.#since = this.#now()
    this.#lastReport = this.#since
  }

  /** The current state. */
  get status(): DatabaseHealthStatus {
    return this.#reason === undefined
      ? { state: this.#state, since: this.#since }
      : { state: this.#state, since: this.#since, reason: this.#reason }
  }

  /** Whether the database is serving, as last seen. */
  get up(): boolean {
    return this.#state === 'up'
  }

  /**
   * Reports one statement's outcome: no argument for a success, else the error it failed with.
   * Only an outage marks the database down; any other error shows the server answered.
   */
  report(error?: unknown): void {
    this.#lastReport = this.#now()
    if (error !== undefined && isDatabaseUnavailable(error)) this.#down(error)
    else this.#up()
  }

  /** Starts the idle probe (a timer that does not keep the process alive). */
  start(): void {
    if (this.#timer !== undefined) return
    this.#timer = setInterval(() => void this.#tick(), Math.max(50, this.#probeMs / 2))
    this.#timer.unref?.()
  }

  /** Stops the probe. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  async #tick(): Promise<void> {
    if (this.#probing || this.#now() - this.#lastReport < this.#probeMs) return
    this.#probing = true
    try {
      await this.#o.probe()
      this.report()
    } catch (err) {
      // `select 1` fails only when the database cannot serve, whatever the error says
      this.#lastReport = this.#now()
      this.#down(err)
    } finally {
      this.#probing = false
    }
  }

  #down(error: unknown): void {
    this.#failures++
    const reason = describeError(error)
    const now = this.#now()
    this.#reason = reason
    if (this.#state === 'down') {
      if (now - this.#remindedAt < REMINDER_MS) return
      this.#remindedAt = now
      this.#o.log.warn('database still unavailable', {
        location: this.#o.location,
        failures: this.#failures,
        down_s: Math.round((now - this.#since) / 1000),
        error: reason,
      })
      return
    }
    this.#state = 'down'
    this.#since = now
    this.#remindedAt = now
    this.#failures = 1
    this.#o.log.error('database unavailable', { location: this.#o.location, error: reason })
  }

  #up(): void {
    if (this.#state === 'up') return
    const downMs = this.#now() - this.#since
    this.#state = 'up'
    this.#since = this.#now()
    this.#reason = undefined
    this.#o.log.info('database available again', {
      location: this.#o.location,
      down_s: Math.round(downMs / 1000),
      failures: this.#failures,
    })
    this.#failures = 0
  }
}
