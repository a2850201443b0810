/**
 * One simulated Keylime agent (pull model): registration exactly as rust-keylime does it, and the
 * agent REST API 2.1–2.6 as rust-keylime serves it (wire-formats §1, §2, §4, §5). The HTTP side
 * is a plain `(Request) → Response` handler so a fleet can mount thousands of agents behind one
 * listener; TLS is the fleet's job.
 *
 * Routes (`/v{2.1…2.6}` prefix; `agent/info` from 2.2):
 * `GET /version`, `GET keys/pubkey`, `GET quotes/identity?nonce`,
 * `GET quotes/integrity?nonce&mask&partial[&ima_ml_entry]`, `POST keys/ukey`, `POST keys/vkey`,
 * `GET keys/verify?challenge`, `POST notifications/revocation`, `GET agent/info`.
 * Every answer is the `{code, status, results}` envelope; ukey, vkey and revocation answer
 * `results: null` as rust-keylime does.
 *
 * Failure injection ({@link AgentFaults}) lets a verifier test see each class of failure: a bad
 * signature, an unexpected PCR change (PCR15, permanent, as a real extend would be), a wrong nonce
 * in the quote, slow answers, and a dead agent (connection reset).
 *
 * @module
 */

import {
  constants,
  createDecipheriv,
  createHmac,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
  verify,
  X509Certificate,
} from 'node:crypto'
import { unzipSync } from 'fflate'
import { computeAuthTag } from '../../src/tpm/hmac-proof.ts'
import { FleetError } from './errors.ts'
import type { ImaLog } from './ima-log.ts'
import { IMA_PCR } from './ima-log.ts'
import { maskToPcrs, NK_BINDING_PCR, type SoftTpm } from './soft-tpm.ts'

/** Agent API versions rust-keylime serves (`SUPPORTED_API_VERSIONS`), oldest first. */
export const AGENT_API_VERSIONS = ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6'] as const

/** The PCR the `pcrChange` fault extends (a static PCR a `tpm_policy` typically pins). */
export const FAULT_PCR = 15

/**
 * Failure-injection knobs. Rates are per answered quote, 0…1 (1 = every quote).
 */
export interface AgentFaults {
  /** Flip a bit of the TPMT_SIGNATURE (→ ERR_QUOTE_SIGNATURE at the verifier). */
  badSignature?: number
  /** Extend PCR15 with random data before quoting; permanent (→ tpm_policy mismatch). */
  pcrChange?: number
  /** Quote a nonce other than the one asked for (→ ERR_QUOTE_NONCE). */
  wrongNonce?: number
  /** Delay every answer by this many milliseconds. */
  slowMs?: number
  /** Reset every connection instead of answering. */
  dead?: boolean
}

/** Counters an agent keeps for the fleet summary. */
export interface AgentStats {
  /** Identity quotes answered. */
  identityQuotes: number
  /** Integrity quotes answered (an attestation each). */
  integrityQuotes: number
  /** Answers with a 4xx status. */
  errors: number
  /** Faults actually injected. */
  faultsInjected: number
  /** `performance.now()` of the last integrity quote, or 0. */
  lastQuoteAt: number
}

/** A revocation notice as received. */
export interface ReceivedRevocation {
  /** The parsed `msg`, or the raw string if it is not JSON. */
  msg: unknown
  /** True if verified with the revocation certificate; false if no certificate is loaded. */
  verified: boolean
}

/** Options of {@link SimAgent}. */
export interface SimAgentOptions {
  /** Agent UUID (`[\w.-]+`). */
  uuid: string
  /** The agent's TPM. */
  tpm: SoftTpm
  /** Contact address registered with the registrar. */
  contactIp: string
  /** Contact port registered with the registrar (may be set later, before {@link SimAgent.register}). */
  contactPort?: number
  /** The agent's server certificate PEM as registered (`mtls_cert`), or `disabled`. */
  mtlsCertPem: string
  /** Shared synthetic IMA list; PCR10 starts at its replay value. */
  imaLog?: ImaLog
  /** Revocation certificate (PEM) to verify notices with; else it is taken from a payload zip. */
  revocationCertPem?: string
  /** Injected faults (mutable at run time through {@link SimAgent.faults}). */
  faults?: AgentFaults
  /** Seconds since the epoch sent as `boottime`. */
  bootTime?: number
  /** Enabled API versions (default all of {@link AGENT_API_VERSIONS}). */
  apiVersions?: readonly string[]
}

