/**
 * Push-mode authentication (push-protocol.md §1.5.3–1.5.4, upstream
 * `web/verifier/session_controller.py` and `models/verifier/auth_session.py`): a challenge for
 * anyone who asks, then a token for the agent whose enrolled AK certified itself over it.
 *
 * Differences from upstream, on purpose (docs/compatibility.md): pending sessions are database
 * rows, so any verifier sharing the database takes the answer; the proof may be RSASSA, RSAPSS
 * or ECDSA with SHA-256/384/512 (upstream: RSASSA/SHA-256 only); the token is issued only after
 * the proof and stored as an HMAC (`session-token.ts`).
 *
 * @module
 */
import { randomBytes, randomUUID } from 'node:crypto'
import { authErrorBody } from '../../../http/access/auth-error.ts'
import type { Logger } from '../../../log/logger.ts'
import { decodeBase64 } from '../../../protocol/decode-base64.ts'
import { isoMicros } from '../../../protocol/iso-micros.ts'
import { isKeylimeError } from '../../../errors.ts'
import { signAlgName } from '../../../tpm/constants.ts'
import { parseTpm2bPublic } from '../../../tpm/public-area.ts'
import { MAX_CERTIFY_BYTES, verifyCertify } from '../../../tpm/verify-certify.ts'
import type { SessionRow, SessionStore } from '../../store/sessions.ts'
import type { RateLimiter } from './rate-limiter.ts'
import {
  offersTpmPop,
  type ProvidedProof,
  readAgentId,
  readProof,
  renderChallenge,
  renderProofAnswer,
  type SessionView,
  sessionAttributes,
} from './session-bodies.ts'
import { newSessionToken } from './session-token.ts'
import type { SessionTokens } from './session-tokens.ts'

/** `[verifier]` options of sessions, in seconds. */
export interface SessionLimits {
  nonceLifetime: number
  sessionLifetime: number
  perIp: number
  windowIp: number
  perAgent: number
  windowAgent: number
}

/** What {@link PushSessions} needs. */
export interface PushSessionsOptions {
  store: SessionStore
  /** The enrolled AK (`verifiermain.ak_tpm`, base64 TPM2B_PUBLIC) of an agent, if enrolled. */
  enrolledAk: (agentId: string) => Promise<string | null | undefined>
  tokens: SessionTokens
  limiter: RateLimiter
  limits: SessionLimits
  log: Logger
}

/** An answer: status, JSON body, extra headers. */
export interface SessionAnswer {
  status: number
  body: Record<string, unknown>
  headers?: Record<string, string>
}

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

const error = (status: number, detail: string, headers?: Record<string, string>) => ({
  status,
  body: authErrorBody(status, detail),
  headers,
})

function view(row: SessionRow): SessionView {
  return {
    sessionId: row.session_id,
    agentId: row.agent_id ?? '',
    challengeB64: Buffer.from(row.nonce ?? []).toString('base64'),
    createdAt: row.nonce_created_at ?? '',
    challengesExpireAt: row.nonce_expires_at ?? '',
  }
}

/** The session operations of the push API. */
export class PushSessions {
  readonly #o: PushSessionsOptions

  constructor(o: PushSessionsOptions) {
    this.#o = o
  }

