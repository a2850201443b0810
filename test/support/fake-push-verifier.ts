/**
 * A small in-process push-mode verifier (API 3.0) built from
 * /work/shared/reference/push-protocol.md §1.5.3–§1.5.6, for the agent's push-loop tests. It
 * exists because the real verifier's push routes are being built at the same time; the
 * interoperability test against upstream's verifier is test/push-agent-upstream.test.ts.
 *
 * It checks what an upstream verifier checks of the agent: the TPM2_Certify proof of possession
 * (ATTEST_CERTIFY, extraData = challenge, certified name = Name(AK), an RSASSA/SHA-256 signature
 * under the AK — or ECDSA/SHA-256, which our verifier accepts and upstream's does not), bearer tokens on the attestation routes, evidence in the requested order, and
 * the quote (signature, challenge as nonce, PCR blob against the digest, requested PCRs). A
 * test queues one-shot answers with {@link FakePushVerifier.once} (401, 429, 503, malformed).
 *
 * @module
 */
import { randomBytes, randomUUID, verify } from 'node:crypto'
import { parseTpmsAttest } from '../../src/tpm/attest.ts'
import { TPM_ALG_ID, TPM_ST } from '../../src/tpm/constants.ts'
import { computeName, parseTpm2bPublic, toKeyObject } from '../../src/tpm/public-area.ts'
import { parseTpmtSignature } from '../../src/tpm/signature.ts'
import { verifyQuote } from '../../src/tpm/verify-quote.ts'

type Json = Record<string, unknown>

/** A request as the fake saw it. */
export interface SeenRequest {
  method: string
  path: string
  contentType: string | null
  requestId: string | null
  authorization: string | null
  body: unknown
}

/** One scripted answer. */
interface Scripted {
  method: string
  path: RegExp
  respond: (req: SeenRequest) => Response | Promise<Response>
}

/** Options of {@link FakePushVerifier}. */
export interface FakePushVerifierOptions {
  /** The enrolled agent id. */
  agentId: string
  /** The AK as the registrar holds it (TPM2B_PUBLIC). */
  akTpm2b: Uint8Array
  /** PCRs requested in the sha256 bank. */
  pcrs?: number[]
  /** `starting_offset` of an ima_log request (none requested when undefined). */
  imaOffset?: number
  /** Request the UEFI log too. */
  uefi?: boolean
  /** `meta` of the 202 (default `{seconds_to_next_attestation: 2}`). */
  meta?: unknown
  /** `token_expires_at` of the session answer (default now + 180 s). */
  tokenExpiresAt?: () => string | undefined
  /** The `Location` of the 201 (default `/v3.0/agents/<id>/attestations/<n>`). */
  location?: (index: number) => string
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/vnd.api+json', ...headers },
  })

const unauthorized = () =>
  json(401, {
    errors: [{ status: '401', title: 'Unauthorized', detail: 'Invalid authentication token' }],
  })

/** The fake verifier: pass {@link FakePushVerifier.fetch} to the agent's HTTP client. */
export class FakePushVerifier {
  /** Every request, in order. */
  readonly seen: SeenRequest[] = []
  /** Sessions created (POST /sessions). */
  sessionsCreated = 0
  /** Evidence accepted, with the PCRs each quote proved. */
  readonly accepted: { index: number; pcrs: Map<number, Uint8Array>; ima?: Json }[] = []
  /** The last evidence body received (for assertions on shapes). */
  lastEvidence: Json | undefined
  /** The last capabilities body received. */
  lastCapabilities: Json | undefined
  readonly #o: FakePushVerifierOptions
  readonly #sessions = new Map<string, Uint8Array>()
  readonly #tokens = new Set<string>()
  readonly #script: Scripted[] = []
  #index = -1
  #challenge: Buffer | undefined

  constructor(opts: FakePushVerifierOptions) {
    this.#o = opts
  }

  /** Answers the next `method` request whose path matches `path` with `respond`, once. */
  once(
    method: string,
    path: RegExp,
    respond: (req: SeenRequest) => Response | Promise<Response>,
  ): this {
    this.#script.push({ method, path, respond })
    return this
  }

  /** Every token issued (to check that none reaches a log). */
  readonly issued: string[] = []

  /** Forgets every token, as a verifier restart with expired sessions would. */
  revokeTokens(): void {
    this.#tokens.clear()
  }

