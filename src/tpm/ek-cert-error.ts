/**
 * Typed errors of EK certificate handling (parsing, key binding, chain verification).
 *
 * All are client errors (HTTP 400): the certificate came from an agent. Messages name the
 * certificate by subject/issuer at most, never key material.
 *
 * @module
 */

import { InputError } from '../errors.ts'

/** Stable codes carried by {@link EkCertError}. */
export const EK_CERT_ERROR_CODES = [
  /** No certificate was given (empty string, `"emulator"`). */
  'ERR_EK_CERT_MISSING',
  /** Not a certificate, or not DER-compliant while `malformed_cert_action = reject`. */
  'ERR_EK_CERT_MALFORMED',
  /** No chain from the certificate to a trust anchor of the `tpm_cert_store`. */
  'ERR_EK_CERT_CHAIN',
  /** The certificate's public key is not the EK (`ek_tpm`). */
  'ERR_EK_CERT_KEY_MISMATCH',
  /** The certificate (or an issuer on its only path) is outside its validity period at `now`. */
  'ERR_EK_CERT_EXPIRED',
  /** The cert store directory cannot be read or holds no usable certificate. */
  'ERR_EK_CERT_STORE',
  /** A signature or key algorithm this implementation cannot verify. */
  'ERR_EK_CERT_UNSUPPORTED',
] as const

/** A stable EK certificate error code. */
export type EkCertErrorCode = (typeof EK_CERT_ERROR_CODES)[number]

/**
 * An EK certificate failure (HTTP 400).
 *
 * @example
 * ```ts
 * throw new EkCertError('ERR_EK_CERT_CHAIN', 'no trusted issuer for CN=swtpm-localca')
 * ```
 */
export class EkCertError extends InputError<EkCertErrorCode> {
  override readonly name = 'EkCertError'
}

/** True when `e` is an {@link EkCertError} (optionally with the given code). */
export function isEkCertError(e: unknown, code?: EkCertErrorCode): e is EkCertError {
  return e instanceof EkCertError && (code === undefined || e.code === code)
}
