/**
 * The agent REST API 2.1–2.6 exactly as rust-keylime serves it (wire-formats §1), as a plain
 * `(Request) → Response` handler over an {@link AgentTpm}: the real agent mounts it on an mTLS
 * `Bun.serve`, the fleet simulator mounts thousands behind one listener.
 *
 * Routes (`/v{2.1…2.6}` prefix; `agent/info` from 2.2): `GET /version`, `GET keys/pubkey`,
 * `GET quotes/identity?nonce`, `GET quotes/integrity?nonce&mask&partial[&ima_ml_entry]`,
 * `POST keys/ukey`, `POST keys/vkey`, `GET keys/verify?challenge`,
 * `POST notifications/revocation`, `GET agent/info`. Every answer is the `{code, status,
 * results}` envelope; ukey, vkey and revocation answer `results: null` as rust-keylime does.
 * Unknown versions answer 400 "API version not supported: vX.Y" (the verifier renegotiates on
 * that text); a wrong method answers 405 with `Allow`.
 *
 * @module
 */

import type { KeyObject } from 'node:crypto'
import type { AgentTpm } from '../agent-tpm.ts'
import { isAgentError } from '../errors.ts'
import { AGENT_API_VERSIONS, compareApiVersions } from '../../protocol/api-versions.ts'
import type { KeyExchange } from './key-exchange.ts'
import { IMA_PCR } from '../../protocol/keylime-pcrs.ts'
import { revocationKeyFromCert, verifyRevocation } from './verify-revocation.ts'

/** PCR 0: the UEFI log is sent when it is quoted. */
const MB_PCR = 0

/** A source of IMA measurement list text (wire-formats §1.3). */
export interface MeasurementList {
  /**
   * The list from line `entry` (0-based) to the end, with the entry actually used (0 when
   * `entry` is past the end, as rust-keylime restarts); undefined when there is no list.
   */
  fromEntry(entry: number): { text: string; entry: number } | undefined
}

/** A revocation notice as received. */
export interface RevocationNotice {
  /** The parsed `msg`, or the raw string if it is not JSON. */
  msg: unknown
  /** The exact `msg` text (what the signature covers). */
  raw: string
  /** True if verified with the revocation certificate; false if none is loaded. */
  verified: boolean
}

/** Observers (counters, actions). Exceptions thrown by hooks answer 500. */
export interface AgentApiHooks {
  /** After a quote was produced. */
  onQuote?(kind: 'identity' | 'integrity'): void
  /** After a revocation notice was accepted (signature valid, or no certificate loaded). */
  onRevocation?(notice: RevocationNotice): void | Promise<void>
}

/** Options of {@link AgentApi}. */
export interface AgentApiOptions {
  /** Agent UUID. */
  uuid: string
  /** The TPM. */
  tpm: AgentTpm
  /** U/V/K state. */
  keys: KeyExchange
  /** Enabled API versions (default all of {@link AGENT_API_VERSIONS}). */
  apiVersions?: readonly string[]
  /** IMA measurement list (omitted from answers when absent). */
  ima?: MeasurementList
  /** Reads the UEFI event log (`binary_bios_measurements`), undefined if there is none. */
  measuredBootLog?: () => Uint8Array | undefined
  /** Seconds since the epoch sent as `boottime` (omitted when undefined). */
  bootTime?: number
  /** Revocation certificate PEM (else set later by a payload). */
  revocationCertPem?: string
  /** Observers. */
  hooks?: AgentApiHooks
}

const NONCE_RE = /^[A-Za-z0-9]{1,64}$/
const ALNUM_RE = /^[A-Za-z0-9]+$/
const MAX_BODY = 1 << 20

/** Builds an envelope response. */
function reply(code: number, status: string, results: unknown): Response {
  return new Response(JSON.stringify({ code, status, results }), {
    status: code,
    headers: { 'content-type': 'application/json' },
  })
}

/** A 400 whose message is safe to send. */
class RequestError extends Error {}

/** The agent API handler. */
export class AgentApi {
  /** Agent UUID. */
  readonly uuid: string
  /** The TPM. */
  readonly tpm: AgentTpm
  /** U/V/K state. */
  readonly keys: KeyExchange
  readonly #versions: ReadonlySet<string>
  readonly #versionList: readonly string[]
  readonly #ima: MeasurementList | undefined
  readonly #mbLog: (() => Uint8Array | undefined) | undefined
  readonly #bootTime: number | undefined
  readonly #hooks: AgentApiHooks
  #revocationKey: KeyObject | undefined

  constructor(opts: AgentApiOptions) {
    this.uuid = opts.uuid
    this.tpm = opts.tpm
    this.keys = opts.keys
    this.#versionList = opts.apiVersions ?? AGENT_API_VERSIONS
    this.#versions = new Set(this.#versionList)
    this.#ima = opts.ima
    this.#mbLog = opts.measuredBootLog
    this.#bootTime = opts.bootTime
    this.#hooks = opts.hooks ?? {}
    if (opts.revocationCertPem !== undefined) this.setRevocationCert(opts.revocationCertPem)
  }

  /** Loads the certificate whose key signs revocation notices (`RevocationNotifier-cert.crt`). */
  setRevocationCert(pem: string | Uint8Array): void {
    this.#revocationKey = revocationKeyFromCert(pem)
  }

