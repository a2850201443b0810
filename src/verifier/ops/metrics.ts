/**
 * The verifier's metrics in the Prometheus text exposition (format 0.0.4, written by the shared
 * `http/ops/prometheus-text.ts`): attestations by result, round and quote-check latency
 * histograms, schedule lag, in-flight requests, agents by state, lease counts, request latency
 * of the REST API, and the process basics.
 *
 * @module
 */
import { Histogram } from '../../http/ops/histogram.ts'
import { writeProcessMetrics } from '../../http/ops/process-metrics.ts'
import { PrometheusText } from '../../http/ops/prometheus-text.ts'
import { RequestMetrics } from '../../http/ops/request-metrics.ts'

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
  /** REST API latency by route and method (`createApp`'s `requestMetrics`). */
  readonly requests = new RequestMetrics()

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
    const w = new PrometheusText()
    w.counter(
      'keylime_verifier_attestations_total',
      'Attestation rounds by result.',
      ['pass', 'fail', 'retry', 'error'].map((k) => [{ result: k }, this.results.get(k) ?? 0]),
    )
    w.counter(
      'keylime_verifier_failure_events_total',
      'Failure events by event id.',
      [...this.events].map(([k, v]) => [{ event_id: k }, v]),
    )
    w.counter(
      'keylime_verifier_revocation_notices_total',
      'Revocation notices by channel and outcome.',
      Object.entries(g.revocations).map(([k, v]) => {
        const [channel = '', outcome = ''] = k.split('_')
        return [{ channel, outcome }, v]
      }),
    )
    w.histogram(
      'keylime_verifier_round_seconds',
      'Duration of an attestation round (request and checks).',
      this.roundLatency,
    )
    w.histogram(
      'keylime_verifier_check_seconds',
      'CPU time of the quote, PCR, IMA and MB checks.',
      this.checkLatency,
    )
    w.histogram(
      'keylime_verifier_schedule_lag_seconds',
      'How late rounds started after their due time.',
      this.scheduleLag,
    )
    w.gauge(
      'keylime_verifier_agents',
      'Agents held by this instance, by operational state.',
      [...g.agentsByState].map(([k, v]) => [{ state: k }, v]),
    )
    w.gauge('keylime_verifier_in_flight_requests', 'Attestation rounds in flight.', g.inFlight)
    w.gauge('keylime_verifier_scheduled_agents', 'Agents waiting in the schedule.', g.scheduled)
    w.gauge(
      'keylime_verifier_schedule_lag_now_seconds',
      'Lateness of the most overdue waiting round.',
      g.lagSeconds,
    )
    w.gauge('keylime_verifier_leases_held', 'Agent leases held by this instance.', g.leasesHeld)
    w.gauge(
      'keylime_verifier_live_instances',
      'Live verifier instances with this verifier_id.',
      g.liveInstances,
    )
    this.requests.write(w, 'keylime_verifier_http_request_seconds')
    writeProcessMetrics(w)
    return w.text()
  }
}
