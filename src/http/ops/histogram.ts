/**
 * A fixed-bucket latency histogram for the Prometheus exposition (`prometheus-text.ts`):
 * observations in milliseconds, exported in seconds.
 *
 * @module
 */

/** Bucket upper bounds (ms); exported as `le` in seconds. */
const BUCKETS_MS = [1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]

/** Upper end (ms) of the 1 ms resolution counts kept for {@link Histogram.quantile}. */
const FINE_MAX_MS = 60_000

/**
 * A fixed-bucket histogram in milliseconds, exported in seconds. With `fine` it also counts
 * observations at 1 ms resolution up to 60 s (240 KiB), so exact-to-the-millisecond quantiles
 * (p50/p99 schedule lateness) can be read and reset by benchmarks and health checks.
 */
export class Histogram {
  readonly #counts = new Float64Array(BUCKETS_MS.length + 1)
  readonly #fine: Uint32Array | undefined
  #fineN = 0
  #fineMax = 0
  #sum = 0
  #n = 0

  constructor(opts: { fine?: boolean } = {}) {
    if (opts.fine) this.#fine = new Uint32Array(FINE_MAX_MS + 1)
  }

  /** Records one observation (ms). */
  observe(ms: number): void {
    let i = 0
    while (i < BUCKETS_MS.length && ms > (BUCKETS_MS[i] as number)) i++
    this.#counts[i] = (this.#counts[i] as number) + 1
    this.#sum += ms
    this.#n++
    const fine = this.#fine
    if (fine !== undefined) {
      const k = ms <= 0 ? 0 : ms >= FINE_MAX_MS ? FINE_MAX_MS : Math.ceil(ms)
      fine[k] = (fine[k] as number) + 1
      this.#fineN++
      if (ms > this.#fineMax) this.#fineMax = ms
    }
  }

  /**
   * The `q` quantile (0…1, ms, rounded up to the millisecond) of the observations since the last
   * {@link resetQuantiles}; `q = 1` is the exact maximum. 0 without observations or `fine`.
   */
  quantile(q: number): number {
    const fine = this.#fine
    if (fine === undefined || this.#fineN === 0) return 0
    if (q >= 1) return this.#fineMax
    const rank = Math.max(1, Math.ceil(q * this.#fineN))
    let cum = 0
    for (let k = 0; k < fine.length; k++) {
      cum += fine[k] as number
      if (cum >= rank) return k
    }
    return this.#fineMax
  }

  /** Observations counted by {@link quantile} since the last reset. */
  get quantileCount(): number {
    return this.#fineN
  }

  /** Starts a new window for {@link quantile} (the exported buckets keep counting). */
  resetQuantiles(): void {
    this.#fine?.fill(0)
    this.#fineN = 0
    this.#fineMax = 0
  }

  /** Observations so far. */
  get count(): number {
    return this.#n
  }

  /** Sum of the observations (ms). */
  get sum(): number {
    return this.#sum
  }

  /** The cumulative bucket counts as `[le in seconds, count]`, ending with `+Inf`. */
  buckets(): [string, number][] {
    const out: [string, number][] = []
    let cum = 0
    for (const [i, b] of BUCKETS_MS.entries()) {
      cum += this.#counts[i] as number
      out.push([String(b / 1000), cum])
    }
    out.push(['+Inf', cum + (this.#counts[BUCKETS_MS.length] as number)])
    return out
  }
}
