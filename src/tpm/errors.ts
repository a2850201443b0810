/**
 * Typed errors of the TPM parsing and quote-verification layer.
 *
 * Every malformed structure, unsupported algorithm or failed quote check surfaces as a
 * {@link TpmError} with a stable `ERR_…` code, so callers (verifier, registrar, tenant) can map
 * failures without matching message text. All of them are client errors (HTTP 400): the bytes
 * came from an agent or a request body. Messages never contain key material or nonces.
 *
 * @module
 */

import { InputError } from '../errors.ts'

/** Stable codes carried by {@link TpmError}. */
export const TPM_ERROR_CODES = [
  /** A read ran past the end of the input. */
  'ERR_TPM_TRUNCATED',
  /** A structure was parsed but bytes were left over. */
  'ERR_TPM_TRAILING_BYTES',
  /** A field holds a value the TPM specification does not allow here. */
  'ERR_TPM_BAD_VALUE',
  /** A valid value this implementation does not support (algorithm, curve, scheme). */
  'ERR_TPM_UNSUPPORTED',
  /** The quote signature does not verify under the AK. */
  'ERR_QUOTE_SIGNATURE',
  /** TPMS_ATTEST.extraData is not the expected nonce. */
  'ERR_QUOTE_NONCE',
  /** TPMS_QUOTE_INFO.pcrDigest does not match the PCR values sent. */
  'ERR_QUOTE_PCR_DIGEST',
  /** TPMS_ATTEST.magic is not TPM_GENERATED_VALUE. */
  'ERR_QUOTE_MAGIC',
  /** TPMS_ATTEST.type is not the expected TPM_ST_ATTEST_* tag. */
  'ERR_QUOTE_TYPE',
  /** The quote string (`r<attest>:<sig>:<pcrblob>`) is malformed. */
  'ERR_QUOTE_FORMAT',
  /** The PCR selection in the attest differs from the PCR blob's selection. */
  'ERR_QUOTE_PCR_SELECTION',
  /** The signature's hash algorithm differs from the requested one. */
  'ERR_QUOTE_HASH_ALG',
  /** The signature scheme does not fit the AK (e.g. ECDSA signature for an RSA key). */
  'ERR_QUOTE_SIG_SCHEME',
  /** The PCR16 NK binding check failed. */
  'ERR_QUOTE_PCR16',
  /** An HMAC proof (auth_tag, challenge response) did not match. */
  'ERR_TPM_HMAC',
  /** A TPM2_Certify certifies another object than the expected one (proof of possession). */
  'ERR_CERTIFY_NAME',
] as const

/** A stable TPM error code. */
export type TpmErrorCode = (typeof TPM_ERROR_CODES)[number]

/**
 * A TPM parsing or verification failure (HTTP 400).
 *
 * @example
 * ```ts
 * throw new TpmError('ERR_TPM_TRUNCATED', 'need 4 bytes at offset 10, have 2')
 * ```
 */
export class TpmError extends InputError<TpmErrorCode> {
  override readonly name = 'TpmError'
}

/** True when `e` is a {@link TpmError} (optionally with the given code). */
export function isTpmError(e: unknown, code?: TpmErrorCode): e is TpmError {
  return e instanceof TpmError && (code === undefined || e.code === code)
}