  /** True once a revocation certificate is loaded. */
  get hasRevocationCert(): boolean {
    return this.#revocationKey !== undefined
  }

  /** Answers one request. */
  async handle(req: Request, url: URL = new URL(req.url)): Promise<Response> {
    try {
      return await this.#route(req, url)
    } catch (err) {
      if (err instanceof RequestError) return reply(400, err.message, {})
      if (isAgentError(err, 'ERR_AGENT_REQUEST')) return reply(400, err.message, {})
      if (err instanceof SyntaxError) return reply(400, 'body is not JSON', {})
      return reply(500, 'Internal Server Error', {})
    }
  }

  async #route(req: Request, url: URL): Promise<Response> {
    // (?<!\/) starts the match at the run's first slash: /\/+$/ alone is quadratic on '////…x'.
    const path = url.pathname.replace(/(?<!\/)\/+$/, '') || '/'
    if (path === '/version') {
      if (req.method !== 'GET') return this.#notAllowed('GET')
      const newest = [...this.#versionList].sort(compareApiVersions).at(-1)
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
        if (compareApiVersions(version, '2.2') < 0) break
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

  /** `enc_alg`: the EK key algorithm; API ≥ 2.5 carries the size (`rsa2048`, `ecc256`). */
  #encAlg(version: string): string {
    const base = this.tpm.encAlg
    if (compareApiVersions(version, '2.5') < 0) return base
    return base === 'rsa' ? 'rsa2048' : 'ecc256'
  }

  #info(version: string): Response {
    return reply(200, 'Success', {
      agent_uuid: this.uuid,
      tpm_hash_alg: this.tpm.hashAlg,
      tpm_enc_alg: this.#encAlg(version),
      tpm_sign_alg: this.tpm.signAlg,
      ak_handle: this.tpm.akHandle,
    })
  }

  async #quoteBody(nonce: string, pcrs: number[], version: string) {
    const quote = await this.tpm.quote(nonce, pcrs)
    const body: Record<string, unknown> = {
      quote,
      hash_alg: this.tpm.hashAlg,
      enc_alg: this.#encAlg(version),
      sign_alg: this.tpm.signAlg,
    }
    return body
  }

  async #identity(q: URLSearchParams, version: string): Promise<Response> {
    const nonce = q.get('nonce') ?? ''
    if (!NONCE_RE.test(nonce)) return reply(400, 'nonce is required: alphanumeric, at most 64', {})
    const body = await this.#quoteBody(nonce, [], version)
    body.pubkey = this.tpm.nkPem
    if (this.#bootTime !== undefined) body.boottime = this.#bootTime
    this.#hooks.onQuote?.('identity')
    return reply(200, 'Success', body)
  }

  async #integrity(q: URLSearchParams, version: string): Promise<Response> {
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
      if (!/^\d{1,15}$/.test(entryText)) return reply(400, 'ima_ml_entry must be an integer', {})
      entry = Number(entryText)
    }
    const pcrs: number[] = []
    for (let i = 0; i < 24; i++) if ((mask >>> i) & 1) pcrs.push(i)
    const body = await this.#quoteBody(nonce, pcrs, version)
    if (partial === '0') body.pubkey = this.tpm.nkPem
    if (this.#ima !== undefined && (mask >>> IMA_PCR) & 1) {
      const ml = this.#ima.fromEntry(entry)
      if (ml !== undefined) {
        body.ima_measurement_list = ml.text
        body.ima_measurement_list_entry = ml.entry
      }
    }
    if (this.#mbLog !== undefined && (mask >>> MB_PCR) & 1) {
      const log = this.#mbLog()
      if (log !== undefined && log.byteLength > 0) {
        body.mb_measurement_list = Buffer.from(log).toString('base64')
      }
    }
    if (this.#bootTime !== undefined) body.boottime = this.#bootTime
    this.#hooks.onQuote?.('integrity')
    return reply(200, 'Success', body)
  }

  async #json(req: Request): Promise<Record<string, unknown>> {
    const text = await req.text()
    if (text.length > MAX_BODY) throw new RequestError('request body too large')
    const v: unknown = JSON.parse(text)
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new RequestError('body must be a JSON object')
    }
    return v as Record<string, unknown>
  }

  async #ukey(req: Request): Promise<Response> {
    const body = await this.#json(req)
    await this.keys.addU(body.encrypted_key, body.auth_tag, body.payload)
    return reply(200, 'Success', null)
  }

  async #vkey(req: Request): Promise<Response> {
    const body = await this.#json(req)
    await this.keys.addV(body.encrypted_key)
    return reply(200, 'Success', null)
  }

  #verifyKey(q: URLSearchParams): Response {
    const challenge = q.get('challenge') ?? ''
    if (!ALNUM_RE.test(challenge)) return reply(400, 'challenge is required: alphanumeric', {})
    const hmac = this.keys.hmac(challenge)
    if (hmac === undefined) return reply(400, 'Bootstrap key not yet available.', {})
    return reply(200, 'Success', { hmac })
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
      verified = verifyRevocation(msg, signature, this.#revocationKey)
      if (!verified) return reply(400, 'Invalid revocation message signature', {})
    }
    let parsed: unknown = msg
    try {
      parsed = JSON.parse(msg)
    } catch {
      parsed = msg
    }
    await this.#hooks.onRevocation?.({ msg: parsed, raw: msg, verified })
    return reply(200, 'Success', null)
  }
}