  /** The request handler. */
  readonly fetch = async (req: Request): Promise<Response> => {
    const url = new URL(req.url)
    const text = await req.text()
    let body: unknown
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      body = undefined
    }
    const seen: SeenRequest = {
      method: req.method,
      path: url.pathname,
      contentType: req.headers.get('content-type'),
      requestId: req.headers.get('x-request-id'),
      authorization: req.headers.get('authorization'),
      body,
    }
    this.seen.push(seen)
    const i = this.#script.findIndex((s) => s.method === req.method && s.path.test(url.pathname))
    if (i >= 0) return this.#script.splice(i, 1)[0]!.respond(seen)
    return this.answer(seen)
  }

  /** The answer the fake gives `req` when nothing is scripted (to build mutated answers). */
  answer(req: SeenRequest): Response {
    try {
      return this.#route(req)
    } catch (err) {
      // a body the checks cannot read: upstream answers 400/422 with pointers
      return json(400, { errors: [{ status: '400', detail: String(err) }] })
    }
  }

  #route(req: SeenRequest): Response {
    const id = this.#o.agentId
    if (req.method === 'POST' && req.path === '/v3.0/sessions') return this.#createSession(req)
    const s = /^\/v3\.0\/sessions\/([^/]+)$/.exec(req.path)
    if (req.method === 'PATCH' && s !== null) return this.#checkPop(decodeURIComponent(s[1]!), req)
    const base = `/v3.0/agents/${id}/attestations`
    if (req.method === 'POST' && req.path === base) {
      if (!this.#authorized(req)) return unauthorized()
      return this.#capabilities(req)
    }
    const a = new RegExp(`^${base}/(\\d+)$`).exec(req.path)
    if (req.method === 'PATCH' && a !== null) {
      if (!this.#authorized(req)) return unauthorized()
      return this.#evidence(Number(a[1]), req)
    }
    return json(404, { errors: [{ status: '404', code: 'not_found', detail: req.path }] })
  }

  /** The AK's scheme: rsassa for RSA, ecdsa for ECC. */
  get #scheme(): 'rsassa' | 'ecdsa' {
    return parseTpm2bPublic(this.#o.akTpm2b).type === 'rsa' ? 'rsassa' : 'ecdsa'
  }

  #authorized(req: SeenRequest): boolean {
    const m = /^Bearer (.+)$/.exec(req.authorization ?? '')
    return m !== null && this.#tokens.has(m[1]!)
  }

  #createSession(req: SeenRequest): Response {
    const attrs = ((req.body as Json)?.data as Json)?.attributes as Json | undefined
    if (attrs?.agent_id !== this.#o.agentId) return json(400, { errors: [{ status: '400' }] })
    this.sessionsCreated++
    const sid = randomUUID()
    const challenge = randomBytes(16)
    this.#sessions.set(sid, challenge)
    const now = new Date().toISOString()
    return json(200, {
      data: {
        type: 'session',
        id: sid,
        attributes: {
          agent_id: this.#o.agentId,
          authentication_requested: [
            {
              authentication_class: 'pop',
              authentication_type: 'tpm_pop',
              chosen_parameters: { challenge: challenge.toString('base64') },
            },
          ],
          created_at: now,
          challenges_expire_at: now,
        },
      },
    })
  }

  /** §1.5.4 step 6: the Certify proof. */
  #checkPop(sid: string, req: SeenRequest): Response {
    const challenge = this.#sessions.get(sid)
    this.#sessions.delete(sid)
    if (challenge === undefined) return json(404, { errors: [{ status: '404' }] })
    const attrs = ((req.body as Json).data as Json).attributes as Json
    const pop = (attrs.authentication_provided as Json[])[0]!.data as Json
    const message = Buffer.from(String(pop.message), 'base64')
    const signature = Buffer.from(String(pop.signature), 'base64')
    const ak = parseTpm2bPublic(this.#o.akTpm2b)
    const attest = parseTpmsAttest(message)
    const sig = parseTpmtSignature(signature)
    const key = toKeyObject(ak)
    const pad = (b: Uint8Array) => Buffer.concat([Buffer.alloc(32 - b.byteLength), b])
    const signed =
      sig.hashAlg === TPM_ALG_ID.SHA256 &&
      ('sig' in sig
        ? sig.sigAlg === TPM_ALG_ID.RSASSA && verify('sha256', message, key, sig.sig)
        : sig.sigAlg === TPM_ALG_ID.ECDSA &&
          verify(
            'sha256',
            message,
            { key, dsaEncoding: 'ieee-p1363' },
            Buffer.concat([pad(sig.r), pad(sig.s)]),
          ))
    const ok =
      attest.type === TPM_ST.ATTEST_CERTIFY &&
      Buffer.compare(Buffer.from(attest.extraData), challenge) === 0 &&
      Buffer.compare(Buffer.from(attest.certify.name), Buffer.from(computeName(ak))) === 0 &&
      signed
    if (!ok)
      return json(401, { data: { type: 'session', id: sid, attributes: { evaluation: 'fail' } } })
    const token = `${sid}.${randomBytes(32).toString('base64url')}`
    this.#tokens.add(token)
    this.issued.push(token)
    const expires = this.#o.tokenExpiresAt
      ? this.#o.tokenExpiresAt()
      : new Date(Date.now() + 180_000).toISOString()
    return json(200, {
      data: {
        type: 'session',
        id: sid,
        attributes: {
          agent_id: this.#o.agentId,
          evaluation: 'pass',
          token,
          created_at: new Date().toISOString(),
          ...(expires === undefined ? {} : { token_expires_at: expires }),
        },
      },
    })
  }

  /** §1.5.5: select and parameterise. */
  #capabilities(req: SeenRequest): Response {
    const attrs = ((req.body as Json).data as Json).attributes as Json
    this.lastCapabilities = req.body as Json
    const quote = (attrs.evidence_supported as Json[]).find((e) => e.evidence_type === 'tpm_quote')
    const key = (
      ((quote?.capabilities ?? {}) as Json).certification_keys as Json[] | undefined
    )?.[0]
    this.#index++
    this.#challenge = randomBytes(16)
    const requested: Json[] = [
      {
        evidence_class: 'certification',
        evidence_type: 'tpm_quote',
        chosen_parameters: {
          signature_scheme: this.#scheme,
          challenge: this.#challenge.toString('base64'),
          hash_algorithm: 'sha256',
          selected_subjects: { sha1: null, sha256: this.#o.pcrs ?? [0, 1, 2, 3, 23] },
          certification_key: key,
        },
      },
    ]
    if (this.#o.uefi === true) {
      requested.push({
        evidence_class: 'log',
        evidence_type: 'uefi_log',
        chosen_parameters: { format: 'application/octet-stream' },
      })
    }
    if (this.#o.imaOffset !== undefined) {
      requested.push({
        evidence_class: 'log',
        evidence_type: 'ima_log',
        chosen_parameters: { starting_offset: this.#o.imaOffset, format: 'text/plain' },
      })
    }
    const location =
      this.#o.location?.(this.#index) ??
      `/v3.0/agents/${this.#o.agentId}/attestations/${this.#index}`
    return json(
      201,
      {
        data: {
          type: 'attestation',
          attributes: { stage: 'awaiting_evidence', evidence_requested: requested },
        },
      },
      { location },
    )
  }

  /** §1.5.6: check the evidence, answer 202 before "verification". */
  #evidence(index: number, req: SeenRequest): Response {
    if (index !== this.#index)
      return json(403, { errors: [{ status: '403', code: 'old_attestation' }] })
    this.lastEvidence = req.body as Json
    const items = (((req.body as Json).data as Json).attributes as Json)
      .evidence_collected as Json[]
    const q = items[0]!.data as Json
    const verified = verifyQuote({
      quote: `r${q.message}:${q.signature}:${q.subject_data}`,
      akPublic: parseTpm2bPublic(this.#o.akTpm2b),
      nonce: this.#challenge!,
      hashAlg: 'sha256',
      signAlg: this.#scheme,
    })
    const pcrs = verified.pcrs.get('sha256') ?? new Map()
    for (const p of this.#o.pcrs ?? [0, 1, 2, 3, 23]) {
      if (!pcrs.has(p)) return json(422, { errors: [{ status: '422', detail: `PCR ${p}` }] })
    }
    const ima = items.find((i) => i.evidence_type === 'ima_log')?.data as Json | undefined
    this.accepted.push({ index, pcrs, ...(ima ? { ima } : {}) })
    this.#challenge = undefined
    return json(202, {
      data: { type: 'attestation', attributes: { stage: 'evaluating_evidence' } },
      meta: this.#o.meta === undefined ? { seconds_to_next_attestation: 2 } : this.#o.meta,
    })
  }
}
