/**
 * The verifier's agent resource (keylime-api.md §1.3, upstream `AgentsHandler`): enrol, status,
 * list, remove, reactivate, stop. Deletion and state changes respect the leases: an agent being
 * polled, here or by another instance, is marked TERMINATED and removed by its owner (202).
 *
 * @module
 */
import { NotFound } from '../../errors.ts'
import {
  AGENT_STATES,
  APPROVED_REACTIVATE_STATES,
  attestationStatus,
} from '../../protocol/agent-states.ts'
import { type AgentRecord, tpmPolicyText } from '../loop/agent-record.ts'
import type { AgentRow } from '../store/store.ts'
import { pushAttestationStatus } from '../push/liveness.ts'
import { checkAgentId } from './agent-id.ts'
import { enrolAgent, enrolmentMode } from './enrol.ts'
import { type EnrolBodySchema, enrolBodySchema } from './enrol-body.ts'
import type { VerifierServiceOptions } from './service-options.ts'

const agentNotFound = (): never => {
  throw new NotFound('agent id not found')
}

/** The agent operations of the API. */
export class AgentsApi {
  readonly #o: VerifierServiceOptions
  readonly #enrolBody: EnrolBodySchema
  /** A push agent is never contacted: no agent mTLS certificate is required. */
  readonly #enrolPushBody: EnrolBodySchema

  constructor(o: VerifierServiceOptions) {
    this.#o = o
    this.#enrolBody = enrolBodySchema(o.enableAgentMtls)
    this.#enrolPushBody = enrolBodySchema(false, true)
  }

