/**
 * Typed errors of the certificate authority (`src/ca`).
 *
 * Every CA failure is a {@link CaError} with a stable `ERR_CA_…` code so callers (the `keylime_ca`
 * command, the cv_ca bootstrap in the verifier and registrar, the tenant) can react without parsing
 * prose. Messages name files and configuration options, never key material or passwords.
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'

/** Stable codes of {@link CaError}. */
export const CA_ERROR_CODES = {
  /** A required file (CA certificate, key, CRL, private.yml, TLS file) is missing. */
  fileMissing: 'ERR_CA_FILE_MISSING',
  /** `private.yml` could not be decrypted: wrong CA password (or a tampered file). */
  badPassword: 'ERR_CA_BAD_PASSWORD',
  /** A file exists but its content is malformed (PEM, YAML, certificate). */
  malformed: 'ERR_CA_MALFORMED',
  /** An argument or setting is invalid (name, serial, option value). */
  invalidInput: 'ERR_CA_INVALID_INPUT',
  /** A certificate with this name does not exist in the CA directory. */
  unknownName: 'ERR_CA_UNKNOWN_NAME',
  /** A private key is encrypted and no (or a wrong) password was given. */
  keyPassword: 'ERR_CA_KEY_PASSWORD',
  /** The CA directory lock could not be acquired in time. */
  lockTimeout: 'ERR_CA_LOCK_TIMEOUT',
  /** The CA is not initialised in the directory (no cacert.crt / private.yml). */
  notInitialized: 'ERR_CA_NOT_INITIALIZED',
  /** `init` found a CA in the directory and was not told to replace it (`--force`). */
  exists: 'ERR_CA_EXISTS',
} as const

/** One of the {@link CA_ERROR_CODES} values. */
export type CaErrorCode = (typeof CA_ERROR_CODES)[keyof typeof CA_ERROR_CODES]

/**
 * A failure of the certificate authority.
 *
 * @example
 * ```ts
 * throw new CaError('ERR_CA_BAD_PASSWORD', 'invalid password for the CA keystore private.yml')
 * ```
 */
export class CaError extends KeylimeError {
  declare readonly code: CaErrorCode

  constructor(
    code: CaErrorCode,
    message: string,
    options: { cause?: unknown; status?: number } = {},
  ) {
    super(code, message, { status: options.status ?? 500, cause: options.cause })
    this.name = 'CaError'
  }
}
