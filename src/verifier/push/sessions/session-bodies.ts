/**
 * The JSON bodies of `POST /v3[.0]/sessions` and `PATCH /v3[.0]/sessions/:session_id`
 * (push-protocol.md §1.5.3–1.5.4), read from `data.attributes` (JSON:API or plain JSON, as
 * upstream's session controller) and rendered as upstream's `session_controller.py` does.
 *
 * @module
 */
import { AGENT_ID_RE } from '../../../protocol/agent-id.ts'

/** A JSON object, or undefined. */
type Obj = Record<string, unknown>

function obj(v: unknown): Obj | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Obj) : undefined
}

/** `data.attributes` of a body (empty when absent, as upstream's `.get(…, {})`). */
export function sessionAttributes(body: Obj): Obj {
  return obj(obj(body.data)?.attributes) ?? {}
}

/**
 * The `agent_id` attribute: undefined when absent, empty or not an agent id (upstream: any
 * truthy value; an id that is no agent id could never be enrolled anyway).
 */
export function readAgentId(attrs: Obj): string | undefined {
  const id = attrs.agent_id
  return typeof id === 'string' && AGENT_ID_RE.test(id) ? id : undefined
}

/** Whether `authentication_supported` offers `tpm_pop`. */
export function offersTpmPop(attrs: Obj): boolean {
  const offered = attrs.authentication_supported
  return Array.isArray(offered) && offered.some((m) => obj(m)?.authentication_type === 'tpm_pop')
}

/** The proof an agent sent: `authentication_provided[0]`, as upstream reads it. */
export interface ProvidedProof {
  /** Why the proof cannot be checked, if so (upstream's error wording). */
  error?: string
  /** `data.message` as sent (base64 TPMS_ATTEST), or `''`. */
  message: string
  /** `data.signature` as sent (base64 TPMT_SIGNATURE), or `''`. */
  signature: string
}

/** Reads `authentication_provided[0]` (upstream `AuthSession.receive_pop`). */
export function readProof(attrs: Obj): ProvidedProof {
  const provided = attrs.authentication_provided
  const first = Array.isArray(provided) ? obj(provided[0]) : undefined
  const data = obj(first?.data)
  const message = typeof data?.message === 'string' ? data.message : ''
  const signature = typeof data?.signature === 'string' ? data.signature : ''
  let error: string | undefined
  if (first === undefined) {
    error = 'authentication_provided must include at least one authentication method'
  } else if (first.authentication_type !== 'tpm_pop') {
    error = 'authentication_provided must include tpm_pop authentication type'
  } else if (message === '' || signature === '') {
    error = 'authentication_provided must include both message and signature in proof data'
  }
  return { error, message, signature }
}

/** What a session answer shows of a session. */
export interface SessionView {
  sessionId: string
  agentId: string
  challengeB64: string
  createdAt: string
  challengesExpireAt: string
}

const POP = { authentication_class: 'pop', authentication_type: 'tpm_pop' } as const

/** The 200 answer of `POST /sessions`: the challenge, never a token. */
export function renderChallenge(s: SessionView): Obj {
  return {
    data: {
      type: 'session',
      id: s.sessionId,
      attributes: {
        agent_id: s.agentId,
        authentication_requested: [{ ...POP, chosen_parameters: { challenge: s.challengeB64 } }],
        created_at: s.createdAt,
        challenges_expire_at: s.challengesExpireAt,
      },
    },
  }
}

/** The outcome of a proof, as `PATCH /sessions/:id` renders it. */
export type ProofOutcome =
  | { evaluation: 'pass'; token: string; tokenExpiresAt: string }
  | { evaluation: 'fail'; tokenExpiresAtNull?: boolean }

/**
 * The answer of `PATCH /sessions/:id`: `evaluation`, the proof echoed, the timestamps, and on a
 * pass the token and `token_expires_at` (`null` after an expired challenge, as upstream).
 */
export function renderProofAnswer(
  s: SessionView,
  proof: { message: string; signature: string },
  receivedAt: string,
  outcome: ProofOutcome,
): Obj {
  const attributes: Obj = { agent_id: s.agentId, evaluation: outcome.evaluation }
  if (outcome.evaluation === 'pass') attributes.token = outcome.token
  attributes.authentication = [
    {
      ...POP,
      chosen_parameters: { challenge: s.challengeB64 },
      data: { message: proof.message, signature: proof.signature },
    },
  ]
  attributes.created_at = s.createdAt
  attributes.challenges_expire_at = s.challengesExpireAt
  attributes.response_received_at = receivedAt
  if (outcome.evaluation === 'pass') attributes.token_expires_at = outcome.tokenExpiresAt
  else if (outcome.tokenExpiresAtNull) attributes.token_expires_at = null
  return { data: { type: 'session', id: s.sessionId, attributes } }
}
