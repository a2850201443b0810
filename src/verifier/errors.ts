/**
 * Typed errors of the verifier role (STYLE.md rule 4), with stable `ERR_VERIFIER_…` codes.
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'

/** Stable codes carried by {@link VerifierError}, with their HTTP status. */
export const VERIFIER_ERROR_STATUS = {
  /**
   * A check threw instead of returning a verdict (a bug, or a resource limit in a check worker).
   * The round becomes the agent's `internal.verifier.exception` failure; it is never re-run.
   */
  ERR_VERIFIER_CHECK_FAILED: 500,
} as const

/** A verifier error code. */
export type VerifierErrorCode = keyof typeof VERIFIER_ERROR_STATUS

/** A verifier failure. */
export class VerifierError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: VerifierErrorCode

  constructor(code: VerifierErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(code, message, { ...options, status: VERIFIER_ERROR_STATUS[code] })
    this.name = 'VerifierError'
  }
}