  /** `POST /agents/{id}` (see {@link enrolAgent}). */
  async enrol(agentId: string, body: Record<string, unknown>): Promise<void> {
    checkAgentId(agentId)
    const push = enrolmentMode(this.#o.mode, body) === 'push'
    await enrolAgent(this.#o, push ? this.#enrolPushBody : this.#enrolBody, agentId, body)
  }

  /** The `GET /agents/{id}` results of a row (overlaid with the live record when held here). */
  async statusOf(row: AgentRow): Promise<Record<string, unknown>> {
    const o = this.#o
    // a push agent's record is only its liveness turn: the row has its counters
    const rec: AgentRecord | undefined =
      row.mode === 'push' ? undefined : o.loop.records.get(row.agent_id)
    const policies = o.store.policies
    const ima =
      row.ima_policy_id === null ? undefined : await policies.getAllowlistById(row.ima_policy_id)
    const mb =
      row.mb_policy_id === null ? undefined : await policies.getMbPolicyById(row.mb_policy_id)
    const state = rec?.state ?? row.operational_state
    const qi = o.quoteInterval
    return {
      operational_state: state,
      v: row.v,
      ip: row.ip,
      port: row.port,
      tpm_policy: tpmPolicyText(row.tpm_policy),
      meta_data: row.meta_data,
      has_mb_refstate: mb?.mb_policy !== null && mb?.mb_policy !== undefined ? 1 : 0,
      has_runtime_policy: (ima?.generator ?? 0) > 1 ? 1 : 0,
      accept_tpm_hash_algs: row.accept_tpm_hash_algs,
      accept_tpm_encryption_algs: row.accept_tpm_encryption_algs,
      accept_tpm_signing_algs: row.accept_tpm_signing_algs,
      hash_alg: rec?.hashAlg ?? row.hash_alg,
      enc_alg: rec?.encAlg ?? row.enc_alg,
      sign_alg: rec?.signAlg ?? row.sign_alg,
      verifier_id: row.verifier_id,
      verifier_ip: row.verifier_ip,
      verifier_port: row.verifier_port,
      severity_level: rec !== undefined ? rec.severityLevel : row.severity_level,
      last_event_id: rec !== undefined ? rec.lastEventId : row.last_event_id,
      attestation_count: rec?.attestationCount ?? row.attestation_count,
      last_received_quote: rec?.lastReceivedQuote ?? row.last_received_quote,
      last_successful_attestation:
        rec?.lastSuccessfulAttestation ?? row.last_successful_attestation,
      attestation_status:
        row.mode === 'push' ? pushAttestationStatus(row, qi, Date.now()) : attestationStatus(state),
      attestation_period: `${Math.trunc(qi)}s`,
      maximum_attestation_interval: `${Math.trunc(qi * 5)}s`,
    }
  }

  /** `GET /agents/{id}`. */
  async status(agentId: string): Promise<Record<string, unknown>> {
    checkAgentId(agentId)
    const row = await this.#o.store.agents.getAgent(agentId)
    if (row === undefined) return agentNotFound()
    return this.statusOf(row)
  }

  /** `GET /agents[?verifier=][&bulk=]`. */
  async list(verifier: string | undefined, bulk: boolean): Promise<Record<string, unknown>> {
    const agents = this.#o.store.agents
    if (bulk) {
      const rows = await agents.listAgents(verifier)
      const out: Record<string, unknown> = {}
      for (const r of rows) out[r.agent_id] = await this.statusOf(r)
      return out
    }
    const ids = await agents.listAgentIds(verifier)
    return { uuids: ids.map((id) => [id]) }
  }

  /** The row of an agent this verifier (verifier_id) serves; 404 otherwise. */
  async #mine(agentId: string): Promise<AgentRow> {
    checkAgentId(agentId)
    const row = await this.#o.store.agents.getAgent(agentId)
    if (row === undefined) return agentNotFound()
    if (row.verifier_id !== this.#o.verifierId)
      throw new NotFound('agent id associated to this verifier')
    return row
  }

  /** `DELETE /agents/{id}`: 200 when deleted now, 202 when the owner finishes it. */
  async remove(agentId: string): Promise<200 | 202> {
    const o = this.#o
    const agents = o.store.agents
    const row = await this.#mine(agentId)
    const rec = o.loop.records.get(agentId)
    if (rec?.busy) {
      await agents.updateAgent(agentId, { operational_state: AGENT_STATES.TERMINATED })
      o.loop.drop(agentId)
      void this.#finishWhenIdle(rec)
      return 202
    }
    const state = row.operational_state ?? AGENT_STATES.START
    const heldElsewhere =
      rec === undefined &&
      row.lease_owner !== null &&
      row.lease_owner !== o.instanceId &&
      (row.lease_expires ?? 0) > Date.now() &&
      APPROVED_REACTIVATE_STATES.has(state)
    if (heldElsewhere) {
      await agents.updateAgent(agentId, { operational_state: AGENT_STATES.TERMINATED })
      return 202
    }
    o.loop.drop(agentId)
    await agents.deleteAgent(agentId)
    return 200
  }

  /** Deletes the agent once its round in flight ends (at most a minute later). */
  async #finishWhenIdle(rec: AgentRecord): Promise<void> {
    for (let i = 0; i < 1200 && rec.busy; i++) await Bun.sleep(50)
    await this.#o.store.agents.deleteAgent(rec.id).catch(() => undefined)
  }

  /** `PUT /agents/{id}/reactivate`: back to START, severity cleared. */
  async reactivate(agentId: string): Promise<void> {
    const o = this.#o
    await this.#mine(agentId)
    o.loop.drop(agentId)
    await o.store.agents.updateAgent(agentId, {
      operational_state: AGENT_STATES.START,
      severity_level: null,
      last_event_id: null,
      lease_owner: o.instanceId,
      lease_expires: Date.now() + o.leaseMs,
    })
    const row = await o.store.agents.getAgent(agentId)
    if (row !== undefined) o.loop.adopt(row)
  }

  /** `PUT /agents/{id}/stop`: TENANT_FAILED, polling stops. */
  async stop(agentId: string): Promise<void> {
    const o = this.#o
    await this.#mine(agentId)
    o.loop.drop(agentId)
    await o.store.agents.updateAgent(agentId, { operational_state: AGENT_STATES.TENANT_FAILED })
  }
}
