/**
 * The v3 agent resource (`/v3[.0]/agents`, JSON:API), which upstream 7.14 routes but answers 404/500
 * from (`web/verifier/agent_controller.py`, "TODO: Replace with v3 implementation"). keylime-ts
 * implements it with the shapes of upstream's later v3 controller: a list of `agent` resources
 * with summary attributes, one agent with detail attributes, `POST` enrolment from
 * `{data:{type:"agent", id, attributes:<the v2 enrolment fields>}}` (push mode unless a `v` is
 * sent), `PATCH` of the mutable fields (`accept_attestations` reactivates or stops), and `DELETE`.
 *
 * @module
 */
import { eq } from 'drizzle-orm'
import { verifiermain } from '../../db/index.ts'
import { isObj, own } from '../push/body-reader.ts'
import { invalidData, PushError } from '../push/json-api.ts'
import { pushAttestationStatus } from '../push/liveness.ts'
import type { PushAnswer } from '../push/attestations-api.ts'
import type { AgentRow } from '../store/store.ts'
import type { AgentsApi } from './agents.ts'
import { tpmPolicyText } from '../loop/agent-record.ts'
import type { VerifierServiceOptions } from './service-options.ts'

const SUMMARY_FIELDS = [
  'operational_state',
  'accept_attestations',
  'attestation_count',
  'verifier_id',
] as const

const DETAIL_FIELDS = [
  'operational_state',
  'ip',
  'port',
  'tpm_policy',
  'meta_data',
  'accept_tpm_hash_algs',
  'accept_tpm_encryption_algs',
  'accept_tpm_signing_algs',
  'hash_alg',
  'enc_alg',
  'sign_alg',
  'verifier_id',
  'verifier_ip',
  'verifier_port',
  'severity_level',
  'last_event_id',
  'attestation_count',
  'last_received_quote',
  'last_successful_attestation',
  'accept_attestations',
  'ima_sign_verification_keys',
  'ima_policy_id',
  'mb_policy_id',
  'supported_version',
  'boottime',
] as const

/** The fields `PATCH` may change (upstream's `mutable_fields`). */
const MUTABLE = new Set([
  'tpm_policy',
  'accept_tpm_hash_algs',
  'accept_tpm_encryption_algs',
  'accept_tpm_signing_algs',
  'meta_data',
  'ima_sign_verification_keys',
  'accept_attestations',
])

function pick(row: AgentRow, fields: readonly (keyof AgentRow)[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const f of fields) {
    const v = f === 'tpm_policy' ? tpmPolicyText(row.tpm_policy) : row[f]
    if (v !== null && v !== undefined) out[f] = v
  }
  return out
}

/** The v3 agent operations. */
export class AgentsV3Api {
  readonly #o: VerifierServiceOptions
  readonly #agents: AgentsApi

  constructor(o: VerifierServiceOptions, agents: AgentsApi) {
    this.#o = o
    this.#agents = agents
  }

