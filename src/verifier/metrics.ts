/**
 * Prometheus text exposition (format 0.0.4) of the verifier's counters, written by hand (no
 * dependency): attestations by result, round and quote-check latency histograms, schedule lag,
 * in-flight requests, agents by state, lease counts.
 *
 * @module
 */

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
    ;(this.#counts as Float64Array)[i] = ((this.#counts[i] as number) ?? 0) + 1
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

  /** Text lines for `name`. */
  render(name: string, help: string): string {
    const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`]
    let cum = 0
    for (const [i, b] of BUCKETS_MS.entries()) {
      cum += this.#counts[i] as number
      out.push(`${name}_bucket{le="${b / 1000}"} ${cum}`)
    }
    cum += this.#counts[BUCKETS_MS.length] as number
    out.push(
      `${name}_bucket{le="+Inf"} ${cum}`,
      `${name}_sum ${this.#sum / 1000}`,
      `${name}_count ${this.#n}`,
    )
    return out.join('\n')
  }
}

/** The verifier's metrics. */
export class VerifierMetrics {
  /** Attestation rounds by result: pass, fail (invalid quote), retry (comm error), error. */
  readonly results = new Map<string, number>()
  readonly roundLatency = new Histogram()
  readonly checkLatency = new Histogram()
  /** Start lateness of rounds; keeps 1 ms quantiles (bench, `/health`). */
  readonly scheduleLag = new Histogram({ fine: true })
  /** Failure events by event id (bounded to 200 ids). */
  readonly events = new Map<string, number>()

  /** Counts a round result. */
  result(kind: 'pass' | 'fail' | 'retry' | 'error'): void {
    this.results.set(kind, (this.results.get(kind) ?? 0) + 1)
  }

  /** Counts a failure event. */
  event(id: string): void {
    if (!this.events.has(id) && this.events.size >= 200) return
    this.events.set(id, (this.events.get(id) ?? 0) + 1)
  }

  /** The exposition text; `gauges` are current values supplied by the caller. */
  render(g: {
    agentsByState: Map<string, number>
    inFlight: number
    scheduled: number
    lagSeconds: number
    leasesHeld: number
    liveInstances: number
    revocations: Record<string, number>
  }): string {
    const lines: string[] = []
    const counter = (name: string, help: string, entries: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`)
      for (const [labels, v] of entries) lines.push(`${name}${labels} ${v}`)
    }
    const gauge = (name: string, help: string, v: number | [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`)
      if (typeof v === 'number') lines.push(`${name} ${v}`)
      else for (const [labels, x] of v) lines.push(`${name}${labels} ${x}`)
    }
    const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
    counter(
      'keylime_verifier_attestations_total',
      'Attestation rounds by result.',
      ['pass', 'fail', 'retry', 'error'].map((k) => [`{result="${k}"}`, this.results.get(k) ?? 0]),
    )
    counter(
      'keylime_verifier_failure_events_total',
      'Failure events by event id.',
      [...this.events].map(([k, v]) => [`{event_id="${esc(k)}"}`, v]),
    )
    counter(
      'keylime_verifier_revocation_notices_total',
      'Revocation notices by channel and outcome.',
      Object.entries(g.revocations).map(([k, v]) => {
        const [channel, outcome] = k.split('_')
        return [`{channel="${channel}",outcome="${outcome}"}`, v]
      }),
    )
    lines.push(
      this.roundLatency.render(
        'keylime_verifier_round_seconds',
        'Duration of an attestation round (request and checks).',
      ),
    )
    lines.push(
      this.checkLatency.render(
        'keylime_verifier_check_seconds',
        'CPU time of the quote, PCR, IMA and MB checks.',
      ),
    )
    lines.push(
      this.scheduleLag.render(
        'keylime_verifier_schedule_lag_seconds',
        'How late rounds started after their due time.',
      ),
    )
    gauge(
      'keylime_verifier_agents',
      'Agents held by this instance, by operational state.',
      [...g.agentsByState].map(([k, v]) => [`{state="${k}"}`, v]),
    )
    gauge('keylime_verifier_in_flight_requests', 'Attestation rounds in flight.', g.inFlight)
    gauge('keylime_verifier_scheduled_agents', 'Agents waiting in the schedule.', g.scheduled)
    gauge(
      'keylime_verifier_schedule_lag_now_seconds',
      'Lateness of the most overdue waiting round.',
      g.lagSeconds,
    )
    gauge('keylime_verifier_leases_held', 'Agent leases held by this instance.', g.leasesHeld)
    gauge(
      'keylime_verifier_live_instances',
      'Live verifier instances with this verifier_id.',
      g.liveInstances,
    )
    return `${lines.join('\n')}\n`
  }
}
