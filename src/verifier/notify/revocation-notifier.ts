/**
 * Revocation notices (upstream `keylime/revocation_notifier.py`, `cloud_verifier_common.py:
 * prepare_error`, keylime-api.md §3.9, wire-formats.md §5).
 *
 * The message is upstream's JSON with Python's default separators (`", "`, `": "`), signed with
 * RSA-PSS-SHA256 (MGF1-SHA256, maximum salt length) by the enrolment's `revocation_key`; the
 * signature is empty without a key. Channels (`[revocations] enabled_revocation_notifications`):
 * - `agent`: POST `{msg, signature}` to `/v{ver}/notifications/revocation` of every *other* agent
 *   with this verifier_id, at most 32 at a time, once each (set-up and answer each bounded by
 *   60 s), through the verifier's one agent client: same TLS identity, connect limits and
 *   kept-alive connections as the quotes;
 * - `webhook`: POST the same JSON to `webhook_url`, success on 200/202, retried `max_retries`
 *   times with the `retry_interval` backoff;
 * - `zeromq`: not supported (logged once at start).
 * Sending never blocks the poll loop; {@link RevocationNotifier.drain} waits for pending sends.
 *
 * @module
 */
import { constants, createHash, createPrivateKey, type KeyObject, sign } from 'node:crypto'
import type { AgentConnections, AgentTarget } from '../../http/agent-client/agent-connections.ts'
import type { Logger } from '../../log/logger.ts'
import { BoundedCache } from '../../protocol/bounded-cache.ts'
import { pythonJsonDumps } from '../../protocol/python-json.ts'
import { retryTime } from '../../protocol/retry-time.ts'
import type { FailureEvent } from '../checks/failure.ts'

/** What a notice is about. */
export interface RevocationSubject {
  agentId: string
  ip: string | null
  port: number | null
  tpmPolicy: string
  metaData: string
  revocationKey: string
}

/** A peer agent to notify. */
export interface NotifyTarget {
  agentId: string
  ip: string
  port: number
  mtlsCert: string | null
  version: string
}

/** Options of {@link RevocationNotifier}. */
export interface RevocationNotifierOptions {
  channels: readonly string[]
  webhookUrl: string
  maxRetries: number
  retryInterval: number
  exponentialBackoff: boolean
  /** The verifier's agent client. */
  agents: Pick<AgentConnections, 'request'>
  log: Logger
  /** Other agents to notify (the store query; excludes the subject). */
  targets(subject: string): Promise<NotifyTarget[]>
  /** Plain fetch for the webhook (tests may replace it). */
  fetch?: typeof fetch
  /**
   * `[revocations] webhook_ear` (keylime-ts): the agent's signed EAR, added to the webhook's JSON
   * as `ear` (docs/ear.md). Absent: upstream's `{msg, signature}` only.
   */
  webhookEar?: (agentId: string) => Promise<string | undefined>
}

