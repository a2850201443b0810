/**
 * JSON:API documents of the push attestation routes (push-protocol.md §1.5.1, upstream
 * `web/base/api_messages`): `application/vnd.api+json` in and out, success documents with
 * `links.self` and `jsonapi.version`, and error documents `{errors:[{status, code, detail,
 * source?}]}`. {@link PushError} is the typed error these routes throw; {@link pushErrorResponse}
 * renders it (and any other error) in that shape, never as the v2 envelope.
 *
 * @module
 */
import { isKeylimeError, KeylimeError } from '../../errors.ts'

/** The JSON:API media type. */
export const JSON_API = 'application/vnd.api+json'

/** The `jsonapi` member upstream sends. */
const JSONAPI_MEMBER = { version: '1.1' }

/** Upstream's `api_code`s of the push routes. */
export type PushErrorCode =
  | 'not_found'
  | 'conflict'
  | 'premature_attestation'
  | 'verification_in_progress'
  | 'attestation_failed_retry'
  | 'agent_attestations_disabled'
  | 'old_attestation'
  | 'evidence_immutable'
  | 'challenges_expired'
  | 'invalid_request'
  | 'invalid_resource_data'
  | 'format_not_allowed'
  | 'malformed_params'

/** One problem of a request, with the JSON pointer of the offending member. */
export interface PushProblem {
  pointer: string
  detail: string
}

/** An error of a push route, rendered as a JSON:API error document. */
export class PushError extends KeylimeError {
  /** The api_code. */
  readonly apiCode: PushErrorCode
  /** Seconds for `Retry-After` (429, 503). */
  readonly retryAfter: number | undefined
  /** Pointed problems (422); empty for a single-detail error. */
  readonly problems: readonly PushProblem[]

  constructor(
    status: number,
    apiCode: PushErrorCode,
    detail: string,
    extra: { retryAfter?: number; problems?: readonly PushProblem[] } = {},
  ) {
    super(`ERR_PUSH_${apiCode.toUpperCase()}`, detail, { status })
    this.name = 'PushError'
    this.apiCode = apiCode
    this.retryAfter = extra.retryAfter
    this.problems = extra.problems ?? []
  }
}

/** 422 with one error per problem (upstream `from_record_errors`). */
export function invalidData(problems: readonly PushProblem[]): PushError {
  const first = problems[0]?.detail ?? 'invalid data'
  return new PushError(422, 'invalid_resource_data', first, { problems })
}

/** A JSON:API response with `links.self` (the request path) and `jsonapi`. */
export function jsonApiResponse(
  status: number,
  body: Record<string, unknown>,
  self: string,
  headers: Record<string, string> = {},
): Response {
  const doc = { ...body, links: { self }, jsonapi: JSONAPI_MEMBER }
  return new Response(status === 204 ? null : JSON.stringify(doc), {
    status,
    headers: { 'content-type': JSON_API, ...headers },
  })
}

/** The JSON:API error document of any error a push route throws. */
export function pushErrorResponse(err: unknown, self: string): Response {
  if (err instanceof PushError) {
    const status = String(err.status)
    const errors =
      err.problems.length > 0
        ? err.problems.map((p) => ({
            status,
            code: err.apiCode,
            detail: p.detail,
            source: { pointer: p.pointer },
          }))
        : [{ status, code: err.apiCode, detail: err.message }]
    const headers: Record<string, string> = {}
    if (err.retryAfter !== undefined) headers['retry-after'] = String(err.retryAfter)
    return jsonApiResponse(err.status, { errors }, self, headers)
  }
  if (isKeylimeError(err) && err.status < 500) {
    const code =
      err.status === 404 ? 'not_found' : err.status === 409 ? 'conflict' : 'invalid_request'
    const errors = [{ status: String(err.status), code, detail: err.message }]
    return jsonApiResponse(err.status, { errors }, self)
  }
  throw err
}
