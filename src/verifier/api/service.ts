/**
 * The verifier's API operations (upstream `cloud_verifier_tornado.py` handlers): enrolment with
 * the runtime/MB policy naming rules, status, list, delete, reactivate, stop, policy CRUD with
 * history, `verify/identity` and `verify/evidence`. Routes (`routes.ts`) only parse and answer.
 *
 * @module
 */
import { createPrivateKey, X509Certificate } from 'node:crypto'
import { BadRequest, Conflict, KeylimeError, NotFound, Unauthorized } from '../../errors.ts'
import { CURRENT_API_VERSION, SUPPORTED_API_VERSIONS } from '../../http/api-version.ts'
import {
  emptyRuntimePolicy,
  isImaError,
  loadRuntimePolicy,
  type CompiledRuntimePolicy,
} from '../../ima/index.ts'
import { readPemBlock } from '../../protocol/read-pem-block.ts'
import { isHashAlg } from '../../tpm/constants.ts'
import { checkNkBinding } from '../../tpm/extend-pcr.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { verifyQuote } from '../../tpm/verify-quote.ts'
import type { AgentRecord } from '../loop/agent-record.ts'
import { tpmPolicyText } from '../loop/agent-record.ts'
import type { AttestationLoop } from '../loop/attestation-loop.ts'
import type { CheckPool } from '../checks/check-pool.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'
import type { EvidenceResults } from '../checks/evidence-request.ts'
import {
  AGENT_STATES,
  APPROVED_REACTIVATE_STATES,
  attestationStatus,
} from '../../protocol/agent-states.ts'
import { type AgentRow, nowSeconds, type VerifierStore } from '../store/store.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'

/** Settings the service needs. */
export interface VerifierServiceOptions {
  store: VerifierStore
  loop: AttestationLoop
  /** The check workers (`/verify/evidence` runs there). */
  checks: CheckPool
  verifierId: string
  verifierIp: string
  verifierPort: number
  instanceId: string
  quoteInterval: number
  leaseMs: number
  enableAgentMtls: boolean
  requireAllowListSignatures: boolean
}

/** Agent id rule of upstream (`keylime/common/validators.py`). */
export const AGENT_ID_RE = /^[\w.-]{1,255}$/

/** Throws 400 unless `id` is a valid agent id. */
export function checkAgentId(id: string): void {
  if (!AGENT_ID_RE.test(id)) throw new BadRequest('agent_id not not valid')
}

const REQUIRED_POST_KEYS = [
  'tpm_policy',
  'runtime_policy',
  'mb_policy',
  'mb_policy_name',
  'ima_sign_verification_keys',
  'metadata',
  'revocation_key',
  'accept_tpm_hash_algs',
  'accept_tpm_encryption_algs',
  'accept_tpm_signing_algs',
  'ak_tpm',
] as const

/** Enrolment PEM inputs: one block each, bounded (a 64 KiB DER certificate, an 8192-bit key). */
const MAX_CERT_PEM = 96 * 1024
const MAX_PRIVATE_KEY_PEM = 16 * 1024
const PRIVATE_KEY_LABELS = ['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY']

function bad(msg: string): never {
  throw new BadRequest(`Exception error: ${msg}`)
}

function optString(v: unknown, field: string): string {
  if (v === undefined || v === null) return ''
  if (typeof v !== 'string') bad(`${field} must be a string`)
  return v
}

function stringList(v: unknown, field: string): string[] {
  if (
    !Array.isArray(v) ||
    v.length > 64 ||
    !v.every((x) => typeof x === 'string' && x.length < 64)
  ) {
    bad(`${field} must be a list of algorithm names`)
  }
  return v as string[]
}

