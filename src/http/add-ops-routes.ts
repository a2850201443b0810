/**
 * `GET /metrics` (Prometheus text, format 0.0.4) and `GET /health` of a role. Both roles mount
 * them on their admin mTLS listener only (verifier 8881, registrar 8891), so only holders of a
 * client certificate from the trusted CA reach them (upstream has neither endpoint; keeping them
 * behind the same mTLS keeps the single-port model). `/health` answers 200 `Success` when the
 * role is healthy and 503 `Unhealthy` otherwise, with the role's verdict as the results.
 *
 * @module
 */
import type { AccessRule } from './access/enforce-access.ts'
import type { KeylimeApp } from './create-app.ts'
import { envelopeResponse } from './envelope.ts'
import { PROMETHEUS_CONTENT_TYPE } from './ops/prometheus-text.ts'

/** What `/metrics` and `/health` read. */
export interface Observability {
  /** The exposition text. */
  metricsText(): string
  /** The verdict (the results of the answer): `status` is `ok`, or else `reason` says why not. */
  health(): { status: string; reason?: string }
}

/** Registers `/metrics` and `/health` on `app`. */
export function addOpsRoutes(app: KeylimeApp, obs: Observability): void {
  app.get(
    '/metrics',
    () => new Response(obs.metricsText(), { headers: { 'content-type': PROMETHEUS_CONTENT_TYPE } }),
  )
  app.get('/health', () => {
    const h = obs.health()
    const ok = h.status === 'ok'
    return envelopeResponse(ok ? 200 : 503, ok ? 'Success' : 'Unhealthy', h)
  })
}

/** The access rules of `/metrics` and `/health`: keylime-ts actions, admin only. */
export const OPS_ACCESS: readonly AccessRule[] = [
  ['GET', '/metrics', 'read_metrics'],
  ['GET', '/health', 'read_health'],
]
