/**
 * The one strict base64 decoder for text that comes from outside: registration bodies, verifier
 * API fields, agent and registrar answers the tenant reads, evidence logs. Standard alphabet
 * (RFC 4648 §4) with `=` padding to a multiple of four; whitespace (line breaks of wrapped
 * base64) is ignored. Anything else is refused instead of being skipped, as `Buffer.from(s,
 * 'base64')` would skip it.
 *
 * @module
 */
import { ProtocolError } from './errors.ts'

/** Options of {@link decodeBase64}. */
export interface DecodeBase64Options {
  /** What the text is, for the message (`ak_tpm`, `mb_log`); default `base64 text`. */
  what?: string
  /** Most base64 characters accepted (whitespace not counted); default unlimited. */
  maxLength?: number
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decodes `text` strictly.
 *
 * @throws {ProtocolError} `ERR_BASE64_TOO_LONG` (`<what> is longer than <n> base64 characters`)
 *   or `ERR_BASE64_FORMAT` (`<what> is not valid base64`): HTTP 400.
 */
export function decodeBase64(text: string, options: DecodeBase64Options = {}): Buffer {
  const what = options.what ?? 'base64 text'
  const s = text.replace(/\s+/g, '')
  const max = options.maxLength
  if (max !== undefined && s.length > max)
    throw new ProtocolError(
      'ERR_BASE64_TOO_LONG',
      `${what} is longer than ${max} base64 characters`,
    )
  if (s.length % 4 !== 0 || !B64.test(s))
    throw new ProtocolError('ERR_BASE64_FORMAT', `${what} is not valid base64`)
  return Buffer.from(s, 'base64')
}