/** Loads a runtime policy text as the API accepts it; maps policy errors to 400/401. */
function loadPolicyChecked(
  text: string,
  keyB64: unknown,
  requireSig: boolean,
): CompiledRuntimePolicy {
  let key: Buffer | undefined
  if (typeof keyB64 === 'string' && keyB64 !== '')
    key = decodeBase64Field(keyB64, 'runtime_policy_key')
  if (requireSig && key === undefined) {
    throw new Unauthorized(
      'allowlist signature verification key is required (require_allow_list_signatures)',
    )
  }
  try {
    return loadRuntimePolicy(text, { requireSignature: requireSig, key })
  } catch (err) {
    if (isImaError(err)) {
      if (err.code === 'ERR_IMA_POLICY_SIGNATURE')
        throw new Unauthorized(`Runtime policy signature: ${err.message}`)
      throw new BadRequest(`Runtime policy is malformatted: ${err.message}`)
    }
    throw err
  }
}

/** The service. */
export class VerifierService {
  readonly #o: VerifierServiceOptions

  constructor(o: VerifierServiceOptions) {
    this.#o = o
  }

  // ---------------------------------------------------------------- agents

  /** `POST /agents/{id}` (keylime-api.md §1.3). */
  async enrol(agentId: string, body: Record<string, unknown>): Promise<void> {
    checkAgentId(agentId)
    for (const k of REQUIRED_POST_KEYS) if (!(k in body)) bad(`'${k}'`)
    const o = this.#o
    const tpmText =
      typeof body.tpm_policy === 'string' ? body.tpm_policy : JSON.stringify(body.tpm_policy)
    try {
      parseTpmPolicy(tpmText)
    } catch (e) {
      bad((e as Error).message)
    }
    let v: string | null = null
    if (body.v !== undefined && body.v !== null) {
      const raw = decodeBase64Field(body.v, 'v')
      if (raw.length !== 16 && raw.length !== 32) bad('v must be a 16- or 32-byte key')
      v = raw.toString('base64')
    }
    const ip = body.cloudagent_ip
    const portRaw = body.cloudagent_port
    if (typeof ip !== 'string' || ip === '' || ip.length > 255 || /[\s/]/.test(ip))
      bad('cloudagent_ip is required')
    const port = typeof portRaw === 'string' ? Number(portRaw) : portRaw
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      bad('cloudagent_port must be a port number')
    }
    let supported = optString(body.supported_version, 'supported_version')
    if (
      !supported ||
      !(SUPPORTED_API_VERSIONS as readonly string[]).includes(supported) ||
      supported.startsWith('3')
    ) {
      supported = CURRENT_API_VERSION
    }
    const mtlsRaw = body.mtls_cert
    let mtlsCert: string | null = null
    if (mtlsRaw !== undefined && mtlsRaw !== null) {
      if (typeof mtlsRaw !== 'string') bad('mtls_cert must be a PEM string')
      mtlsCert = mtlsRaw
      if (mtlsRaw !== 'disabled') {
        try {
          new X509Certificate(readPemBlock(mtlsRaw, ['CERTIFICATE'], MAX_CERT_PEM).der)
        } catch {
          bad('mtls_cert is not one PEM certificate')
        }
      }
    }
    if (o.enableAgentMtls && (mtlsCert === null || mtlsCert === 'disabled')) {
      throw new BadRequest('mTLS certificate for agent is required!')
    }
    const akTpm = decodeBase64Field(body.ak_tpm, 'ak_tpm')
    try {
      toKeyObject(parseTpm2bPublic(akTpm))
    } catch (e) {
      bad(`ak_tpm is not a TPM2B_PUBLIC key: ${(e as Error).message}`)
    }
    const revocationKey = optString(body.revocation_key, 'revocation_key')
    if (revocationKey !== '') {
      try {
        readPemBlock(revocationKey, PRIVATE_KEY_LABELS, MAX_PRIVATE_KEY_PEM)
        createPrivateKey(revocationKey)
      } catch {
        bad('revocation_key is not one PEM private key')
      }
    }
    const metadata =
      typeof body.metadata === 'string' ? body.metadata : JSON.stringify(body.metadata ?? {})
    const imaKeys = optString(body.ima_sign_verification_keys, 'ima_sign_verification_keys')
    const acceptHash = stringList(body.accept_tpm_hash_algs, 'accept_tpm_hash_algs')
    const acceptEnc = stringList(body.accept_tpm_encryption_algs, 'accept_tpm_encryption_algs')
    const acceptSign = stringList(body.accept_tpm_signing_algs, 'accept_tpm_signing_algs')
    const verifierIp = body.verifier_ip === undefined ? o.verifierIp : String(body.verifier_ip)
    const verifierPortRaw =
      body.verifier_port === undefined ? o.verifierPort : Number(body.verifier_port)
    const verifierPort = Number.isInteger(verifierPortRaw) ? verifierPortRaw : o.verifierPort