/** Formats a date as Python's `time.asctime()` (`Sat Nov 21 15:33:00 2026`). */
export function asctime(d = new Date()): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat']
  const months = [
    'Jan',
    'Feb',
    'Mar',
    'Apr',
    'May',
    'Jun',
    'Jul',
    'Aug',
    'Sep',
    'Oct',
    'Nov',
    'Dec',
  ]
  const p = (n: number) => String(n).padStart(2, '0')
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${d.getFullYear()}`
}

/** Builds `{msg, signature}` for a subject and event (upstream `prepare_error`). */
export function buildRevocation(
  subject: RevocationSubject,
  type: 'revocation' | 'comm_error',
  event: FailureEvent | undefined,
  now = new Date(),
  keyCache?: BoundedCache<KeyObject>,
): { msg: string; signature: string } {
  const m: Record<string, unknown> = {
    type,
    ip: subject.ip,
    agent_id: subject.agentId,
    port: subject.port,
    tpm_policy: subject.tpmPolicy,
    meta_data: subject.metaData,
    event_time: asctime(now),
  }
  if (event !== undefined) {
    m.event_id = event.event_id
    m.severity_label = event.severity_label.name
    m.context = pythonJsonDumps(event.context)
  }
  const msg = pythonJsonDumps(m)
  let signature = ''
  if (subject.revocationKey !== '') {
    // keyed by a digest: neither the key text nor its size sits in the cache
    const id = createHash('sha256').update(subject.revocationKey).digest('base64')
    let key = keyCache?.get(id)
    if (key === undefined) {
      key = createPrivateKey(subject.revocationKey)
      keyCache?.set(id, key)
    }
    signature = sign('sha256', Buffer.from(msg, 'utf8'), {
      key,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
    }).toString('base64')
  }
  return { msg, signature }
}

/** Sends notices on the enabled channels. */
export class RevocationNotifier {
  readonly #o: RevocationNotifierOptions
  readonly #pending = new Set<Promise<void>>()
  readonly #keys = new BoundedCache<KeyObject>({
    maxEntries: 1024,
    maxBytes: 4 * 1024 * 1024,
    sizeOf: () => 2048,
  })
  /** Notices sent, by channel and outcome (for metrics). */
  readonly counts = { agent_ok: 0, agent_failed: 0, webhook_ok: 0, webhook_failed: 0 }

  constructor(o: RevocationNotifierOptions) {
    this.#o = o
    if (o.channels.includes('zeromq')) {
      o.log.warn('revocation channel zeromq is not supported by keylime-ts; use agent or webhook')
    }
  }

  /** True when any supported channel is enabled. */
  get enabled(): boolean {
    return this.#o.channels.includes('agent') || this.#o.channels.includes('webhook')
  }

  /** Sends a notice in the background. */
  notify(
    subject: RevocationSubject,
    type: 'revocation' | 'comm_error',
    event: FailureEvent | undefined,
  ): void {
    if (!this.enabled) return
    let tosend: { msg: string; signature: string }
    try {
      tosend = buildRevocation(subject, type, event, new Date(), this.#keys)
    } catch (err) {
      this.#o.log.error('cannot sign the revocation notice (check revocation_key)', {
        agent_id: subject.agentId,
        error: err,
      })
      tosend = buildRevocation({ ...subject, revocationKey: '' }, type, event)
    }
    this.#o.log.info('sending revocation notice', {
      agent_id: subject.agentId,
      type,
      event_id: event?.event_id,
    })
    const p = this.#send(subject.agentId, tosend).finally(() => this.#pending.delete(p))
    this.#pending.add(p)
  }

  /** Waits for pending notices (at most `ms`). */
  async drain(ms: number): Promise<void> {
    if (this.#pending.size === 0) return
    await Promise.race([Promise.allSettled([...this.#pending]), Bun.sleep(ms)])
  }

  async #send(agentId: string, tosend: { msg: string; signature: string }): Promise<void> {
    const jobs: Promise<void>[] = []
    if (this.#o.channels.includes('webhook') && this.#o.webhookUrl !== '')
      jobs.push(this.#webhookEar(agentId).then((ear) => this.#webhook({ ...tosend, ...ear })))
    if (this.#o.channels.includes('agent')) jobs.push(this.#agents(agentId, tosend))
    await Promise.allSettled(jobs)
  }

  /** `{ear}` for the webhook when configured and available (never fails the notice). */
  async #webhookEar(agentId: string): Promise<{ ear?: string }> {
    const make = this.#o.webhookEar
    if (make === undefined) return {}
    try {
      const ear = await make(agentId)
      return ear === undefined ? {} : { ear }
    } catch (err) {
      this.#o.log.warn('cannot sign the EAR of a revocation notice', {
        agent_id: agentId,
        error: err instanceof Error ? err.message : String(err),
      })
      return {}
    }
  }

  async #webhook(tosend: { msg: string; signature: string; ear?: string }): Promise<void> {
    const f = this.#o.fetch ?? fetch
    const tries = Math.max(1, this.#o.maxRetries)
    for (let n = 1; n <= tries; n++) {
      try {
        const res = await f(this.#o.webhookUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(tosend),
          signal: AbortSignal.timeout(60_000),
        })
        // The answer's body is not needed: cancel it rather than read whatever the server sends.
        await res.body?.cancel().catch(() => undefined)
        if (res.status === 200 || res.status === 202) {
          this.counts.webhook_ok++
          return
        }
      } catch {
        // retried below
      }
      if (n < tries) {
        const wait = retryTime(this.#o.exponentialBackoff, this.#o.retryInterval, n)
        await Bun.sleep(Math.min(wait, 60) * 1000)
      }
    }
    this.counts.webhook_failed++
    this.#o.log.warn('webhook revocation notice failed after retries', { attempts: tries })
  }

  async #agents(agentId: string, tosend: { msg: string; signature: string }): Promise<void> {
    const targets = (await this.#o.targets(agentId)).filter((t) => t.agentId !== agentId)
    let next = 0
    const worker = async () => {
      while (next < targets.length) {
        const t = targets[next++] as NotifyTarget
        const target: AgentTarget = {
          ip: t.ip,
          port: t.port,
          https: t.mtlsCert !== null,
          pinnedCert: t.mtlsCert ?? undefined,
        }
        try {
          const res = await this.#o.agents.request(target, {
            method: 'POST',
            path: `/v${t.version}/notifications/revocation`,
            json: tosend,
            timeoutMs: 60_000,
          })
          if (res.status === 200) this.counts.agent_ok++
          else this.counts.agent_failed++
        } catch {
          this.counts.agent_failed++
        }
      }
    }
    await Promise.all(Array.from({ length: Math.min(32, targets.length) }, worker))
  }
}