/** Outcome of {@link SimAgent.register}. */
export interface RegistrationResult {
  /** The registrar API version used. */
  apiVersion: string
}

/** Request timeout towards the registrar. */
const REGISTRAR_TIMEOUT_MS = 15_000
const NONCE_RE = /^[A-Za-z0-9]{1,64}$/
const ALNUM_RE = /^[A-Za-z0-9]+$/
const JSON_HEADERS = { 'content-type': 'application/json' }

/** Builds an envelope response. */
function reply(code: number, status: string, results: unknown): Response {
  return new Response(JSON.stringify({ code, status, results }), {
    status: code,
    headers: JSON_HEADERS,
  })
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

function hit(rate: number | undefined): boolean {
  return rate !== undefined && rate > 0 && (rate >= 1 || Math.random() < rate)
}

/** A response whose body errors at once: the server resets the connection (a "dead" agent). */
function resetConnection(): Response {
  return new Response(
    new ReadableStream({
      start(c) {
        c.error(undefined)
      },
    }),
  )
}

/** Parses `x.y` into a comparable number pair. */
function versionKey(v: string): number {
  const [maj, min] = v.split('.').map(Number)
  return (maj ?? 0) * 1000 + (min ?? 0)
}

/** The newest version present in both lists, or undefined. */
export function newestCommonVersion(
  ours: readonly string[],
  theirs: readonly string[],
): string | undefined {
  const set = new Set(theirs)
  return [...ours].filter((v) => set.has(v)).sort((a, b) => versionKey(b) - versionKey(a))[0]
}

/** The simulated agent. */
export class SimAgent {
  /** Agent UUID. */
  readonly uuid: string
  /** Its soft TPM. */
  readonly tpm: SoftTpm
  /** Contact IP. */
  readonly contactIp: string
  /** Contact port (set by the fleet once its listener is bound). */
  contactPort: number
  /** Registered `mtls_cert`. */
  readonly mtlsCertPem: string
  /** Faults; change at run time to inject failures. */
  faults: AgentFaults
  /** Counters. */
  readonly stats: AgentStats = {
    identityQuotes: 0,
    integrityQuotes: 0,
    errors: 0,
    faultsInjected: 0,
    lastQuoteAt: 0,
  }
  /** Revocation notices received, oldest first. */
  readonly revocations: ReceivedRevocation[] = []
  /** The decrypted payload once K has been derived (undefined before, or if none was sent). */
  payload: Uint8Array | undefined
  /** Registrar API version used at registration. */
  registrarApiVersion: string | undefined
  readonly #imaLog: ImaLog | undefined
  readonly #versions: ReadonlySet<string>
  readonly #versionList: readonly string[]
  readonly #bootTime: number
  #revocationKey: KeyObject | undefined
  #k: Uint8Array | undefined
  #uKeys: { u: Uint8Array; authTag: string; payload: string | undefined }[] = []
  #vKeys: Uint8Array[] = []

  constructor(opts: SimAgentOptions) {
    if (!/^[\w.-]+$/.test(opts.uuid)) throw new FleetError('ERR_FLEET_CONFIG', 'bad agent UUID')
    this.uuid = opts.uuid
    this.tpm = opts.tpm
    this.contactIp = opts.contactIp
    this.contactPort = opts.contactPort ?? 0
    this.mtlsCertPem = opts.mtlsCertPem
    this.faults = { ...opts.faults }
    this.#imaLog = opts.imaLog
    this.#versionList = opts.apiVersions ?? AGENT_API_VERSIONS
    this.#versions = new Set(this.#versionList)
    this.#bootTime = opts.bootTime ?? Math.floor(Date.now() / 1000)
    if (opts.revocationCertPem !== undefined) this.setRevocationCert(opts.revocationCertPem)
    if (opts.imaLog !== undefined) {
      for (const bank of this.tpm.banks) {
        const v = opts.imaLog.pcr10(bank)
        if (v !== undefined) this.tpm.restorePcr(bank, IMA_PCR, v)
      }
    }
  }

  /** True once U and V have combined into a K that matched the tenant's auth_tag. */
  get hasKey(): boolean {
    return this.#k !== undefined
  }

  /** Loads the certificate whose key signs revocation notices (`RevocationNotifier-cert.crt`). */
  setRevocationCert(pem: string): void {
    this.#revocationKey = new X509Certificate(pem).publicKey
  }

  // ------------------------------------------------------------------------------------------
  // Registration (rust-keylime registrar_client.rs / agent_registration.rs)
  // ------------------------------------------------------------------------------------------

  /** The POST body of registration (wire-formats §2.2). */
  registrationBody(): Record<string, unknown> {
    return {
      aik_tpm: Buffer.from(this.tpm.akTpm2b).toString('base64'),
      ek_tpm: Buffer.from(this.tpm.ekTpm2b).toString('base64'),
      ekcert: this.tpm.ekCertPem ?? '',
      iak_cert: null,
      idevid_cert: null,
      ip: this.contactIp,
      mtls_cert: this.mtlsCertPem,
      port: this.contactPort,
    }
  }

  /**
   * Registers and activates with the registrar at `registrarUrl` (e.g. `http://127.0.0.1:8890`):
   * `GET /version`, pick the registrar's current version if enabled here, else the newest common
   * one (or try newest-first without `/version`); `POST /v{v}/agents/{uuid}`; software
   * ActivateCredential on `blob`; `PUT /v{v}/agents/{uuid}` with `auth_tag` =
   * hex HMAC-SHA384(key = ASCII base64(secret), msg = uuid).
   *
   * @throws {FleetError} `ERR_FLEET_REGISTRATION` on any refusal (status in the message).
   * @throws {TpmError} if the blob does not activate with this TPM.
   */
  async register(registrarUrl: string): Promise<RegistrationResult> {
    const base = registrarUrl.replace(/\/+$/, '')
    const candidates = await this.#registrarVersions(base)
    let lastError: unknown
    for (const v of candidates) {
      const res = await this.#request(
        base,
        'POST',
        `/v${v}/agents/${this.uuid}`,
        this.registrationBody(),
      )
      if (res.status === 403) {
        throw new FleetError(
          'ERR_FLEET_REGISTRATION',
          `registrar refused ${this.uuid} (403): identity changed`,
        )
      }
      if (!res.ok) {
        lastError = new FleetError(
          'ERR_FLEET_REGISTRATION',
          `register ${this.uuid} via v${v}: HTTP ${res.status}`,
        )
        continue
      }
      const blobB64 = (res.body as { results?: { blob?: unknown } } | undefined)?.results?.blob
      if (typeof blobB64 !== 'string') {
        throw new FleetError(
          'ERR_FLEET_REGISTRATION',
          `registrar answered no blob for ${this.uuid}`,
        )
      }
      const secret = this.tpm.activateCredential(Buffer.from(blobB64, 'base64'))
      const authTag = computeAuthTag(Buffer.from(secret).toString('base64'), this.uuid)
      const act = await this.#request(base, 'PUT', `/v${v}/agents/${this.uuid}`, {
        auth_tag: authTag,
      })
      if (!act.ok) {
        throw new FleetError(
          'ERR_FLEET_REGISTRATION',
          `activate ${this.uuid} via v${v}: HTTP ${act.status}`,
        )
      }
      this.registrarApiVersion = v
      return { apiVersion: v }
    }
    throw (
      lastError ?? new FleetError('ERR_FLEET_REGISTRATION', 'no registrar API version in common')
    )
  }

  /** Versions to try, in order (rust-keylime's negotiation). */
  async #registrarVersions(base: string): Promise<string[]> {
    let current: string | undefined
    let supported: string[] | undefined
    try {
      const res = await this.#request(base, 'GET', '/version')
      const r = (
        res.body as { results?: { current_version?: unknown; supported_versions?: unknown } }
      )?.results
      if (res.ok && typeof r?.current_version === 'string') {
        current = r.current_version
        if (Array.isArray(r.supported_versions)) supported = r.supported_versions.map(String)
      }
    } catch {
      current = undefined // no /version: try every enabled version, newest first
    }
    const newestFirst = [...this.#versionList].sort((a, b) => versionKey(b) - versionKey(a))
    if (current === undefined) return newestFirst
    if (this.#versions.has(current)) return [current]
    const common = newestCommonVersion(this.#versionList, supported ?? [])
    if (common === undefined) {
      throw new FleetError(
        'ERR_FLEET_REGISTRATION',
        `registrar API versions [${(supported ?? [current]).join(', ')}] and agent [${this.#versionList.join(', ')}] are incompatible`,
      )
    }
    return [common]
  }

  async #request(
    base: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ ok: boolean; status: number; body: unknown }> {
    const res = await fetch(base + path, {
      method,
      headers: body === undefined ? undefined : JSON_HEADERS,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(REGISTRAR_TIMEOUT_MS),
    })
    const text = await res.text()
    let parsed: unknown
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      parsed = undefined
    }
    return { ok: res.ok, status: res.status, body: parsed }
  }

  // ------------------------------------------------------------------------------------------
  // Agent API (rust-keylime keylime-agent/src/*_handler.rs)
  // ------------------------------------------------------------------------------------------

  /** Answers one request of the agent API. */
  async handle(req: Request, url: URL = new URL(req.url)): Promise<Response> {
    if (this.faults.dead) return resetConnection()
    if (this.faults.slowMs !== undefined && this.faults.slowMs > 0) await sleep(this.faults.slowMs)
    let res: Response
    try {
      res = await this.#route(req, url)
    } catch (err) {
      res = reply(400, err instanceof Error ? err.message : 'Bad Request', {})
    }
    if (res.status >= 400) this.stats.errors++
    return res
  }

  async #route(req: Request, url: URL): Promise<Response> {
    const path = url.pathname.replace(/\/+$/, '') || '/'
    if (path === '/version') {
      if (req.method !== 'GET') return this.#notAllowed('GET')
      const newest = [...this.#versionList].sort((a, b) => versionKey(b) - versionKey(a))[0]
      return reply(200, 'Success', {
        supported_version: newest,
        supported_versions: [...this.#versionList],
      })
    }
    const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(path)
    if (m === null) return reply(400, 'Not Found: use /v{version}/... or /version', {})
    const version = m[1]!
    const rest = m[2]!
    if (!this.#versions.has(version)) {
      return reply(400, `API version not supported: v${version}`, {})
    }
    const q = url.searchParams
    switch (rest) {
      case '/keys/pubkey':
        return req.method === 'GET'
          ? reply(200, 'Success', { pubkey: this.tpm.nkPem })
          : this.#notAllowed('GET')
      case '/quotes/identity':
        return req.method === 'GET' ? this.#identity(q, version) : this.#notAllowed('GET')
      case '/quotes/integrity':
        return req.method === 'GET' ? this.#integrity(q, version) : this.#notAllowed('GET')
      case '/keys/ukey':
        return req.method === 'POST' ? this.#ukey(req) : this.#notAllowed('POST')
      case '/keys/vkey':
        return req.method === 'POST' ? this.#vkey(req) : this.#notAllowed('POST')
      case '/keys/verify':
        return req.method === 'GET' ? this.#verifyKey(q) : this.#notAllowed('GET')
      case '/notifications/revocation':
        return req.method === 'POST' ? this.#revocation(req) : this.#notAllowed('POST')
      case '/agent/info':
        if (versionKey(version) < versionKey('2.2')) break
        return req.method === 'GET' ? this.#info(version) : this.#notAllowed('GET')
      default:
        break
    }
    return reply(400, `Not Found: ${req.method} ${rest} is not an agent API route`, {})
  }

  #notAllowed(allow: string): Response {
    const res = reply(405, 'Method Not Allowed', {})
    res.headers.set('allow', allow)
    return res
  }

  /** `enc_alg` string: the EK key algorithm; API ≥ 2.5 carries the size (`rsa2048`, `ecc256`). */
  #encAlg(version: string): string {
    const base = this.tpm.ekType
    if (versionKey(version) < versionKey('2.5')) return base
    return base === 'rsa' ? 'rsa2048' : 'ecc256'
  }

  #signAlg(): string {
    return this.tpm.akType === 'rsa' ? 'rsassa' : 'ecdsa'
  }

  #info(version: string): Response {
    return reply(200, 'Success', {
      agent_uuid: this.uuid,
      tpm_hash_alg: this.tpm.hashAlg,
      tpm_enc_alg: this.#encAlg(version),
      tpm_sign_alg: this.#signAlg(),
      ak_handle: 0x81000000,
    })
  }

  /** Runs a quote with PCR16 binding and the configured faults. */
  #quote(nonce: string, mask: number): string {
    let quotedNonce = nonce
    if (hit(this.faults.wrongNonce)) {
      quotedNonce = nonce.length > 1 ? nonce.slice(1) + nonce[0] : `${nonce}x`
      if (quotedNonce === nonce) quotedNonce = `${nonce}x`
      this.stats.faultsInjected++
    }
    if (hit(this.faults.pcrChange)) {
      this.tpm.extendData(FAULT_PCR, randomBytes(32))
      this.stats.faultsInjected++
    }
    this.tpm.bindNk()
    const pcrs = maskToPcrs(mask)
    if (!pcrs.includes(NK_BINDING_PCR)) pcrs.push(NK_BINDING_PCR)
    const q = this.tpm.quote(quotedNonce, pcrs)
    if (!hit(this.faults.badSignature)) return q.quote
    this.stats.faultsInjected++
    const sig = new Uint8Array(q.signature)
    sig[sig.byteLength - 1]! ^= 0x01
    const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
    return `r${b64(q.attest)}:${b64(sig)}:${b64(q.pcrBlob)}`
  }

  #quoteBody(quote: string, version: string): Record<string, unknown> {
    return {
      quote,
      hash_alg: this.tpm.hashAlg,
      enc_alg: this.#encAlg(version),
      sign_alg: this.#signAlg(),
    }
  }

  #identity(q: URLSearchParams, version: string): Response {
    const nonce = q.get('nonce') ?? ''
    if (!NONCE_RE.test(nonce)) return reply(400, 'nonce is required: alphanumeric, at most 64', {})
    const body = this.#quoteBody(this.#quote(nonce, 0), version)
    body.pubkey = this.tpm.nkPem
    body.boottime = this.#bootTime
    this.stats.identityQuotes++
    return reply(200, 'Success', body)
  }

  #integrity(q: URLSearchParams, version: string): Response {
    const nonce = q.get('nonce') ?? ''
    if (!NONCE_RE.test(nonce)) return reply(400, 'nonce is required: alphanumeric, at most 64', {})
    const maskText = q.get('mask') ?? ''
    if (!ALNUM_RE.test(maskText)) return reply(400, 'mask is required: hexadecimal', {})
    const hex = maskText.replace(/^0x/i, '')
    if (!/^[0-9a-fA-F]{1,8}$/.test(hex)) return reply(400, 'mask is not a 32-bit hex number', {})
    const mask = Number.parseInt(hex, 16) & 0xffffff
    const partial = q.get('partial')
    if (partial !== '0' && partial !== '1') return reply(400, 'partial must be 0 or 1', {})
    const entryText = q.get('ima_ml_entry')
    let entry = 0
    if (entryText !== null) {
      if (!/^\d{1,19}$/.test(entryText)) return reply(400, 'ima_ml_entry must be an integer', {})
      entry = Number(entryText)
    }
    const body = this.#quoteBody(this.#quote(nonce, mask), version)
    if (partial === '0') body.pubkey = this.tpm.nkPem
    if (this.#imaLog !== undefined && (mask >>> IMA_PCR) & 1) {
      const ml = this.#imaLog.fromEntry(entry)
      body.ima_measurement_list = ml.text
      body.ima_measurement_list_entry = ml.entry
    }
    body.boottime = this.#bootTime
    this.stats.integrityQuotes++
    this.stats.lastQuoteAt = performance.now()
    return reply(200, 'Success', body)
  }

  async #json(req: Request): Promise<Record<string, unknown>> {
    const text = await req.text()
    if (text.length > 1 << 20) throw new Error('request body too large')
    const v: unknown = JSON.parse(text)
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new Error('body must be a JSON object')
    return v as Record<string, unknown>
  }

  #decryptKey(field: unknown): Uint8Array {
    if (typeof field !== 'string' || field.length === 0)
      throw new Error('encrypted_key is required')
    const key = this.tpm.decryptWithNk(Buffer.from(field, 'base64'))
    if (key.byteLength !== 16 && key.byteLength !== 32)
      throw new Error('key must be 16 or 32 bytes')
    return key
  }

  async #ukey(req: Request): Promise<Response> {
    const body = await this.#json(req)
    const u = this.#decryptKey(body.encrypted_key)
    const authTag = body.auth_tag
    if (typeof authTag !== 'string' || !/^[0-9a-fA-F]{96}$/.test(authTag)) {
      return reply(400, 'auth_tag must be 96 hex characters', {})
    }
    const payload = body.payload
    if (payload !== undefined && payload !== null && typeof payload !== 'string') {
      return reply(400, 'payload must be a base64 string', {})
    }
    this.#uKeys.push({ u, authTag, payload: payload ?? undefined })
    this.#combine()
    return reply(200, 'Success', null)
  }

  async #vkey(req: Request): Promise<Response> {
    const body = await this.#json(req)
    this.#vKeys.push(this.#decryptKey(body.encrypted_key))
    this.#combine()
    return reply(200, 'Success', null)
  }

  /** rust `try_combine_keys`: K = U ⊕ V for every pair; accept if HMAC(K, uuid) == auth_tag. */
  #combine(): void {
    for (const entry of this.#uKeys) {
      for (const v of this.#vKeys) {
        if (v.byteLength !== entry.u.byteLength) continue
        const k = new Uint8Array(v.byteLength)
        for (let i = 0; i < k.byteLength; i++) k[i] = entry.u[i]! ^ v[i]!
        const expected = createHmac('sha384', k).update(this.uuid).digest()
        const got = Buffer.from(entry.authTag, 'hex')
        if (got.byteLength !== expected.byteLength || !timingSafeEqual(got, expected)) continue
        this.#k = k
        this.#uKeys = []
        this.#vKeys = []
        if (entry.payload !== undefined) this.#openPayload(k, entry.payload)
        return
      }
    }
  }

  /** Decrypts `b64(iv16 ‖ AES-GCM ciphertext ‖ tag16)`; loads a revocation cert from a zip. */
  #openPayload(k: Uint8Array, b64: string): void {
    const blob = Buffer.from(b64, 'base64')
    if (blob.byteLength < 32) return
    try {
      const d = createDecipheriv(
        k.byteLength === 32 ? 'aes-256-gcm' : 'aes-128-gcm',
        k,
        blob.subarray(0, 16),
      )
      d.setAuthTag(blob.subarray(blob.byteLength - 16))
      this.payload = Buffer.concat([d.update(blob.subarray(16, blob.byteLength - 16)), d.final()])
    } catch {
      this.payload = undefined
      return
    }
    if (this.payload[0] !== 0x50 || this.payload[1] !== 0x4b) return // not a zip ("PK")
    try {
      const files = unzipSync(this.payload)
      const cert = files['RevocationNotifier-cert.crt']
      if (cert !== undefined) this.setRevocationCert(Buffer.from(cert).toString('utf8'))
    } catch {
      // a payload that is not a valid zip is kept as is, like extract_payload_zip failures
    }
  }

  #verifyKey(q: URLSearchParams): Response {
    const challenge = q.get('challenge') ?? ''
    if (!ALNUM_RE.test(challenge)) return reply(400, 'challenge is required: alphanumeric', {})
    if (this.#k === undefined) return reply(400, 'Bootstrap key not yet available.', {})
    return reply(200, 'Success', {
      hmac: createHmac('sha384', this.#k).update(challenge).digest('hex'),
    })
  }

  async #revocation(req: Request): Promise<Response> {
    const body = await this.#json(req)
    const msg = body.msg
    const signature = body.signature
    if (typeof msg !== 'string' || typeof signature !== 'string') {
      return reply(400, 'msg and signature are required', {})
    }
    let verified = false
    if (this.#revocationKey !== undefined) {
      verified = verify(
        'sha256',
        Buffer.from(msg, 'utf8'),
        {
          key: this.#revocationKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_AUTO,
        },
        Buffer.from(signature, 'base64'),
      )
      if (!verified) return reply(400, 'Invalid revocation message signature', {})
    }
    let parsed: unknown = msg
    try {
      parsed = JSON.parse(msg)
    } catch {
      parsed = msg
    }
    this.revocations.push({ msg: parsed, verified })
    return reply(200, 'Success', null)
  }
}