    // runtime policy: name/policy rules
    let rpName = optString(body.runtime_policy_name, 'runtime_policy_name')
    const rpText = decodeBase64Field(body.runtime_policy ?? '', 'runtime_policy').toString('utf8')
    const ima: Parameters<VerifierStore['insertAgentWithPolicies']>[1] = {}
    if (rpName) {
      const stored = await o.store.getAllowlist(rpName)
      if (rpText && stored) {
        throw new Conflict(
          `IMA policy with name ${rpName} already exists. Please use a different name or delete the allowlist from the verifier.`,
        )
      }
      if (!rpText && !stored) throw new NotFound(`Could not find IMA policy with name ${rpName}!`)
      if (stored) ima.existingId = stored.id
    }
    if (ima.existingId === undefined) {
      const text = rpText || JSON.stringify(emptyRuntimePolicy())
      const compiled = loadPolicyChecked(
        text,
        body.runtime_policy_key,
        rpText !== '' && o.requireAllowListSignatures,
      )
      if (!rpName) rpName = agentId
      ima.create = {
        name: rpName,
        checksum: compiled.checksum,
        generator: compiled.generator,
        tpm_policy: null,
        ima_policy: text,
      }
    }
    // measured-boot policy
    const mbName = optString(body.mb_policy_name, 'mb_policy_name')
    const mbRaw = body.mb_policy
    let mbText: string | null = null
    if (mbRaw !== null && mbRaw !== undefined && mbRaw !== '') {
      mbText = typeof mbRaw === 'string' ? mbRaw : JSON.stringify(mbRaw)
      try {
        JSON.parse(mbText)
      } catch {
        bad('mb_policy is not valid JSON')
      }
    }
    const mb: Parameters<VerifierStore['insertAgentWithPolicies']>[2] = {}
    if (mbName) {
      const stored = await o.store.getMbPolicy(mbName)
      if (mbText && stored) {
        throw new Conflict(
          `mb_policy with name ${mbName} already exists. Please use a different name or delete the mb_policy from the verifier.`,
        )
      }
      if (!mbText && !stored) throw new NotFound(`Could not find mb_policy with name ${mbName}!`)
      if (stored) mb.existingId = stored.id
      else mb.create = { name: mbName, mb_policy: mbText }
    } else {
      mb.create = { name: agentId, mb_policy: mbText }
    }

