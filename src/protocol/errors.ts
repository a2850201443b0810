/**
 * Typed errors of the shared protocol layer: key material, base64 and other conventions every role reads
 * from agents and clients. Messages never contain the key material itself.
 *
 * @module
 */
import { InputError } from '../errors.ts'

/** Stable codes carried by {@link ProtocolError}. */
export const PROTOCOL_ERROR_CODES = [
  /** PEM text longer than allowed for its kind. */
  'ERR_PEM_TOO_LARGE',
  /** Not exactly one PEM block of an expected label with only whitespace around it. */
  'ERR_PEM_FORMAT',
  /** The PEM body is not strict base64 (alphabet, padding, trailing bits). */
  'ERR_PEM_BASE64',
  /** The DER inside is not a key or certificate of the expected kind, or not canonical. */
  'ERR_PEM_CONTENT',
  /** A key of an algorithm or size that cannot be used here. */
  'ERR_KEY_UNSUPPORTED',
  /** Base64 text with characters outside the alphabet, or bad padding. */
  'ERR_BASE64_FORMAT',
  /** Base64 text longer than its field allows. */
  'ERR_BASE64_TOO_LONG',
] as const

/** A stable protocol error code. */
export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number]

/** Malformed or unusable key material or encoding (HTTP 400: it came from an agent or a request body). */
export class ProtocolError extends InputError<ProtocolErrorCode> {
  override readonly name = 'ProtocolError'
}