  /** `POST /sessions`: rate limits, then a challenge (also for agents that are not enrolled). */
  async create(
    body: Record<string, unknown>,
    clientIp: string,
    now = Date.now(),
  ): Promise<SessionAnswer> {
    const { limiter, limits } = this.#o
    const byIp = limiter.check(`ip:${clientIp}`, limits.perIp, limits.windowIp, now)
    if (!byIp.allowed) {
      return error(429, 'Rate limit exceeded. Please try again later.', {
        'Retry-After': String(byIp.retryAfter),
      })
    }
    const attrs = sessionAttributes(body)
    const agentId = readAgentId(attrs)
    if (agentId === undefined) return error(400, 'agent_id is required')
    const byAgent = limiter.check(`agent:${agentId}`, limits.perAgent, limits.windowAgent, now)
    if (!byAgent.allowed) {
      return error(429, 'Rate limit exceeded for this agent. Please try again later.', {
        'Retry-After': String(byAgent.retryAfter),
      })
    }
    if (!offersTpmPop(attrs)) {
      return error(400, 'authentication_supported must include tpm_pop authentication type')
    }
    const nonce = randomBytes(16)
    const s: SessionView = {
      sessionId: randomUUID(),
      agentId,
      challengeB64: nonce.toString('base64'),
      createdAt: isoMicros(now),
      challengesExpireAt: isoMicros(now + limits.nonceLifetime * 1000),
    }
    await this.#o.store.deleteStale(agentId, now)
    await this.#o.store.insertPending({
      sessionId: s.sessionId,
      agentId,
      nonce,
      createdAt: s.createdAt,
      expiresAt: s.challengesExpireAt,
    })
    return { status: 200, body: renderChallenge(s) }
  }

  /**
   * `PATCH /sessions/:id`: the proof of possession. 200 with a token on success; 200 with
   * `evaluation: fail` for an expired challenge or an agent not enrolled; 401 for a bad proof.
   * The session is gone after any answer but the 400s and 404.
   */
  async prove(
    sessionId: string,
    body: Record<string, unknown>,
    now = Date.now(),
  ): Promise<SessionAnswer> {
    const attrs = sessionAttributes(body)
    const agentId = readAgentId(attrs)
    if (agentId === undefined) return error(400, 'agent_id is required')
    const { store, log } = this.#o
    const row = SESSION_ID.test(sessionId) ? await store.get(sessionId) : undefined
    if (row === undefined || row.active !== false) return error(404, 'Session not found')
    if (row.agent_id !== agentId) return error(400, 'Agent ID mismatch')
    const s = view(row)
    const proof = readProof(attrs)
    const fail = (status: number, extra: { tokenExpiresAtNull?: boolean } = {}) => ({
      status,
      body: renderProofAnswer(s, proof, isoMicros(now), { evaluation: 'fail', ...extra }),
    })
    if (!(Date.parse(s.challengesExpireAt) >= now)) {
      log.warn(`Nonce expired for session ${sessionId} (agent ${agentId})`)
      await store.deletePending(sessionId)
      return fail(200, { tokenExpiresAtNull: true })
    }
    const akTpm = await this.#o.enrolledAk(agentId)
    if (!akTpm) {
      log.info(`Authentication failed for unenrolled agent '${agentId}'`)
      await store.deletePending(sessionId)
      return fail(200)
    }
    const checked = this.#check(akTpm, proof, row.nonce ?? new Uint8Array(0))
    if ('reason' in checked) {
      log.warn(`Authentication failed for session ${sessionId} (agent '${agentId}')`, {
        reason: checked.reason,
      })
      await store.deletePending(sessionId)
      return fail(401)
    }
    return this.#issue(s, proof, checked, now)
  }

  /** Decodes and verifies the proof against the enrolled AK. */
  #check(
    akTpm: string,
    proof: ProvidedProof,
    challenge: Uint8Array,
  ):
    | { reason: string }
    | { attest: Uint8Array; signature: Uint8Array; hash: string; scheme: string } {
    if (proof.error !== undefined) return { reason: proof.error }
    try {
      const maxLength = Math.ceil(MAX_CERTIFY_BYTES / 3) * 4
      const attest = decodeBase64(proof.message, { what: 'message', maxLength })
      const signature = decodeBase64(proof.signature, { what: 'signature', maxLength })
      const ak = parseTpm2bPublic(decodeBase64(akTpm, { what: 'ak_tpm' }))
      const { hash, sigAlg } = verifyCertify({
        attest,
        signature,
        signer: ak,
        certified: ak,
        qualifyingData: challenge,
      })
      return { attest, signature, hash, scheme: signAlgName(sigAlg) ?? '' }
    } catch (e) {
      if (!isKeylimeError(e)) throw e
      return { reason: `${e.code}: ${e.message}` }
    }
  }

  /** Activates the session (the agent's others go) and answers with the token. */
  async #issue(
    s: SessionView,
    proof: ProvidedProof,
    checked: { attest: Uint8Array; signature: Uint8Array; hash: string; scheme: string },
    now: number,
  ): Promise<SessionAnswer> {
    const { store, tokens, limits, log } = this.#o
    const token = newSessionToken(s.sessionId)
    const receivedAt = isoMicros(now)
    const tokenExpiresAt = isoMicros(now + limits.sessionLifetime * 1000)
    const replaced = await store.activate(s.sessionId, s.agentId, {
      tokenHash: tokens.hash(token),
      keyId: tokens.keyId,
      hashAlgorithm: checked.hash,
      signingScheme: checked.scheme,
      akAttest: checked.attest,
      akSign: checked.signature,
      popReceivedAt: receivedAt,
      tokenExpiresAt,
    })
    // answered concurrently (here or on another verifier): only one answer gets a token
    if (replaced === undefined) return error(404, 'Session not found')
    log.info(`Authentication succeeded for agent '${s.agentId}' (session ${s.sessionId})`)
    return {
      status: 200,
      body: renderProofAnswer(s, proof, receivedAt, { evaluation: 'pass', token, tokenExpiresAt }),
    }
  }
}