    const row = {
      agent_id: agentId,
      v,
      ip,
      port,
      operational_state: AGENT_STATES.START,
      public_key: '',
      tpm_policy: tpmText,
      meta_data: metadata,
      ima_sign_verification_keys: imaKeys,
      revocation_key: revocationKey,
      accept_tpm_hash_algs: acceptHash,
      accept_tpm_encryption_algs: acceptEnc,
      accept_tpm_signing_algs: acceptSign,
      supported_version: supported,
      ak_tpm: akTpm.toString('base64'),
      mtls_cert: mtlsCert,
      hash_alg: '',
      enc_alg: '',
      sign_alg: '',
      boottime: 0,
      ima_pcrs: [],
      next_ima_ml_entry: 0,
      learned_ima_keyrings: {},
      verifier_id: o.verifierId,
      verifier_ip: verifierIp,
      verifier_port: verifierPort,
      attestation_count: 0,
      last_received_quote: 0,
      last_successful_attestation: 0,
      accept_attestations: true,
      lease_owner: o.instanceId,
      lease_expires: Date.now() + o.leaseMs,
    }
    const r = await o.store.insertAgentWithPolicies(row, ima, mb)
    if (r === 'agent_exists') {
      throw new Conflict(`Agent of uuid ${agentId} already exists. Please use delete or update.`)
    }
    if (r === 'mb_exists') {
      throw new Conflict(
        `mb_policy with name ${mbName || agentId} already exists. You can delete the mb_policy from the verifier.`,
      )
    }
    if (r === 'ima_exists') throw new Conflict(`IMA policy with name ${rpName} already exists.`)
    const stored = await o.store.getAgent(agentId)
    if (stored !== undefined) o.loop.adopt(stored)
  }

  /** The `GET /agents/{id}` results of a row (overlaid with the live record when held here). */
  async statusOf(row: AgentRow): Promise<Record<string, unknown>> {
    const o = this.#o
    const rec: AgentRecord | undefined = o.loop.records.get(row.agent_id)
    const ima =
      row.ima_policy_id === null ? undefined : await o.store.getAllowlistById(row.ima_policy_id)
    const mb =
      row.mb_policy_id === null ? undefined : await o.store.getMbPolicyById(row.mb_policy_id)
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
      attestation_status: attestationStatus(state),
      attestation_period: `${Math.trunc(qi)}s`,
      maximum_attestation_interval: `${Math.trunc(qi * 5)}s`,
    }
  }

  /** `GET /agents/{id}`. */
  async status(agentId: string): Promise<Record<string, unknown>> {
    checkAgentId(agentId)
    const row = await this.#o.store.getAgent(agentId)
    if (row === undefined) throw new NotFound('agent id not found')
    return this.statusOf(row)
  }

  /** `GET /agents[?verifier=][&bulk=]`. */
  async list(verifier: string | undefined, bulk: boolean): Promise<Record<string, unknown>> {
    if (bulk) {
      const rows = await this.#o.store.listAgents(verifier)
      const out: Record<string, unknown> = {}
      for (const r of rows) out[r.agent_id] = await this.statusOf(r)
      return out
    }
    const ids = await this.#o.store.listAgentIds(verifier)
    return { uuids: ids.map((id) => [id]) }
  }

  async #mine(agentId: string, notFound: () => never): Promise<AgentRow> {
    checkAgentId(agentId)
    const row = await this.#o.store.getAgent(agentId)
    if (row === undefined) notFound()
    if (row.verifier_id !== this.#o.verifierId)
      throw new NotFound('agent id associated to this verifier')
    return row
  }

  /** `DELETE /agents/{id}`: 200 when deleted now, 202 when the owner finishes it. */
  async remove(agentId: string): Promise<200 | 202> {
    const o = this.#o
    const row = await this.#mine(agentId, () => {
      throw new NotFound('agent id not found')
    })
    const rec = o.loop.records.get(agentId)
    if (rec?.busy) {
      await o.store.updateAgent(agentId, { operational_state: AGENT_STATES.TERMINATED })
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
      await o.store.updateAgent(agentId, { operational_state: AGENT_STATES.TERMINATED })
      return 202
    }
    o.loop.drop(agentId)
    await o.store.deleteAgent(agentId)
    return 200
  }

  async #finishWhenIdle(rec: AgentRecord): Promise<void> {
    for (let i = 0; i < 1200 && rec.busy; i++) await Bun.sleep(50)
    await this.#o.store.deleteAgent(rec.id).catch(() => undefined)
  }

  /** `PUT /agents/{id}/reactivate`: back to START, severity cleared. */
  async reactivate(agentId: string): Promise<void> {
    const o = this.#o
    await this.#mine(agentId, () => {
      throw new NotFound('agent id not found')
    })
    o.loop.drop(agentId)
    await o.store.updateAgent(agentId, {
      operational_state: AGENT_STATES.START,
      severity_level: null,
      last_event_id: null,
      lease_owner: o.instanceId,
      lease_expires: Date.now() + o.leaseMs,
    })
    const row = await o.store.getAgent(agentId)
    if (row !== undefined) o.loop.adopt(row)
  }

  /** `PUT /agents/{id}/stop`: TENANT_FAILED, polling stops. */
  async stop(agentId: string): Promise<void> {
    const o = this.#o
    await this.#mine(agentId, () => {
      throw new NotFound('agent id not found')
    })
    o.loop.drop(agentId)
    await o.store.updateAgent(agentId, { operational_state: AGENT_STATES.TENANT_FAILED })
  }

  // ---------------------------------------------------------------- runtime policies

  /** `POST /allowlists/{name}` and `PUT` (replace = true). */
  async putAllowlist(name: string, body: Record<string, unknown>, replace: boolean): Promise<void> {
    if (!AGENT_ID_RE.test(name)) throw new BadRequest('Invalid URL')
    if (!('runtime_policy' in body)) throw new BadRequest('Runtime policy is required')
    const text = decodeBase64Field(body.runtime_policy, 'runtime_policy').toString('utf8')
    if (text === '') throw new BadRequest('Runtime policy is required')
    const compiled = loadPolicyChecked(
      text,
      body.runtime_policy_key,
      this.#o.requireAllowListSignatures,
    )
    let tpm: string | null = null
    if (body.tpm_policy !== undefined && body.tpm_policy !== null && body.tpm_policy !== '') {
      tpm = typeof body.tpm_policy === 'string' ? body.tpm_policy : JSON.stringify(body.tpm_policy)
      parseTpmPolicy(tpm)
    }
    const values = {
      checksum: compiled.checksum,
      generator: compiled.generator,
      tpm_policy: tpm,
      ima_policy: text,
    }
    if (replace) {
      if (!(await this.#o.store.updateAllowlist(name, values)))
        throw new NotFound(`Runtime policy ${name} not found`)
      this.#o.loop.invalidatePolicies()
      return
    }
    const r = await this.#o.store.createAllowlist({ name, ...values })
    if (r === undefined) throw new Conflict(`Runtime policy with name ${name} already exists`)
  }

  /** `GET /allowlists`. */
  async listAllowlistNames(): Promise<string[]> {
    return this.#o.store.listAllowlistNames()
  }

  /** `GET /mbpolicies`. */
  async listMbPolicyNames(): Promise<string[]> {
    return this.#o.store.listMbPolicyNames()
  }

  /** `GET /allowlists/{name}`. */
  async getAllowlist(name: string): Promise<Record<string, unknown>> {
    const row = AGENT_ID_RE.test(name) ? await this.#o.store.getAllowlist(name) : undefined
    if (row === undefined) throw new NotFound(`Runtime policy ${name.slice(0, 80)} not found`)
    return { name: row.name, tmp_policy: null, runtime_policy: row.ima_policy }
  }

  /** `DELETE /allowlists/{name}`. */
  async deleteAllowlist(name: string): Promise<void> {
    const r = AGENT_ID_RE.test(name) ? await this.#o.store.deleteAllowlist(name) : 'missing'
    if (r === 'missing') throw new NotFound(`Runtime policy ${name.slice(0, 80)} not found`)
    if (r === 'in_use')
      throw new Conflict(`Can't delete allowlist ${name} as it's currently in use by an agent`)
  }

  // ---------------------------------------------------------------- MB policies

  /** `POST /mbpolicies/{name}` and `PUT` (replace = true; a missing name is 409 as upstream). */
  async putMbPolicy(name: string, body: Record<string, unknown>, replace: boolean): Promise<void> {
    if (!AGENT_ID_RE.test(name)) throw new BadRequest('Invalid URL')
    const raw = body.mb_policy
    if (raw === undefined || raw === null || raw === '')
      throw new BadRequest('mb_policy is required')
    const text = typeof raw === 'string' ? raw : JSON.stringify(raw)
    try {
      JSON.parse(text)
    } catch {
      throw new BadRequest('mb_policy is not valid JSON')
    }
    if (replace) {
      if (!(await this.#o.store.updateMbPolicy(name, text)))
        throw new Conflict(`Measured boot policy ${name} not found`)
      this.#o.loop.invalidatePolicies()
      return
    }
    const r = await this.#o.store.createMbPolicy(name, text)
    if (r === undefined) throw new Conflict(`Measured boot policy with name ${name} already exists`)
  }

  /** `GET /mbpolicies/{name}`. */
  async getMbPolicy(name: string): Promise<Record<string, unknown>> {
    const row = AGENT_ID_RE.test(name) ? await this.#o.store.getMbPolicy(name) : undefined
    if (row === undefined) throw new NotFound(`Measured boot policy ${name.slice(0, 80)} not found`)
    return { name: row.name, mb_policy: row.mb_policy }
  }

  /** `DELETE /mbpolicies/{name}`. */
  async deleteMbPolicy(name: string): Promise<void> {
    const r = AGENT_ID_RE.test(name) ? await this.#o.store.deleteMbPolicy(name) : 'missing'
    if (r === 'missing') throw new NotFound(`Measured boot policy ${name.slice(0, 80)} not found`)
    if (r === 'in_use')
      throw new Conflict(`Can't delete mb_policy ${name} as it's currently in use by an agent`)
  }

  // ---------------------------------------------------------------- one-shot checks

  /** `GET /verify/identity`. */
  async verifyIdentity(q: Record<string, string | undefined>): Promise<Record<string, unknown>> {
    for (const k of ['agent_uuid', 'quote', 'nonce', 'hash_alg']) {
      if (!q[k]) throw new BadRequest(`missing query parameter '${k}'`)
    }
    const id = q.agent_uuid as string
    checkAgentId(id)
    const row = await this.#o.store.getAgent(id)
    if (row === undefined) throw new NotFound('agent id not found')
    const hashAlg = q.hash_alg as string
    if (!isHashAlg(hashAlg))
      return { valid: 0, reason: `unsupported hash_alg ${hashAlg.slice(0, 20)}` }
    try {
      const ak = toKeyObject(parseTpm2bPublic(Buffer.from(row.ak_tpm ?? '', 'base64')))
      const v = verifyQuote({
        quote: q.quote as string,
        akPublic: ak,
        nonce: q.nonce as string,
        hashAlg,
      })
      if (row.public_key) checkNkBinding(v.pcrs, hashAlg, row.public_key)
      return { valid: 1 }
    } catch (err) {
      return { valid: 0, reason: err instanceof Error ? err.message : String(err) }
    }
  }

  /**
   * `POST /verify/evidence` (API 2.4/2.5): the raw JSON body in, `[status, results]` out. The
   * evaluation (`evaluate-evidence.ts`) runs on a check worker, off the event loop.
   *
   * @throws KeylimeError (400) for a body that is not a JSON object, as `readJsonObject`
   */
  async verifyEvidence(body: ArrayBuffer): Promise<[number, EvidenceResults]> {
    const v = await this.#o.checks.evidence(body)
    if (v.kind === 'rejected') throw new KeylimeError(v.code, v.message, { status: v.status })
    return [v.answer.status, v.answer.results]
  }

  /** Upstream's `now` for tests of timestamps. */
  static now(): number {
    return nowSeconds()
  }
}
