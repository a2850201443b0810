/**
 * Typed errors of the fleet simulator (STYLE.md rule 4). Everything the simulator itself rejects
 * (bad options, a registrar that answers off-protocol, a key cache that does not parse) is a
 * {@link FleetError} with a stable `ERR_FLEET_…` code; TPM-level failures (a credential blob whose
 * HMAC does not verify, …) stay {@link TpmError}s from `src/tpm`.
 *
 * @module
 */

import { KeylimeError } from '../../../src/errors.ts'

/** Stable codes carried by {@link FleetError}. */
export const FLEET_ERROR_CODES = [
  /** An option or CLI argument is invalid. */
  'ERR_FLEET_CONFIG',
  /** The registrar refused or answered off-protocol during register/activate. */
  'ERR_FLEET_REGISTRATION',
  /** The verifier (or the agent, during the tenant steps) refused the enrolment. */
  'ERR_FLEET_ENROLMENT',
  /** The key cache file exists but cannot be used. */
  'ERR_FLEET_KEY_CACHE',
  /** A listener could not be started. */
  'ERR_FLEET_LISTEN',
] as const

/** A stable fleet error code. */
export type FleetErrorCode = (typeof FLEET_ERROR_CODES)[number]

/** An error raised by the fleet simulator. */
export class FleetError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: FleetErrorCode

  constructor(
    code: FleetErrorCode,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(code, message, { status: options.status ?? 500, cause: options.cause })
    this.name = 'FleetError'
  }
}
