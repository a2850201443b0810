/**
 * An enrolled agent's current result as an EAR appraisal, from what the verifier keeps of it: the
 * operational state, the attestation count and the highest-severity failure event
 * (`last_event_id`). The mapping table is in docs/ear.md.
 *
 * @module
 */
import { AGENT_STATES } from '../../protocol/agent-states.ts'
import { applyEvents } from './ar4si-vector.ts'
import { appraisal, CLAIM, type EarAppraisal, type TrustVector } from './ear-claims.ts'

/** What the appraisal reads of an agent (the live record where this process polls it). */
export interface AgentResultView {
  /** `operational_state`. */
  state: number | null
  /** Quotes that passed since enrolment. */
  attestationCount: number
  /** The highest-severity failure event since enrolment or reactivation. */
  lastEventId: string | null
  /** A runtime (IMA) policy is enrolled. */
  hasRuntimePolicy: boolean
  /** A measured-boot policy is enrolled, or `tpm_policy` names PCRs. */
  hasConfigPolicy: boolean
  /** When a quote last passed (epoch seconds; 0 never). */
  lastSuccessfulAttestation: number
  /**
   * Oldest pass still current (seconds): API 2.5's `maximum_attestation_interval`, 5 ×
   * `quote_interval`. An older one means polling stalled.
   */
  maxAgeSeconds: number
  /** Now, epoch seconds. */
  now: number
}

/**
 * What a passing quote affirms: hardware (the quote verified with the AK), instance identity (that
 * AK is the one the registrar bound to the EK and the tenant enrolled), and each policy checked.
 */
function passingVector(v: AgentResultView): TrustVector {
  const vector: TrustVector = { 'instance-identity': CLAIM.AFFIRMED, hardware: CLAIM.AFFIRMED }
  if (v.hasRuntimePolicy) vector.executables = CLAIM.AFFIRMED
  if (v.hasConfigPolicy) vector.configuration = CLAIM.AFFIRMED
  return vector
}

/**
 * What a failure tells: the failed category, plus what the checks before it affirmed (the quote
 * verified unless the failure is the quote's own, which then claims for nothing else).
 */
function failedVector(eventId: string | null): TrustVector {
  const vector: TrustVector = {}
  if (eventId === null) return vector
  if (!applyEvents(vector, [eventId])) return vector
  if (vector.hardware === undefined) {
    vector.hardware = CLAIM.AFFIRMED
    vector['instance-identity'] ??= CLAIM.AFFIRMED
  }
  return vector
}

/** The appraisal of one agent. */
export function appraiseAgent(v: AgentResultView): EarAppraisal {
  switch (v.state) {
    case AGENT_STATES.GET_QUOTE:
    case AGENT_STATES.PROVIDE_V: {
      if (v.attestationCount === 0) return appraisal('none', {})
      // polled, but no pass for longer than the API's maximum interval: the verdict is stale
      const stale = v.now - v.lastSuccessfulAttestation > v.maxAgeSeconds
      return appraisal(stale ? 'warning' : 'affirming', passingVector(v))
    }
    // the last quote passed; the agent is not answering now and is being retried
    case AGENT_STATES.GET_QUOTE_RETRY:
    case AGENT_STATES.PROVIDE_V_RETRY:
      return v.attestationCount > 0 ? appraisal('warning', passingVector(v)) : appraisal('none', {})
    case AGENT_STATES.INVALID_QUOTE:
    case AGENT_STATES.FAILED:
    case AGENT_STATES.TENANT_FAILED:
      return appraisal('contraindicated', failedVector(v.lastEventId))
    default:
      // REGISTERED, START, SAVED (no verdict yet), TERMINATED (being removed), unknown
      return appraisal('none', {})
  }
}
