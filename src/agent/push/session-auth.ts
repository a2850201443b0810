/**
 * Push-mode authentication (API 3.0, push-protocol.md §1.5.3–§1.5.4), as rust-keylime's
 * `keylime/src/auth.rs`: `POST /v3.0/sessions` asks for a challenge, the TPM certifies the AK
 * with itself over it (TPM2_Certify, qualifyingData = the decoded challenge), and `PATCH
 * /v3.0/sessions/:id` with `message` (TPMS_ATTEST) and `signature` (TPMT_SIGNATURE) returns the
 * bearer token when `evaluation` is `pass`.
 *
 * The token is kept in memory only and never logged. It is replaced before `token_expires_at`
 * (rust-keylime waits for a 401 instead), and {@link SessionAuth.clear} drops it so the next
 * request authenticates again (after a 401).
 *
 * @module
 */

import { AgentError } from '../errors.ts'
import {
  badAnswer,
  readArray,
  readBase64,
  readObject,
  readString,
  readTimestamp,
} from './read-answer.ts'
import type { VerifierHttp } from './verifier-http.ts'

/** The TPM operation authentication needs. */
export interface PopTpm {
  /** TPM2_Certify(AK, AK, qualifyingData): TPMS_ATTEST and TPMT_SIGNATURE. */
  certifyAk(qualifyingData: Uint8Array): Promise<{ attest: Uint8Array; signature: Uint8Array }>
}

/** Options of {@link SessionAuth}. */
export interface SessionAuthOptions {
  /** The verifier client. */
  http: VerifierHttp
  /** `verifier_url`, no trailing slash. */
  verifierUrl: string
  /** The agent id. */
  agentId: string
  /** The TPM. */
  tpm: PopTpm
  /** Clock (ms since the epoch). */
  now?: () => number
  /** Info lines (never the token). */
  info?: (msg: string, fields?: Record<string, unknown>) => void
}

/** rust-keylime `DEFAULT_AUTH_TOKEN_EXPIRATION_FALLBACK_MINUTES`. */
const FALLBACK_LIFETIME_MS = 15 * 60 * 1000
/** Renew this long before `token_expires_at` (at most a quarter of the lifetime). */
const RENEW_MARGIN_MS = 30_000
/** Bearer tokens are `<uuid>.<base64url>`; anything else printable is accepted, bounded. */
const TOKEN_RE = /^[\x21-\x7e]{1,512}$/

/** A held token. */
interface Held {
  token: string
  renewAt: number
}

/** The agent's session with the verifier. */
export class SessionAuth {
  readonly #o: SessionAuthOptions
  readonly #now: () => number
  #held: Held | undefined

  constructor(opts: SessionAuthOptions) {
    this.#o = opts
    this.#now = opts.now ?? Date.now
  }

  /** True while a token is held. */
  get hasToken(): boolean {
    return this.#held !== undefined
  }

  /** Forgets the token (after a 401): the next {@link token} authenticates. */
  clear(): void {
    this.#held = undefined
  }

  /**
   * A usable bearer token: the one held, unless it is about to expire, else a new one.
   *
   * @throws {AgentError} `ERR_AGENT_PUSH_STATUS` / `ERR_AGENT_PUSH_ANSWER` /
   *   `ERR_AGENT_PUSH_AUTH` / `ERR_AGENT_PUSH_NETWORK`, TPM errors.
   */
  async token(): Promise<string> {
    const held = this.#held
    if (held !== undefined && this.#now() < held.renewAt) return held.token
    this.#held = undefined
    this.#held = await this.#authenticate()
    return this.#held.token
  }

  async #authenticate(): Promise<Held> {
    const { http, verifierUrl, agentId } = this.#o
    const created = await http.send('POST', `${verifierUrl}/v3.0/sessions`, {
      data: {
        type: 'session',
        attributes: {
          agent_id: agentId,
          authentication_supported: [
            { authentication_class: 'pop', authentication_type: 'tpm_pop' },
          ],
        },
      },
    })
    expectSuccess(created.status, 'POST /v3.0/sessions')
    const { sessionId, challenge } = parseChallenge(created.body)
    const proof = await this.#o.tpm.certifyAk(challenge)
    const answered = await http.send(
      'PATCH',
      `${verifierUrl}/v3.0/sessions/${encodeURIComponent(sessionId)}`,
      {
        data: {
          type: 'session',
          id: sessionId,
          attributes: {
            agent_id: agentId,
            authentication_provided: [
              {
                authentication_class: 'pop',
                authentication_type: 'tpm_pop',
                data: {
                  message: Buffer.from(proof.attest).toString('base64'),
                  signature: Buffer.from(proof.signature).toString('base64'),
                },
              },
            ],
          },
        },
      },
    )
    if (answered.status === 401) {
      throw new AgentError('ERR_AGENT_PUSH_AUTH', 'the verifier refused the proof of possession')
    }
    expectSuccess(answered.status, 'PATCH /v3.0/sessions/:id')
    const held = parseToken(answered.body, this.#now())
    this.#o.info?.('authenticated', {
      session_id: sessionId,
      token_renew_in_s: Math.round((held.renewAt - this.#now()) / 1000),
    })
    return held
  }
}

function expectSuccess(status: number, what: string): void {
  if (status < 200 || status > 299) {
    throw new AgentError('ERR_AGENT_PUSH_STATUS', `${what}: HTTP ${status}`, { httpStatus: status })
  }
}

/** The session id and the raw challenge bytes of a `POST /sessions` answer. */
export function parseChallenge(body: unknown): { sessionId: string; challenge: Uint8Array } {
  const data = readObject(readObject(body, 'body').data, 'data')
  const sessionId = readString(data.id, 'data.id', 128)
  const attrs = readObject(data.attributes, 'data.attributes')
  const requested = readArray(
    attrs.authentication_requested,
    'data.attributes.authentication_requested',
    16,
  ).map((m, i) => readObject(m, `data.attributes.authentication_requested[${i}]`))
  const pop = requested.find((m) => m.authentication_type === 'tpm_pop')
  if (pop === undefined) badAnswer('data.attributes.authentication_requested', 'has no tpm_pop')
  const params = readObject(pop.chosen_parameters, 'authentication_requested.chosen_parameters')
  const challenge = readBase64(params.challenge, 'chosen_parameters.challenge', 64)
  if (challenge.byteLength === 0) badAnswer('chosen_parameters.challenge', 'is empty')
  return { sessionId, challenge }
}

/** The token and its renewal time from a `PATCH /sessions/:id` answer. */
export function parseToken(body: unknown, now: number): Held {
  const attrs = readObject(
    readObject(readObject(body, 'body').data, 'data').attributes,
    'attributes',
  )
  if (attrs.evaluation !== 'pass') {
    const said =
      typeof attrs.evaluation === 'string'
        ? JSON.stringify(attrs.evaluation.slice(0, 32))
        : `a ${attrs.evaluation === null ? 'null' : typeof attrs.evaluation}`
    throw new AgentError('ERR_AGENT_PUSH_AUTH', `proof of possession evaluated as ${said}`)
  }
  if (typeof attrs.token !== 'string' || !TOKEN_RE.test(attrs.token)) {
    badAnswer('data.attributes.token', 'is missing or not a bearer token')
  }
  const expires =
    readTimestamp(attrs.token_expires_at) ??
    (readTimestamp(attrs.created_at) ?? now) + FALLBACK_LIFETIME_MS
  const lifetime = Math.max(0, expires - now)
  return { token: attrs.token, renewAt: expires - Math.min(RENEW_MARGIN_MS, lifetime / 4) }
}
