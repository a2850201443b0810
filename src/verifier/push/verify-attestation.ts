/**
 * Asynchronous verification of pushed evidence (push-protocol.md §1.5.7, upstream
 * `TPMEngine.verify_evidence`), run after the 202: the agent row is reloaded (latest policies),
 * the quote string `r<message>:<signature>:<subject_data>` is checked by the ONE evaluate-evidence
 * on the check workers (`CheckPool.check` with a push record: nonce = the challenge's bytes, AK =
 * the enrolled `ak_tpm`, no PCR 16), with the IMA state and clock carried from the last passed
 * attestation in the agent row. The outcome, `failure_reason` and `verification_completed_at` are
 * stored with the agent's counters in one transaction.
 *
 * @module
 */
import { imaStateToJSON } from '../../ima/index.ts'
import type { Logger } from '../../log/logger.ts'
import type { CheckPool } from '../checks/check-pool.ts'
import type { CheckResult } from '../checks/check-quote.ts'
import { Failure, type FailureEvent, type SeverityRules } from '../checks/failure.ts'
import { recordFromRow, tpmPolicyText } from '../loop/agent-record.ts'
import { messageOf } from '../loop/agent-failures.ts'
import type { RoundPolicyCache } from '../loop/round-policies.ts'
import type { RevocationNotifier } from '../notify/revocation-notifier.ts'
import type { EvidenceItemRow } from '../store/attestations.ts'
import type { AgentRow, VerifierStore } from '../store/store.ts'
import { isoMicros } from '../../protocol/iso-micros.ts'

/** What verification needs. */
export interface VerifyDeps {
  store: VerifierStore
  checks: CheckPool
  policies: RoundPolicyCache
  rules: SeverityRules
  notifier: RevocationNotifier
  log: Logger
  /** `auto_recover_attestation_failures`. */
  autoRecover: boolean
}

/** Events upstream classes as a broken evidence chain; any other failure is a policy violation. */
export function failureReason(
  eventIds: readonly string[],
): 'broken_evidence_chain' | 'policy_violation' {
  const broken = eventIds.some(
    (id) =>
      id === 'qoute_validation.quote_validation' ||
      id.startsWith('measured_boot.invalid_pcr_') ||
      id === 'ima.pcr_mismatch',
  )
  return broken ? 'broken_evidence_chain' : 'policy_violation'
}

const b64 = (b: Uint8Array | null) => Buffer.from(b ?? new Uint8Array(0)).toString('base64')

/** The pull-answer form of pushed evidence, which `checkQuoteAnswer` reads. */
function answerOf(items: readonly EvidenceItemRow[], bootTime: string): Record<string, unknown> {
  const quote = items.find((i) => i.evidence_type === 'tpm_quote')
  const uefi = items.find((i) => i.evidence_type === 'uefi_log')
  const ima = items.find((i) => i.evidence_type === 'ima_log')
  const a: Record<string, unknown> = {
    quote: `r${b64(quote?.data__message ?? null)}:${b64(quote?.data__signature ?? null)}:${quote?.data__subject_data ?? ''}`,
    hash_alg: quote?.chosen_parameters__hash_algorithm ?? '',
    sign_alg: quote?.chosen_parameters__signature_scheme ?? '',
    boottime: Math.max(0, Math.floor(Date.parse(bootTime) / 1000) || 0),
  }
  if (uefi?.data__entries) a.mb_measurement_list = uefi.data__entries
  if (ima?.data__entries !== undefined && ima?.data__entries !== null) {
    a.ima_measurement_list = ima.data__entries
    a.ima_measurement_list_entry = ima.chosen_parameters__starting_offset ?? 0
  }
  return a
}

/** The failure of a check that could not run (a bug or a resource limit). */
function exceptionResult(rules: SeverityRules, err: unknown): CheckResult {
  const f = new Failure(rules)
  const message = err instanceof Error ? err.message : String(err)
  f.add('internal.verifier.exception', { message }, false)
  return { kind: 'fail', failure: f }
}

/** When each policy cache last read the stored versions (ms), and the read in flight. */
const lastRefresh = new WeakMap<RoundPolicyCache, { at: number; running?: Promise<void> }>()

/** How long a push verification trusts the policy versions read by an earlier one. */
const POLICY_REFRESH_MS = 1000

/**
 * Forgets changed policies, reading every policy's version at most once a second: the read
 * covers every policy row, so once per attestation it made each attestation O(agents).
 */
async function refreshPolicies(d: VerifyDeps): Promise<void> {
  const now = Date.now()
  const last = lastRefresh.get(d.policies)
  if (last?.running !== undefined) return last.running
  if (last !== undefined && now - last.at < POLICY_REFRESH_MS) return
  const entry: { at: number; running?: Promise<void> } = { at: last?.at ?? 0 }
  entry.running = d.store
    .policyVersions()
    .then((v) => {
      d.policies.refresh(v)
      entry.at = Date.now()
    })
    .finally(() => {
      entry.running = undefined
    })
  lastRefresh.set(d.policies, entry)
  return entry.running
}

