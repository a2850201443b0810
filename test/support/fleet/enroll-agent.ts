/**
 * Enrols an agent with a verifier the way the upstream tenant does (`keylime_tenant -c add`,
 * keylime-api.md §4.3), speaking only the wire protocol so it works against any Keylime-compatible
 * verifier:
 *
 * 1. optional tenant half of the three-party key derivation (`withKeys`): identity quote from the
 *    agent over mTLS (pinned to its `mtls_cert`), verified with the AK incl. the PCR16 NK binding;
 *    K, V random, U = K ⊕ V; `POST /keys/ukey {encrypted_key = b64(RSA-OAEP-SHA1(NK, U)),
 *    auth_tag = hex HMAC-SHA384(K, uuid), payload?}`;
 * 2. verifier version negotiation (`GET /version`, newest common 2.x; the tenant excludes v3);
 * 3. `POST /v{v}/agents/{uuid}` with the full enrolment body of keylime-api.md §1.3.
 *
 * @module
 */

import { constants, createCipheriv, createHmac, publicEncrypt, randomBytes } from 'node:crypto'
import { randomPassword } from '../../../src/protocol/random-password.ts'
import { checkNkBinding } from '../../../src/tpm/extend-pcr.ts'
import { parseTpm2bPublic } from '../../../src/tpm/public-area.ts'
import { verifyQuote } from '../../../src/tpm/verify-quote.ts'
import { isHashAlg } from '../../../src/tpm/constants.ts'
import { FleetError } from './errors.ts'
import { newestCommonVersion, type SimAgent } from './sim-agent.ts'

/** Client TLS material (PEM) from the keylime CA: cv_ca `cacert.crt`, `client-cert.crt`, key. */
export interface ClientTls {
  /** Trusted CA(s) for the verifier's server certificate. */
  ca: string | string[]
  /** Client certificate. */
  cert: string
  /** Client private key (decrypted). */
  key: string
}

/** Options of {@link enrollAgent}. */
export interface EnrollAgentOptions {
  /** Verifier base URL, e.g. `https://127.0.0.1:8881`. */
  verifierUrl: string
  /** Client TLS material. */
  tls: ClientTls
  /** Agent UUID. */
  uuid: string
  /** Agent contact address. */
  ip: string
  /** Agent contact port. */
  port: number
  /** `aik_tpm` as registered (b64 TPM2B_PUBLIC). */
  akTpm: string
  /** The agent's `mtls_cert` (PEM). */
  mtlsCert: string
  /** Agent API version to record as `supported_version` (default 2.6 / negotiated with the agent). */
  agentApiVersion?: string
  /** `tpm_policy` JSON string (default `{"mask": "0x0"}`). */
  tpmPolicy?: string
  /** `runtime_policy`: base64 of the policy JSON, or "" (default). */
  runtimePolicy?: string
  /** Accepted algorithms (defaults: sha256/384/512; rsa, ecc; rsassa, ecdsa). */
  acceptHashAlgs?: string[]
  acceptEncryptionAlgs?: string[]
  acceptSigningAlgs?: string[]
  /** Run the tenant's identity-quote check and U delivery, and send V (default false). */
  withKeys?: boolean
  /** Payload to deliver encrypted with K (only with `withKeys`). */
  payload?: Uint8Array
  /** Verifier API version (skip negotiation). */
  verifierApiVersion?: string
  /** Per-request timeout in ms (default 30 s). */
  timeoutMs?: number
}

/** The enrolment fields that identify a simulated agent: uuid, contact, AK and mTLS certificate. */
export function simAgentIdentity(
  a: SimAgent,
): Pick<EnrollAgentOptions, 'uuid' | 'ip' | 'port' | 'akTpm' | 'mtlsCert'> {
  return {
    uuid: a.uuid,
    ip: a.contactIp,
    port: a.contactPort,
    akTpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
    mtlsCert: a.mtlsCertPem,
  }
}

