/**
 * The registrar's metrics, served as Prometheus text (format 0.0.4) on `GET /metrics` of its
 * admin listener: registrations and activations accepted, failed requests by reason
 * (`failure-reason.ts`), request latency by route and method of both listeners, and the process
 * basics.
 *
 * @module
 */
import { writeProcessMetrics } from '../http/ops/process-metrics.ts'
import { PrometheusText } from '../http/ops/prometheus-text.ts'
import { RequestMetrics } from '../http/ops/request-metrics.ts'
import {
  failureReason,
  REGISTRAR_FAILURE_REASONS,
  type RegistrarFailureReason,
} from './failure-reason.ts'

/** Counters of one registrar; both of its listeners feed one instance. */
export class RegistrarMetrics {
  /** Registrations answered with a challenge. */
  registrations = 0
  /** Activations that proved the challenge (a repeated activation of an active agent included). */
  activations = 0
  /** Failed requests by reason; every reason is exported, from 0. */
  readonly failures = new Map<RegistrarFailureReason, number>(
    REGISTRAR_FAILURE_REASONS.map((r) => [r, 0]),
  )
  /** Latency of both listeners (`createApp`'s `requestMetrics`); counts failures as they answer. */
  readonly requests = new RequestMetrics((o) => {
    if (o.status < 400) return
    const reason = failureReason(o.status, o.error)
    this.failures.set(reason, (this.failures.get(reason) ?? 0) + 1)
  })

  /** The exposition text. */
  render(): string {
    const w = new PrometheusText()
    w.counter(
      'keylime_registrar_registrations_total',
      'Registrations accepted (answered with an activation challenge).',
      this.registrations,
    )
    w.counter(
      'keylime_registrar_activations_total',
      'Activations accepted (the agent proved the challenge).',
      this.activations,
    )
    w.counter(
      'keylime_registrar_failures_total',
      'Failed requests by reason.',
      [...this.failures].map(([reason, n]) => [{ reason }, n]),
    )
    this.requests.write(w, 'keylime_registrar_http_request_seconds')
    writeProcessMetrics(w)
    return w.text()
  }
}
