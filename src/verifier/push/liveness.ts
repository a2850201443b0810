/**
 * Push-mode liveness (push-protocol.md §1.3, upstream `push_agent_monitor`): an agent that sends
 * no evidence for `quote_interval × 5` is in TIMEOUT. Upstream keeps an in-memory timer per agent
 * and re-derives it at start from `last_received_quote`; keylime-ts derives it from the database
 * alone, so it survives restarts and works with several verifiers on one PostgreSQL: the status
 * is computed from `last_received_quote`, and the agent's lease owner (the attestation loop's
 * scheduler, `attestation-loop.ts`) records the timeout once (`accept_attestations = false`) and
 * sends the revocation notice. The same turn verifies evidence a stopped verifier left without a
 * verdict.
 *
 * @module
 */
import { and, eq } from 'drizzle-orm'
import { verifiermain } from '../../db/index.ts'
import type { Logger } from '../../log/logger.ts'
import { Failure, type SeverityRules } from '../checks/failure.ts'
import type { RevocationNotifier } from '../notify/revocation-notifier.ts'
import type { AgentRow, VerifierStore } from '../store/store.ts'
import { isoMicros } from '../../protocol/iso-micros.ts'
import { subjectOf } from './verify-attestation.ts'

/** Timeout after this many quote intervals without evidence. */
export const TIMEOUT_INTERVALS = 5

/** The agent columns the status reads. */
export type LivenessRow = Pick<
  AgentRow,
  | 'accept_attestations'
  | 'consecutive_attestation_failures'
  | 'attestation_count'
  | 'last_received_quote'
>

/** When a push agent times out (epoch ms), or undefined before its first evidence. */
export function timeoutAt(row: LivenessRow, quoteInterval: number): number | undefined {
  const last = Number(row.last_received_quote ?? 0)
  if (last <= 0) return undefined
  return (last + quoteInterval * TIMEOUT_INTERVALS) * 1000
}

/**
 * `attestation_status` of a push agent: FAIL with consecutive failures; TIMEOUT when attestations
 * were switched off or no evidence came for `quote_interval × 5`; PASS after an attestation;
 * PENDING before the first.
 */
export function pushAttestationStatus(
  row: LivenessRow,
  quoteInterval: number,
  now: number,
): 'PASS' | 'FAIL' | 'TIMEOUT' | 'PENDING' {
  if ((row.consecutive_attestation_failures ?? 0) > 0) return 'FAIL'
  const due = timeoutAt(row, quoteInterval)
  if (!row.accept_attestations || (due !== undefined && now >= due)) return 'TIMEOUT'
  if ((row.attestation_count ?? 0) > 0) return 'PASS'
  return 'PENDING'
}

/** Options of {@link PushLiveness}. */
export interface PushLivenessOptions {
  store: VerifierStore
  notifier: RevocationNotifier
  rules: SeverityRules
  log: Logger
  /** `quote_interval` in seconds. */
  quoteInterval: number
  /**
   * Verifies attestation `index` again: its evidence was taken by a verifier that stopped before
   * the verdict (`verify-attestation.ts`; writing the verdict is once-only).
   */
  reverify?: (agentId: string, index: number) => Promise<void>
  /** Evidence older than this without a verdict is verified again (ms; default 60 s). */
  stalledMs?: number
}

/** The timeout side of liveness, run by the agent's lease owner. */
export class PushLiveness {
  readonly #o: PushLivenessOptions

  constructor(o: PushLivenessOptions) {
    this.#o = o
  }

  /**
   * Records a timeout that is due (once per silence: the update is conditional on the row still
   * accepting attestations and having the same `last_received_quote`) and notifies. Returns the ms
   * until the agent's next check.
   */
  async check(agentId: string, now = Date.now()): Promise<number> {
    const o = this.#o
    const period = o.quoteInterval * TIMEOUT_INTERVALS * 1000
    const row = await o.store.agents.getAgent(agentId)
    if (row === undefined || row.mode !== 'push') return period
    await this.#resume(agentId, now)
    const due = timeoutAt(row, o.quoteInterval)
    if (due === undefined) return period
    if (now < due) return due - now
    if (!row.accept_attestations) return period
    const changed = await o.store.db
      .update(verifiermain)
      .set({ accept_attestations: false })
      .where(
        and(
          eq(verifiermain.agent_id, agentId),
          eq(verifiermain.accept_attestations, true),
          eq(verifiermain.last_received_quote, Number(row.last_received_quote)),
        ),
      )
      .returning({ id: verifiermain.agent_id })
    if (changed.length > 0) {
      o.log.warn('push agent timed out: no evidence within 5 quote intervals', {
        agent_id: agentId,
      })
      const f = new Failure(o.rules)
      const context = { message: 'no attestation received', seconds: period / 1000 }
      f.add('push_agent_monitor.timeout', context, true)
      o.notifier.notify(subjectOf(row), 'revocation', f.highest)
    }
    return period
  }

  /** Verifies evidence whose verifier stopped before its verdict (once-only writes make it safe). */
  async #resume(agentId: string, now: number): Promise<void> {
    const o = this.#o
    if (o.reverify === undefined) return
    const before = isoMicros(now - (o.stalledMs ?? 60_000))
    for (const index of await o.store.attestations.stalled(agentId, before)) {
      o.log.warn('verifying pushed evidence left without a verdict', { agent_id: agentId, index })
      await o.reverify(agentId, index)
    }
  }
}