/** What {@link enrollAgent} did. */
export interface EnrollResult {
  /** Verifier API version used. */
  verifierApiVersion: string
  /** K, when `withKeys` (test use: check `keys/verify` answers). */
  k?: Uint8Array
}

/** Verifier API versions the upstream tenant speaks (no v3 for enrolment). */
const TENANT_VERSIONS = ['2.0', '2.1', '2.2', '2.3', '2.4', '2.5', '2.6']

interface Reply {
  status: number
  body: { code?: number; status?: string; results?: Record<string, unknown> | null } | undefined
}

async function call(
  url: string,
  init: { method: string; body?: unknown; tls: Record<string, unknown>; timeoutMs: number },
): Promise<Reply> {
  const res = await fetch(url, {
    method: init.method,
    headers: init.body === undefined ? undefined : { 'content-type': 'application/json' },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    tls: init.tls,
    signal: AbortSignal.timeout(init.timeoutMs),
  } as RequestInit)
  const text = await res.text()
  let body: Reply['body']
  try {
    body = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    body = undefined
  }
  return { status: res.status, body }
}

/**
 * The tenant's agent-side steps: identity quote check and U delivery. Returns K and V.
 *
 * @throws {FleetError} `ERR_FLEET_ENROLMENT` if the agent refuses; {@link TpmError} if its quote
 *   does not verify.
 */
async function deliverU(
  o: EnrollAgentOptions,
  agentVersion: string,
): Promise<{ k: Uint8Array; v: Uint8Array }> {
  const timeoutMs = o.timeoutMs ?? 30_000
  const tls = {
    ca: [o.mtlsCert],
    cert: o.tls.cert,
    key: o.tls.key,
    checkServerIdentity: () => undefined,
  }
  const base = `https://${o.ip}:${o.port}/v${agentVersion}`
  const nonce = randomPassword(20)
  const idq = await call(`${base}/quotes/identity?nonce=${nonce}`, {
    method: 'GET',
    tls,
    timeoutMs,
  })
  const r = idq.body?.results
  if (
    idq.status !== 200 ||
    r == null ||
    typeof r.quote !== 'string' ||
    typeof r.pubkey !== 'string'
  ) {
    throw new FleetError('ERR_FLEET_ENROLMENT', `identity quote from ${o.uuid}: HTTP ${idq.status}`)
  }
  const hashAlg = String(r.hash_alg)
  if (!isHashAlg(hashAlg))
    throw new FleetError('ERR_FLEET_ENROLMENT', `unsupported hash_alg ${hashAlg}`)
  const ak = parseTpm2bPublic(Buffer.from(o.akTpm, 'base64'))
  const verified = verifyQuote({ quote: r.quote, akPublic: ak, nonce, hashAlg })
  checkNkBinding(verified.pcrs, hashAlg, r.pubkey)
  const k = randomBytes(32)
  const v = randomBytes(32)
  const u = Buffer.alloc(32)
  for (let i = 0; i < 32; i++) u[i] = k[i]! ^ v[i]!
  const encryptedU = publicEncrypt(
    { key: r.pubkey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    u,
  )
  const body: Record<string, unknown> = {
    encrypted_key: encryptedU.toString('base64'),
    auth_tag: createHmac('sha384', k).update(o.uuid).digest('hex'),
  }
  if (o.payload !== undefined) {
    const iv = randomBytes(16)
    const c = createCipheriv('aes-256-gcm', k, iv)
    const ct = Buffer.concat([c.update(o.payload), c.final()])
    body.payload = Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64')
  }
  const res = await call(`${base}/keys/ukey`, { method: 'POST', body, tls, timeoutMs })
  if (res.status !== 200)
    throw new FleetError('ERR_FLEET_ENROLMENT', `ukey to ${o.uuid}: HTTP ${res.status}`)
  return { k, v }
}

/** Negotiates the verifier API version: newest 2.x both sides support. */
export async function negotiateVerifierVersion(
  verifierUrl: string,
  tls: ClientTls,
  timeoutMs = 30_000,
): Promise<string> {
  const res = await call(`${verifierUrl.replace(/\/+$/, '')}/version`, {
    method: 'GET',
    tls: { ca: tls.ca, cert: tls.cert, key: tls.key, checkServerIdentity: () => undefined },
    timeoutMs,
  })
  const r = res.body?.results
  const supported = Array.isArray(r?.supported_versions)
    ? (r.supported_versions as unknown[]).map(String)
    : typeof r?.current_version === 'string'
      ? [r.current_version]
      : []
  const v = newestCommonVersion(TENANT_VERSIONS, supported)
  if (res.status !== 200 || v === undefined) {
    throw new FleetError(
      'ERR_FLEET_ENROLMENT',
      `verifier /version: HTTP ${res.status}, no common 2.x version`,
    )
  }
  return v
}

/** What {@link enrolmentBody} reads from the options (no `mtlsCert`: `null`, a push agent). */
export type EnrolmentFields = Pick<EnrollAgentOptions, 'ip' | 'port' | 'akTpm'> &
  Partial<
    Pick<
      EnrollAgentOptions,
      | 'mtlsCert'
      | 'agentApiVersion'
      | 'tpmPolicy'
      | 'runtimePolicy'
      | 'acceptHashAlgs'
      | 'acceptEncryptionAlgs'
      | 'acceptSigningAlgs'
    >
  >

/**
 * The body of `POST /v{v}/agents/{uuid}` (keylime-api.md §1.3) as upstream's tenant sends it, with
 * no V unless `extra` gives one; `extra` sets or replaces any other field too.
 */
export function enrolmentBody(
  o: EnrolmentFields,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    v: null,
    cloudagent_ip: o.ip,
    cloudagent_port: o.port,
    tpm_policy: o.tpmPolicy ?? JSON.stringify({ mask: '0x0' }),
    runtime_policy: o.runtimePolicy ?? '',
    runtime_policy_name: '',
    runtime_policy_key: '',
    mb_policy: null,
    mb_policy_name: '',
    ima_sign_verification_keys: '',
    metadata: '{}',
    revocation_key: '',
    accept_tpm_hash_algs: o.acceptHashAlgs ?? ['sha512', 'sha384', 'sha256'],
    accept_tpm_encryption_algs: o.acceptEncryptionAlgs ?? ['ecc', 'rsa'],
    accept_tpm_signing_algs: o.acceptSigningAlgs ?? ['ecdsa', 'rsassa'],
    ak_tpm: o.akTpm,
    mtls_cert: o.mtlsCert ?? null,
    supported_version: o.agentApiVersion ?? '2.6',
    ...extra,
  }
}

