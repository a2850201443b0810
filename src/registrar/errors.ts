/**
 * Typed errors of the registrar role (STYLE.md rule 4). Each carries a stable `ERR_REGISTRAR_…`
 * code and the HTTP status upstream Keylime answers in the same situation
 * (`keylime/web/registrar/agents_controller.py`); the app's `onError` turns them into the
 * `{code, status, results}` envelope.
 *
 * Messages name agents and fields, never keys, challenges or auth tags.
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'

/** Stable codes carried by {@link RegistrarError}, with their HTTP status. */
export const REGISTRAR_ERROR_STATUS = {
  /** The agent id does not match `[\w.-]+` or is longer than 80 characters. */
  ERR_REGISTRAR_AGENT_ID: 400,
  /** A registration field is missing, mis-encoded or structurally invalid. */
  ERR_REGISTRAR_INVALID_DATA: 400,
  /** The AK is not a restricted, TPM-bound signing key (attribute check). */
  ERR_REGISTRAR_AK_ATTRIBUTES: 400,
  /** The EK certificate does not certify `ek_tpm`, or is not trusted where trust is required. */
  ERR_REGISTRAR_EK_CERT: 400,
  /** IAK/IDevID certificate, key or TPM2_Certify binding check failed. */
  ERR_REGISTRAR_IAK: 400,
  /** Re-registration with a different `ek_tpm`, `ekcert` or `aik_tpm` (upstream #1820 fix). */
  ERR_REGISTRAR_IDENTITY_CHANGED: 403,
  /** No registration with this agent id. */
  ERR_REGISTRAR_AGENT_NOT_FOUND: 404,
  /** The agent registered but never activated. */
  ERR_REGISTRAR_AGENT_NOT_ACTIVE: 404,
  /** The activation `auth_tag` did not match; nothing changed (upstream deletes the record). */
  ERR_REGISTRAR_AUTH_TAG: 400,
  /** An admin route was called on the plain-HTTP listener. */
  ERR_REGISTRAR_MTLS_REQUIRED: 400, // upstream `https_required`
} as const

/** A registrar error code. */
export type RegistrarErrorCode = keyof typeof REGISTRAR_ERROR_STATUS

/**
 * A registrar failure with an upstream-compatible HTTP status.
 *
 * @example
 * ```ts
 * throw new RegistrarError('ERR_REGISTRAR_AGENT_NOT_FOUND', `Agent with ID '${id}' not found`)
 * ```
 */
export class RegistrarError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: RegistrarErrorCode

  constructor(code: RegistrarErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, status: REGISTRAR_ERROR_STATUS[code] })
    this.name = 'RegistrarError'
  }
}

/** True when `e` is a {@link RegistrarError} (optionally with the given code). */
export function isRegistrarError(e: unknown, code?: RegistrarErrorCode): e is RegistrarError {
  return e instanceof RegistrarError && (code === undefined || e.code === code)
}

/** Upstream's status prefix for a rejected registration (`agents_controller.py` `create`). */
export const INVALID_DATA_STATUS = 'Could not register agent with invalid data'

/** A 400 for a rejected registration: upstream's status text followed by the reason. */
export function invalidData(
  reason: string,
  code: RegistrarErrorCode = 'ERR_REGISTRAR_INVALID_DATA',
  cause?: unknown,
): RegistrarError {
  return new RegistrarError(code, `${INVALID_DATA_STATUS}: ${reason}`, { cause })
}
