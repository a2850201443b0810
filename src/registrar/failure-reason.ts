/**
 * Why a registrar request failed, as the `reason` label of `keylime_registrar_failures_total`:
 * from the typed error a handler threw (`errors.ts`, the body and JSON errors of `src/http`, a
 * database outage), else from the status of an answer made without one (the body limit's
 * refusals, an unknown route). The label set is this closed list.
 *
 * @module
 */
import { asDatabaseUnavailable } from '../db/database-unavailable.ts'
import { isKeylimeError } from '../errors.ts'

/** Every value of the `reason` label. */
export const REGISTRAR_FAILURE_REASONS = [
  'malformed_request',
  'bad_agent_id',
  'ak_rejected',
  'ek_rejected',
  'iak_rejected',
  'identity_changed',
  'bad_auth_tag',
  'agent_not_found',
  'agent_not_active',
  'mtls_required',
  'too_large',
  'body_timeout',
  'busy',
  'client_aborted',
  'database_unavailable',
  'unknown_route',
  'internal',
  'other',
] as const

/** A `reason` label value. */
export type RegistrarFailureReason = (typeof REGISTRAR_FAILURE_REASONS)[number]

/** The reason of each error code the registrar's requests can fail with. */
const REASON_OF_CODE: Readonly<Record<string, RegistrarFailureReason>> = {
  ERR_REGISTRAR_INVALID_DATA: 'malformed_request',
  ERR_BAD_REQUEST: 'malformed_request',
  ERR_INVALID_JSON: 'malformed_request',
  ERR_UNSUPPORTED_MEDIA_TYPE: 'malformed_request',
  ERR_REGISTRAR_AGENT_ID: 'bad_agent_id',
  ERR_REGISTRAR_AK_ATTRIBUTES: 'ak_rejected',
  ERR_REGISTRAR_EK_CERT: 'ek_rejected',
  ERR_REGISTRAR_IAK: 'iak_rejected',
  ERR_REGISTRAR_IDENTITY_CHANGED: 'identity_changed',
  ERR_REGISTRAR_AUTH_TAG: 'bad_auth_tag',
  ERR_REGISTRAR_AGENT_NOT_FOUND: 'agent_not_found',
  ERR_REGISTRAR_AGENT_NOT_ACTIVE: 'agent_not_active',
  ERR_REGISTRAR_MTLS_REQUIRED: 'mtls_required',
  ERR_REGISTRAR_BUSY: 'busy',
  ERR_BODY_TOO_LARGE: 'too_large',
  ERR_BODY_TIMEOUT: 'body_timeout',
  ERR_UPLOADS_BUSY: 'busy',
  ERR_CLIENT_ABORTED: 'client_aborted',
}

/** The reason of an answer made without an error (`limit-body.ts` refusals, no route). */
const REASON_OF_STATUS: Readonly<Record<number, RegistrarFailureReason>> = {
  404: 'unknown_route',
  408: 'body_timeout',
  413: 'too_large',
  503: 'busy',
}

/** The reason of a failed answer (`status` ≥ 400) and the error behind it, if any. */
export function failureReason(status: number, error: unknown): RegistrarFailureReason {
  if (error !== undefined) {
    if (asDatabaseUnavailable(error) !== undefined) return 'database_unavailable'
    if (isKeylimeError(error)) {
      const known = REASON_OF_CODE[error.code]
      if (known !== undefined) return known
    } else if (error instanceof Error && error.name === 'AbortError') return 'client_aborted'
    return status >= 500 ? 'internal' : 'other'
  }
  return REASON_OF_STATUS[status] ?? (status >= 500 ? 'internal' : 'other')
}
