/**
 * Typed errors of the IMA layer: measurement-list parsing, runtime-policy validation and the
 * runtime-policy tools. Every malformed line, policy or signature envelope surfaces as an
 * {@link ImaError} with a stable `ERR_IMA_…` code; parser errors carry the 1-based line (or entry)
 * number so an operator can find the offending entry. Messages never contain key material.
 *
 * @module
 */

import { KeylimeError } from '../errors.ts'

/** Stable codes carried by {@link ImaError}. */
export const IMA_ERROR_CODES = [
  /** A measurement-list line does not have the `pcr hash template fields…` shape. */
  'ERR_IMA_LINE_FORMAT',
  /** A hex field (template hash, digest, signature, buffer) is not valid hex or has a bad size. */
  'ERR_IMA_BAD_HEX',
  /** The template name is unknown. */
  'ERR_IMA_UNKNOWN_TEMPLATE',
  /** A field of the template data is malformed (digest prefix, name length, signature header). */
  'ERR_IMA_BAD_FIELD',
  /** The binary list is truncated or a length field is out of bounds. */
  'ERR_IMA_BINARY_FORMAT',
  /** A configured limit (line length, entry count, name length) was exceeded. */
  'ERR_IMA_LIMIT',
  /** A hash algorithm that cannot be used here. */
  'ERR_IMA_UNSUPPORTED_ALG',
  /** The runtime policy is not JSON or does not match the schema (message holds the JSON path). */
  'ERR_IMA_POLICY_INVALID',
  /** An exclude regular expression does not compile. */
  'ERR_IMA_POLICY_REGEX',
  /** The runtime policy signature (DSSE) is missing, malformed or does not verify. */
  'ERR_IMA_POLICY_SIGNATURE',
  /** The `verification-keys` keyring of a policy is malformed. */
  'ERR_IMA_KEYRING',
  /** The stored per-agent IMA state is malformed. */
  'ERR_IMA_STATE',
  /** A policy tool failed (I/O, bad option value). */
  'ERR_IMA_TOOL',
  /** An initramfs image is not a well-formed sequence of cpio "newc" archives. */
  'ERR_IMA_CPIO_FORMAT',
  /** An initramfs segment uses a compression this runtime cannot decompress (xz, lz4, …). */
  'ERR_IMA_UNSUPPORTED_COMPRESSION',
] as const

/** A stable IMA error code. */
export type ImaErrorCode = (typeof IMA_ERROR_CODES)[number]

/**
 * An IMA parsing, policy or tool failure (HTTP 400: the bytes came from an agent or a request).
 *
 * @example
 * ```ts
 * throw new ImaError('ERR_IMA_LINE_FORMAT', 'expected 5 fields', { line: 12 })
 * ```
 */
export class ImaError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: ImaErrorCode
  /** 1-based line (ASCII list) or entry (binary list) number, when the error is about one. */
  readonly line: number | undefined

  constructor(
    code: ImaErrorCode,
    message: string,
    options: { line?: number; cause?: unknown; status?: number } = {},
  ) {
    super(code, options.line === undefined ? message : `line ${options.line}: ${message}`, {
      status: options.status ?? 400,
      cause: options.cause,
    })
    this.name = 'ImaError'
    this.line = options.line
  }
}

/** True when `e` is an {@link ImaError} (optionally with the given code). */
export function isImaError(e: unknown, code?: ImaErrorCode): e is ImaError {
  return e instanceof ImaError && (code === undefined || e.code === code)
}