  /** Detail attributes, with keylime-ts's mode and status. */
  #detail(row: AgentRow): Record<string, unknown> {
    const qi = this.#o.quoteInterval
    return {
      ...pick(row, DETAIL_FIELDS),
      mode: row.mode,
      consecutive_attestation_failures: row.consecutive_attestation_failures ?? 0,
      ...(row.mode === 'push'
        ? { attestation_status: pushAttestationStatus(row, qi, Date.now()) }
        : {}),
    }
  }

  #resource(row: AgentRow, base: string, detail: boolean): Record<string, unknown> {
    return {
      type: 'agent',
      id: row.agent_id,
      attributes: detail ? this.#detail(row) : pick(row, SUMMARY_FIELDS),
      links: { self: `${base}/${row.agent_id}` },
    }
  }

  async #row(agentId: string): Promise<AgentRow> {
    const row = await this.#o.store.agents.getAgent(agentId)
    if (row === undefined) throw new PushError(404, 'not_found', `Agent '${agentId}' not found.`)
    return row
  }

  /** `GET /v3/agents[?verifier=]`. */
  async list(verifier: string | undefined, base: string): Promise<PushAnswer> {
    const rows = await this.#o.store.agents.listAgents(verifier)
    rows.sort((a, b) => (a.agent_id < b.agent_id ? -1 : 1))
    const data = rows.map((r) => this.#resource(r, base, false))
    return { status: 200, data }
  }

  /** `GET /v3/agents/:id`. */
  async show(agentId: string, base: string): Promise<PushAnswer> {
    return { status: 200, data: this.#resource(await this.#row(agentId), base, true) }
  }

  /** `POST /v3/agents`: enrols (push mode unless a `v` is sent); 201 with `Location`. */
  async create(body: Record<string, unknown>, base: string): Promise<PushAnswer> {
    const data = own(body, 'data')
    if (!isObj(data) || own(data, 'type') !== 'agent')
      throw new PushError(
        400,
        'invalid_request',
        "Request body must include agent data with type 'agent'.",
      )
    const id = own(data, 'id')
    if (typeof id !== 'string' || id === '')
      throw invalidData([{ pointer: '/data/id', detail: "Resource 'id' (agent_id) is required." }])
    const attributes = own(data, 'attributes')
    if (!isObj(attributes))
      throw invalidData([{ pointer: '/data/attributes', detail: 'is required' }])
    await this.#agents.enrol(id, attributes)
    const row = await this.#row(id)
    return {
      status: 201,
      data: this.#resource(row, base, true),
      headers: { location: `${base}/${id}` },
    }
  }

  /** `PATCH /v3/agents/:id`: the mutable fields; `accept_attestations` reactivates or stops. */
  async update(agentId: string, body: Record<string, unknown>, base: string): Promise<PushAnswer> {
    const row = await this.#row(agentId)
    const data = own(body, 'data')
    const attributes =
      isObj(data) && own(data, 'type') === 'agent' ? own(data, 'attributes') : undefined
    if (!isObj(attributes))
      throw new PushError(
        400,
        'invalid_request',
        "Request body must include agent data with type 'agent'.",
      )
    const problems = Object.keys(attributes)
      .filter((f) => !MUTABLE.has(f))
      .map((f) => ({
        pointer: `/data/attributes/${f}`,
        detail: `Field '${f}' is not modifiable via PATCH.`,
      }))
    if (problems.length > 0) throw invalidData(problems)
    const values: Partial<typeof verifiermain.$inferInsert> = {}
    for (const [k, v] of Object.entries(attributes)) {
      if (k === 'accept_attestations') continue
      if (
        k.startsWith('accept_tpm_') &&
        !(Array.isArray(v) && v.every((x) => typeof x === 'string'))
      )
        throw invalidData([
          { pointer: `/data/attributes/${k}`, detail: 'must be a list of strings' },
        ])
      if ((k === 'meta_data' || k === 'ima_sign_verification_keys') && typeof v !== 'string')
        throw invalidData([{ pointer: `/data/attributes/${k}`, detail: 'must be a string' }])
      ;(values as Record<string, unknown>)[k] = v
    }
    const accept = own(attributes, 'accept_attestations')
    if (accept !== undefined && typeof accept !== 'boolean')
      throw invalidData([
        { pointer: '/data/attributes/accept_attestations', detail: 'must be a boolean' },
      ])
    if (Object.keys(values).length > 0)
      await this.#o.store.db
        .update(verifiermain)
        .set(values)
        .where(eq(verifiermain.agent_id, agentId))
    if (accept !== undefined) await this.#accept(row, accept)
    return { status: 200, data: this.#resource(await this.#row(agentId), base, true) }
  }

  /**
   * Push: `true` clears the failures (keylime-ts: reactivation is how an operator takes an agent
   * out of FAIL without `auto_recover_attestation_failures`); pull: reactivate or stop.
   */
  async #accept(row: AgentRow, accept: boolean): Promise<void> {
    if (row.mode === 'push') {
      await this.#o.store.agents.updateAgent(row.agent_id, {
        accept_attestations: accept,
        ...(accept ? { consecutive_attestation_failures: 0 } : {}),
      })
      return
    }
    if (accept) await this.#agents.reactivate(row.agent_id)
    else await this.#agents.stop(row.agent_id)
    await this.#o.store.agents.updateAgent(row.agent_id, { accept_attestations: accept })
  }

  /** `DELETE /v3/agents/:id`: 204, or 202 when a pull round in flight finishes it. */
  async remove(agentId: string): Promise<PushAnswer> {
    await this.#row(agentId)
    const code = await this.#agents.remove(agentId)
    return { status: code === 200 ? 204 : 202, data: {} }
  }
}
