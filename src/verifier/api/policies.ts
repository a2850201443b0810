/**
 * The verifier's policy resources (keylime-api.md §1.4, upstream `AllowlistHandler` and
 * `MbpolicyHandler`): runtime (IMA) policies under `/allowlists` and measured-boot policies under
 * `/mbpolicies`, each with create, replace (the old version kept in the history), read, list and
 * delete (refused while an agent uses it).
 *
 * @module
 */
import { BadRequest, Conflict, NotFound } from '../../errors.ts'
import { parseBody } from '../../http/body-schema.ts'
import { AGENT_ID_RE } from './agent-id.ts'
import { loadPolicyChecked } from './load-policy-checked.ts'
import { MB_POLICY_BODY, POLICY_TPM_BODY, RUNTIME_POLICY_BODY } from './policy-bodies.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** Names in messages are cut to this length (the name comes from the URL). */
const SHOWN_NAME = 80

/** The policy operations of the API. */
export class PoliciesApi {
  readonly #o: VerifierServiceOptions

  constructor(o: VerifierServiceOptions) {
    this.#o = o
  }

  // ---------------------------------------------------------------- runtime policies

  /** `POST /allowlists/{name}` and `PUT` (replace = true). */
  async putAllowlist(name: string, body: Record<string, unknown>, replace: boolean): Promise<void> {
    if (!AGENT_ID_RE.test(name)) throw new BadRequest('Invalid URL')
    const b = parseBody(RUNTIME_POLICY_BODY, body)
    const { store, loop, requireAllowListSignatures } = this.#o
    const compiled = loadPolicyChecked(
      b.runtime_policy,
      b.runtime_policy_key,
      requireAllowListSignatures,
    )
    const { tpm_policy } = parseBody(POLICY_TPM_BODY, body)
    const values = {
      checksum: compiled.checksum,
      generator: compiled.generator,
      tpm_policy,
      ima_policy: b.runtime_policy,
    }
    if (replace) {
      if (!(await store.policies.updateAllowlist(name, values)))
        throw new NotFound(`Runtime policy ${name} not found`)
      loop.invalidatePolicies()
      return
    }
    const r = await store.policies.createAllowlist({ name, ...values })
    if (r === undefined) throw new Conflict(`Runtime policy with name ${name} already exists`)
  }

  /** `GET /allowlists`. */
  async listAllowlistNames(): Promise<string[]> {
    return this.#o.store.policies.listAllowlistNames()
  }

  /** `GET /allowlists/{name}`. */
  async getAllowlist(name: string): Promise<Record<string, unknown>> {
    const row = AGENT_ID_RE.test(name) ? await this.#o.store.policies.getAllowlist(name) : undefined
    if (row === undefined)
      throw new NotFound(`Runtime policy ${name.slice(0, SHOWN_NAME)} not found`)
    return { name: row.name, tmp_policy: null, runtime_policy: row.ima_policy }
  }

  /** `DELETE /allowlists/{name}`. */
  async deleteAllowlist(name: string): Promise<void> {
    const r = AGENT_ID_RE.test(name)
      ? await this.#o.store.policies.deleteAllowlist(name)
      : 'missing'
    if (r === 'missing') throw new NotFound(`Runtime policy ${name.slice(0, SHOWN_NAME)} not found`)
    if (typeof r === 'object')
      throw new Conflict(`Can't delete allowlist as it's currently in use by agent ${r.inUseBy}`)
  }

  // ---------------------------------------------------------------- MB policies

  /** `POST /mbpolicies/{name}` and `PUT` (replace = true; a missing name is 409 as upstream). */
  async putMbPolicy(name: string, body: Record<string, unknown>, replace: boolean): Promise<void> {
    if (!AGENT_ID_RE.test(name)) throw new BadRequest('Invalid URL')
    const { mb_policy: text } = parseBody(MB_POLICY_BODY, body)
    const { store, loop } = this.#o
    if (replace) {
      if (!(await store.policies.updateMbPolicy(name, text)))
        throw new Conflict(`Measured boot policy ${name} not found`)
      loop.invalidatePolicies()
      return
    }
    const r = await store.policies.createMbPolicy(name, text)
    if (r === undefined) throw new Conflict(`Measured boot policy with name ${name} already exists`)
  }

  /** `GET /mbpolicies`. */
  async listMbPolicyNames(): Promise<string[]> {
    return this.#o.store.policies.listMbPolicyNames()
  }

  /** `GET /mbpolicies/{name}`. */
  async getMbPolicy(name: string): Promise<Record<string, unknown>> {
    const row = AGENT_ID_RE.test(name) ? await this.#o.store.policies.getMbPolicy(name) : undefined
    if (row === undefined)
      throw new NotFound(`Measured boot policy ${name.slice(0, SHOWN_NAME)} not found`)
    return { name: row.name, mb_policy: row.mb_policy }
  }

  /** `DELETE /mbpolicies/{name}`. */
  async deleteMbPolicy(name: string): Promise<void> {
    const r = AGENT_ID_RE.test(name) ? await this.#o.store.policies.deleteMbPolicy(name) : 'missing'
    if (r === 'missing')
      throw new NotFound(`Measured boot policy ${name.slice(0, SHOWN_NAME)} not found`)
    if (typeof r === 'object')
      throw new Conflict(`Can't delete mb_policy as it's currently in use by agent ${r.inUseBy}`)
  }
}
