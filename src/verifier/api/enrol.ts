/**
 * The business rules of `POST /agents/{id}` (upstream `cloud_verifier_tornado.py`
 * `AgentsHandler.post`) over a body `enrol-body.ts` has checked: the runtime and measured-boot
 * policy naming rules (a name with a policy creates it, a name alone reuses a stored one, neither
 * creates one named after the agent), the verifier's defaults, and the row the agent starts from.
 *
 * @module
 */
import { Conflict, NotFound } from '../../errors.ts'
import { CURRENT_API_VERSION, SUPPORTED_API_VERSIONS } from '../../http/api-version.ts'
import { parseBody } from '../../http/body-schema.ts'
import { emptyRuntimePolicy } from '../../ima/index.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'
import type { ImaPolicyChoice, MbPolicyChoice, NewAgentRow } from '../store/store.ts'
import {
  ENROL_MB_BODY,
  type EnrolBody,
  type EnrolMbBody,
  type EnrolBodySchema,
} from './enrol-body.ts'
import { loadPolicyChecked } from './load-policy-checked.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** The runtime policy of an enrolment, and the name it goes by. */
async function chooseRuntimePolicy(
  o: VerifierServiceOptions,
  agentId: string,
  b: EnrolBody,
): Promise<{ name: string; choice: ImaPolicyChoice }> {
  const rpText = b.runtime_policy
  let name = b.runtime_policy_name
  if (name) {
    const stored = await o.store.policies.getAllowlist(name)
    if (rpText && stored) {
      throw new Conflict(
        `IMA policy with name ${name} already exists. Please use a different name or delete the allowlist from the verifier.`,
      )
    }
    if (!rpText && !stored) throw new NotFound(`Could not find IMA policy with name ${name}!`)
    if (stored) return { name, choice: { existingId: stored.id } }
  }
  const text = rpText || JSON.stringify(emptyRuntimePolicy())
  const compiled = loadPolicyChecked(
    text,
    b.runtime_policy_key,
    rpText !== '' && o.requireAllowListSignatures,
  )
  if (!name) name = agentId
  const create = {
    name,
    checksum: compiled.checksum,
    generator: compiled.generator,
    tpm_policy: null,
    ima_policy: text,
  }
  return { name, choice: { create } }
}

/** The measured-boot policy of an enrolment. */
async function chooseMbPolicy(
  o: VerifierServiceOptions,
  agentId: string,
  b: EnrolMbBody,
): Promise<MbPolicyChoice> {
  const name = b.mb_policy_name
  const text = b.mb_policy
  if (!name) return { create: { name: agentId, mb_policy: text } }
  const stored = await o.store.policies.getMbPolicy(name)
  if (text && stored) {
    throw new Conflict(
      `mb_policy with name ${name} already exists. Please use a different name or delete the mb_policy from the verifier.`,
    )
  }
  if (!text && !stored) throw new NotFound(`Could not find mb_policy with name ${name}!`)
  return stored ? { existingId: stored.id } : { create: { name, mb_policy: text } }
}

/** The API version to speak to the agent: as sent if a supported 2.x, else the current one. */
function supportedVersion(sent: string): string {
  const known = (SUPPORTED_API_VERSIONS as readonly string[]).includes(sent)
  return sent && known && !sent.startsWith('3') ? sent : CURRENT_API_VERSION
}

/**
 * Whether an enrolment is for a push agent (docs/push-mode.md): the verifier runs `mode = push`,
 * or the body has neither a `v` nor an `mtls_cert` — upstream's `keylime_tenant -c add
 * --push-model` runs no K/U/V bootstrap and a push agent registers without an mTLS certificate. A
 * pull agent enrolled without a payload also has no `v`, but it has its `mtls_cert`.
 */
export function enrolmentMode(
  verifierMode: string | undefined,
  body: { v?: unknown; mtls_cert?: unknown },
): 'pull' | 'push' {
  const absent = (x: unknown) => x === undefined || x === null
  return verifierMode === 'push' || (absent(body.v) && absent(body.mtls_cert)) ? 'push' : 'pull'
}

/** The row a newly enrolled agent starts from, leased to this instance. */
function newAgentRow(o: VerifierServiceOptions, agentId: string, b: EnrolBody): NewAgentRow {
  const mode = enrolmentMode(o.mode, b)
  return {
    agent_id: agentId,
    mode,
    v: b.v,
    ip: b.cloudagent_ip,
    port: b.cloudagent_port,
    // a push agent is never polled; GET_QUOTE keeps it among the leased agents (liveness)
    operational_state: mode === 'push' ? AGENT_STATES.GET_QUOTE : AGENT_STATES.START,
    public_key: '',
    tpm_policy: b.tpm_policy,
    meta_data: b.metadata,
    ima_sign_verification_keys: b.ima_sign_verification_keys,
    revocation_key: b.revocation_key,
    accept_tpm_hash_algs: b.accept_tpm_hash_algs,
    accept_tpm_encryption_algs: b.accept_tpm_encryption_algs,
    accept_tpm_signing_algs: b.accept_tpm_signing_algs,
    supported_version: supportedVersion(b.supported_version),
    ak_tpm: b.ak_tpm.toString('base64'),
    mtls_cert: b.mtls_cert,
    hash_alg: '',
    enc_alg: '',
    sign_alg: '',
    boottime: 0,
    ima_pcrs: [],
    next_ima_ml_entry: 0,
    learned_ima_keyrings: {},
    verifier_id: o.verifierId,
    verifier_ip: b.verifier_ip ?? o.verifierIp,
    verifier_port: b.verifier_port ?? o.verifierPort,
    attestation_count: 0,
    last_received_quote: 0,
    last_successful_attestation: 0,
    accept_attestations: true,
    lease_owner: o.instanceId,
    lease_expires: Date.now() + o.leaseMs,
  }
}

/**
 * `POST /agents/{id}` (keylime-api.md §1.3): checks the body (`enrol-body.ts`, the agent part
 * against `agentBody`), applies the policy rules, stores the agent with its policies in one
 * transaction and starts polling it here.
 *
 * @throws BadRequest (400) for a bad body; NotFound (404) for a named policy that is not stored;
 *   Conflict (409) for an existing agent or policy name; Unauthorized (401) for a policy signature
 */
export async function enrolAgent(
  o: VerifierServiceOptions,
  agentBody: EnrolBodySchema,
  agentId: string,
  body: Record<string, unknown>,
): Promise<void> {
  const b = parseBody(agentBody, body)
  const ima = await chooseRuntimePolicy(o, agentId, b)
  const mbBody = parseBody(ENROL_MB_BODY, body)
  const mb = await chooseMbPolicy(o, agentId, mbBody)
  const r = await o.store.agents.insertAgentWithPolicies(newAgentRow(o, agentId, b), ima.choice, mb)
  if (r === 'agent_exists') {
    throw new Conflict(`Agent of uuid ${agentId} already exists. Please use delete or update.`)
  }
  if (r === 'mb_exists') {
    throw new Conflict(
      `mb_policy with name ${mbBody.mb_policy_name || agentId} already exists. You can delete the mb_policy from the verifier.`,
    )
  }
  if (r === 'ima_exists') throw new Conflict(`IMA policy with name ${ima.name} already exists.`)
  const stored = await o.store.agents.getAgent(agentId)
  if (stored !== undefined) o.loop.adopt(stored)
}
