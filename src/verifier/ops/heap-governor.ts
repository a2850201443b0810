/**
 * A soft ceiling on the verifier process's memory. JavaScriptCore lets its heap double between
 * full collections while it is under a quarter of RAM, so on a large machine a busy verifier
 * holds gigabytes of garbage; the governor runs a full collection (`Bun.gc(true)`) when RSS passes
 * a mark, at most once per `minGapMs`. The next mark is `growth` × the RSS left after it, never
 * below `softLimitBytes`, so live data above the limit does not cause a collection loop.
 * Measurements (RSS, pause) are in docs/benchmarks.md.
 *
 * @module
 */

/** Options of {@link HeapGovernor}. */
export interface HeapGovernorOptions {
  /** RSS at which a full collection is first requested (bytes; default 512 MiB). */
  softLimitBytes?: number
  /** The next mark is this × the RSS left after a collection (default 1.5). */
  growth?: number
  /** How often RSS is read (ms; default 1000). */
  checkMs?: number
  /** Collections are requested at most this often (ms; default 5000). */
  minGapMs?: number
  /** Reads RSS (tests). */
  rss?: () => number
  /** Runs a full collection (tests). */
  collect?: () => void
  /** Clock in ms (tests). */
  now?: () => number
}

/** Checks after a collection whose lowest RSS sets the next mark. */
const SETTLE_CHECKS = 3

/** See the module documentation. */
export class HeapGovernor {
  readonly #soft: number
  readonly #growth: number
  readonly #checkMs: number
  readonly #minGap: number
  readonly #rss: () => number
  readonly #collect: () => void
  readonly #now: () => number
  #mark: number
  #lastAt = Number.NEGATIVE_INFINITY
  /** Checks left in which the RSS after the last collection is still settling. */
  #settling = 0
  #settledMin = Number.POSITIVE_INFINITY
  #timer: ReturnType<typeof setInterval> | undefined
  /** Collections run so far. */
  collections = 0
  /** How long the last collection paused the event loop (ms). */
  pauseMs = 0

  constructor(o: HeapGovernorOptions = {}) {
    this.#soft = o.softLimitBytes ?? 512 * 2 ** 20
    this.#growth = o.growth ?? 1.5
    this.#checkMs = o.checkMs ?? 1000
    this.#minGap = o.minGapMs ?? 5000
    this.#rss = o.rss ?? (() => process.memoryUsage.rss())
    this.#collect = o.collect ?? (() => Bun.gc(true))
    this.#now = o.now ?? (() => performance.now())
    this.#mark = this.#soft
  }

  /** The RSS at which the next collection is requested (bytes). */
  get mark(): number {
    return this.#mark
  }

  /** Starts the periodic check (the timer does not keep the process alive). */
  start(): this {
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.check(), this.#checkMs)
      this.#timer.unref()
    }
    return this
  }

  /** Stops the periodic check. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
    this.#timer = undefined
  }

  /** One check: returns whether it ran a collection. */
  check(): boolean {
    const rss = this.#rss()
    if (this.#settling > 0) {
      this.#settledMin = Math.min(this.#settledMin, rss)
      if (--this.#settling === 0) this.#mark = Math.max(this.#soft, this.#settledMin * this.#growth)
      return false
    }
    const now = this.#now()
    if (rss < this.#mark || now - this.#lastAt < this.#minGap) return false
    this.#lastAt = now
    this.#settling = SETTLE_CHECKS
    this.#settledMin = Number.POSITIVE_INFINITY
    this.collections++
    const t0 = performance.now()
    this.#collect()
    this.pauseMs = performance.now() - t0
    return true
  }
}

let shared: { governor: HeapGovernor; users: number } | undefined

/**
 * Starts the process's governor, or joins the running one (one per process however many
 * verifiers run in it); the returned function leaves it, and the last to leave stops it.
 */
export function joinHeapGovernor(): () => void {
  shared ??= { governor: new HeapGovernor().start(), users: 0 }
  shared.users++
  let left = false
  return () => {
    if (left || shared === undefined) return
    left = true
    if (--shared.users === 0) {
      shared.governor.stop()
      shared = undefined
    }
  }
}

/** The process's running governor, if a verifier runs (benchmarks report its figures). */
export function runningHeapGovernor(): HeapGovernor | undefined {
  return shared?.governor
}