/**
 * Enrols one agent with the verifier (see the module header).
 *
 * @throws {FleetError} `ERR_FLEET_ENROLMENT` with the HTTP status on refusal.
 */
export async function enrollAgent(o: EnrollAgentOptions): Promise<EnrollResult> {
  const timeoutMs = o.timeoutMs ?? 30_000
  const base = o.verifierUrl.replace(/\/+$/, '')
  const verifierApiVersion =
    o.verifierApiVersion ?? (await negotiateVerifierVersion(base, o.tls, timeoutMs))
  const agentVersion = o.agentApiVersion ?? '2.6'
  let keys: { k: Uint8Array; v: Uint8Array } | undefined
  if (o.withKeys) keys = await deliverU(o, agentVersion)
  const v = keys === undefined ? null : Buffer.from(keys.v).toString('base64')
  const body = enrolmentBody({ ...o, agentApiVersion: agentVersion }, { v })
  const res = await call(`${base}/v${verifierApiVersion}/agents/${o.uuid}`, {
    method: 'POST',
    body,
    tls: { ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, checkServerIdentity: () => undefined },
    timeoutMs,
  })
  if (res.status !== 200) {
    throw new FleetError(
      'ERR_FLEET_ENROLMENT',
      `verifier refused ${o.uuid}: HTTP ${res.status} ${res.body?.status ?? ''}`.trim(),
    )
  }
  return keys === undefined ? { verifierApiVersion } : { verifierApiVersion, k: keys.k }
}
