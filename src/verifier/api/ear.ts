/**
 * Signed attestation results (docs/ear.md): an enrolled agent's current result as an EAR
 * (`GET /v2[.x]/agents/{id}/ear`, `GET /v3[.0]/agents/{id}/ear`), a `/verify/evidence` answer as
 * an EAR (`Accept: application/eat+jwt`), and the JWKS (`GET /.well-known/jwks.json`).
 *
 * @module
 */
import { NotFound } from '../../errors.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'
import type { EvidenceChecks, EvidenceResults } from '../checks/evidence-request.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'
import { type AgentResultView, appraiseAgent } from '../results/appraise-agent.ts'
import { appraiseEvidence, EVIDENCE_SUBMOD } from '../results/appraise-evidence.ts'
import { checkEarNonce, type EarAppraisal } from '../results/ear-claims.ts'
import type { EarIssuer } from '../results/ear-issuer.ts'
import type { PublicJwk } from '../results/sign-jwt.ts'
import { checkAgentId } from './agent-id.ts'
import type { AgentsApi } from './agents.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** Where the verifier serves the public keys of its EAR tokens (public, RFC 8615 well-known). */
export const JWKS_PATH = '/.well-known/jwks.json'

/** True when a stored `tpm_policy` (JSON text) names PCR values to check. */
function namesPcrs(tpmPolicy: unknown): boolean {
  try {
    return parseTpmPolicy(tpmPolicy).pcrs.size > 0
  } catch {
    return false
  }
}

/**
 * The view of `GET /agents/{id}`'s results an appraisal reads; a pass older than 5 ×
 * `quote_interval` (its `maximum_attestation_interval`) is stale.
 */
function resultView(s: Record<string, unknown>, quoteInterval: number): AgentResultView {
  const num = (v: unknown) => (typeof v === 'number' ? v : null)
  // a push agent stays in GET_QUOTE: its verdict is its attestation_status (FAIL: a failed quote)
  const pushFailed =
    s.attestation_status === 'FAIL' && s.operational_state === AGENT_STATES.GET_QUOTE
  return {
    state: pushFailed ? AGENT_STATES.INVALID_QUOTE : num(s.operational_state),
    attestationCount: num(s.attestation_count) ?? 0,
    lastEventId: typeof s.last_event_id === 'string' ? s.last_event_id : null,
    hasRuntimePolicy: s.has_runtime_policy === 1,
    hasConfigPolicy: s.has_mb_refstate === 1 || namesPcrs(s.tpm_policy),
    lastSuccessfulAttestation: num(s.last_successful_attestation) ?? 0,
    maxAgeSeconds: Math.max(5 * quoteInterval, 1),
    now: Date.now() / 1000,
  }
}

/** The EAR operations of the API. */
export class EarApi {
  readonly #o: VerifierServiceOptions
  readonly #agents: AgentsApi
  readonly #issuer: EarIssuer

  constructor(o: VerifierServiceOptions, agents: AgentsApi, issuer: EarIssuer) {
    this.#o = o
    this.#agents = agents
    this.#issuer = issuer
  }

  /** An agent's appraisal, as `GET /agents/{id}` sees it (live record overlaid), or undefined. */
  async agentAppraisal(agentId: string): Promise<EarAppraisal | undefined> {
    const row = await this.#o.store.agents.getAgent(agentId)
    if (row === undefined) return undefined
    const status = await this.#agents.statusOf(row)
    return appraiseAgent(resultView(status, this.#o.quoteInterval))
  }

  /**
   * `GET /agents/{id}/ear[?nonce=]`: the agent's current result, signed.
   *
   * @throws {BadRequest} for a bad agent id or nonce; {@link NotFound} for an unknown agent
   */
  async agentEar(agentId: string, nonce: string | undefined): Promise<string> {
    checkAgentId(agentId)
    const checked = nonce === undefined ? undefined : checkEarNonce(nonce)
    const a = await this.agentAppraisal(agentId)
    if (a === undefined) throw new NotFound('agent id not found')
    return this.#issuer.sign({ [agentId]: a }, checked)
  }

  /** A `/verify/evidence` answer as a signed EAR (the nonce already checked). */
  async evidenceEar(
    results: EvidenceResults,
    checks: EvidenceChecks,
    nonce: string | undefined,
  ): Promise<string> {
    return this.#issuer.sign({ [EVIDENCE_SUBMOD]: appraiseEvidence(results, checks) }, nonce)
  }

  /** The signed EAR of an agent for a revocation notice, or undefined when it is gone. */
  async noticeEar(agentId: string): Promise<string | undefined> {
    const a = await this.agentAppraisal(agentId)
    return a && this.#issuer.sign({ [agentId]: a })
  }

  /** `GET /.well-known/jwks.json`. */
  jwks(): Promise<{ keys: PublicJwk[] }> {
    return this.#issuer.jwks()
  }
}