/** Verifies attestation `index` of `agentId` and stores the outcome. Never throws. */
export async function verifyAttestation(
  d: VerifyDeps,
  agentId: string,
  index: number,
): Promise<void> {
  try {
    await verify(d, agentId, index)
  } catch (err) {
    d.log.error('push verification failed to complete', { agent_id: agentId, index, error: err })
  }
}

async function verify(d: VerifyDeps, agentId: string, index: number): Promise<void> {
  const row = await d.store.agents.getAgent(agentId)
  const att = await d.store.attestations.get(agentId, index)
  if (row === undefined || att === undefined || att.row.stage !== 'evaluating_evidence') return
  const rec = recordFromRow(row)
  rec.push = true
  const quote = att.items.find((i) => i.evidence_type === 'tpm_quote')
  let result: CheckResult
  try {
    // every attestation requests a quote (`capabilities.ts`): one without is not verifiable
    if (quote === undefined) throw new Error('attestation without a quote')
    await refreshPolicies(d)
    const set = await d.policies.load(rec)
    const nonce = quote.chosen_parameters__challenge ?? new Uint8Array(0)
    const answer = answerOf(att.items, att.row.system_info__boot_time)
    result = await d.checks.check(rec, answer, nonce, set.policies, set.imaKey, set.imaText)
  } catch (err) {
    result = exceptionResult(d.rules, err)
  }
  await record(d, row, index, att.items, result)
}

/** Stores the outcome, notifies on a failure and tells the auth side of a pass. */
async function record(
  d: VerifyDeps,
  row: AgentRow,
  index: number,
  items: readonly EvidenceItemRow[],
  result: CheckResult,
): Promise<void> {
  const agentId = row.agent_id
  const now = Date.now()
  const base = {
    agentId,
    index,
    completedAt: isoMicros(now),
    now: Math.floor(now / 1000),
    autoRecover: d.autoRecover,
  }
  if (result.kind === 'pass') {
    const ima = imaStateToJSON(result.updates.ima)
    const bank = result.updates.hashAlg as keyof typeof ima.pcr10
    const imaItem = items.find((i) => i.evidence_type === 'ima_log')
    const done = await d.store.attestations.complete({
      ...base,
      evaluation: 'pass',
      failureReason: null,
      imaCertified: imaItem?.data__entry_count ?? undefined,
      agentOnPass: {
        hash_alg: result.updates.hashAlg,
        sign_alg: result.updates.signAlg,
        tpm_clockinfo: result.updates.clock,
        next_ima_ml_entry: ima.next_ima_ml_entry,
        boottime: ima.boottime,
        ima_pcrs: { pcr10: ima.pcr10, quote_progress: ima.quote_progress },
        pcr10:
          ima.pcr10[bank] === undefined
            ? null
            : new Uint8Array(Buffer.from(ima.pcr10[bank], 'hex')),
        learned_ima_keyrings: ima.learned_ima_keyrings,
        severity_level: null,
        last_event_id: null,
      },
    })
    if (!done) return
    // upstream's wording (tpm_engine.py): keylime-tests grep the verifier log for it
    d.log.info(`Attestation ${index} for agent '${agentId}' successfully passed verification`)
    try {
      // `extend_token_on_attestation`: a passing agent keeps its bearer token alive
      await d.store.sessions.extendAgentToken(agentId)
    } catch (err) {
      d.log.warn('could not extend the agent token', { agent_id: agentId, error: err })
    }
    return
  }
  const failure = result.kind === 'fail' ? result.failure : rebootFailure(d.rules)
  const events = failure.events.map((e) => e.event_id)
  const top = failure.highest as FailureEvent | undefined
  const done = await d.store.attestations.complete({
    ...base,
    evaluation: 'fail',
    failureReason: failureReason(events),
    agentOnFail: {
      severity_level: top?.severity_label.severity ?? null,
      last_event_id: top?.event_id ?? null,
    },
  })
  if (!done) return
  d.log.warn(`Attestation ${index} for agent '${agentId}' failed verification`, {
    event_id: top?.event_id,
    events: events.length,
    // e.g. "File not found in allowlist: <path>", as upstream logs it
    message: top === undefined ? undefined : messageOf(top),
  })
  d.notifier.notify(subjectOf(row), 'revocation', top)
}

/** An IMA state from another boot (the offset did not start over): the chain is broken. */
function rebootFailure(rules: SeverityRules): Failure {
  const f = new Failure(rules)
  f.add(
    'ima.pcr_mismatch',
    { message: 'IMA log continues a measurement list of another boot' },
    false,
  )
  return f
}

/** The revocation notice's subject of an agent row. */
export function subjectOf(row: AgentRow) {
  return {
    agentId: row.agent_id,
    ip: row.ip,
    port: row.port,
    tpmPolicy: tpmPolicyText(row.tpm_policy),
    metaData: row.meta_data ?? '',
    revocationKey: row.revocation_key ?? '',
  }
}
