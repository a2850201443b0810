/**
 * One role's answer to `keylime health`: `GET /health` over mTLS, bounded in time, turned into
 * the line printed for it (`ok`, `unhealthy: <reason>`, `unreachable: <why>`).
 *
 * @module
 */
import type { MtlsClient } from '../http/mtls-client.ts'
import { PeerUnreachable } from '../http/peer-errors.ts'
import { envelopeStatus } from '../tenant/tenant-context.ts'

/** The roles `keylime health` asks. */
export type HealthRole = 'verifier' | 'registrar'

/** The verdict on one role. */
export interface HealthProbe {
  role: HealthRole
  /** Whether the role answered 200 with `status: ok`. */
  ok: boolean
  /** `ok`, `unhealthy: …` or `unreachable: …`. */
  summary: string
}

/** Why an answer that is not 200 `ok` is unhealthy: the role's reason, else the HTTP status. */
function unhealthyReason(status: number, body: unknown, results: unknown): string {
  const reason = (results as { reason?: unknown } | null)?.reason
  if (typeof reason === 'string' && reason !== '') return reason
  const text = envelopeStatus(body)
  return `HTTP ${status}${text ? ` (${text})` : ''}`
}

/**
 * Asks `url` (a role's `/health`) and judges the answer; never throws. The whole exchange,
 * the body included, is bounded by `timeoutMs`.
 */
export async function probeHealth(
  client: MtlsClient,
  role: HealthRole,
  url: string,
  timeoutMs: number,
): Promise<HealthProbe> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new PeerUnreachable(url, `no answer within ${timeoutMs / 1000} s`)),
      timeoutMs,
    )
  })
  try {
    const res = await Promise.race([client.request(url, { timeoutMs }), deadline])
    const status = (res.results as { status?: unknown } | null)?.status
    if (res.status === 200 && status === 'ok') return { role, ok: true, summary: 'ok' }
    const reason = unhealthyReason(res.status, res.body, res.results)
    return { role, ok: false, summary: `unhealthy: ${reason}` }
  } catch (err) {
    // the client's errors are typed (unreachable, or an answer that is not JSON)
    const kind = err instanceof PeerUnreachable ? 'unreachable' : 'unhealthy'
    const message = err instanceof Error ? err.message : String(err)
    return { role, ok: false, summary: `${kind}: ${message}` }
  } finally {
    clearTimeout(timer)
  }
}
