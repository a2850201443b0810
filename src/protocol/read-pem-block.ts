/**
 * Strict PEM (RFC 7468 §3, the "strict" form; CRLF line ends accepted): exactly one block with one
 * of the expected labels, nothing but whitespace around it, base64 lines with nothing else in
 * them, canonical padding. OpenSSL (and so `node:crypto`) skips any text around a block and reads
 * the first of several; a peer can then send megabytes that a lenient check passes and we store.
 *
 * @module
 */
import { ProtocolError } from './errors.ts'

/** One PEM block: its label and the DER bytes it encodes. */
export interface PemBlock {
  label: string
  der: Uint8Array
}

const BASE64_LINE = /^[A-Za-z0-9+/=]+$/

/** `text` without leading and trailing spaces, tabs and line ends (a loop: no regex backtracking). */
function trimWhitespace(text: string): string {
  const ws = (c: number) => c === 32 || c === 9 || c === 10 || c === 13
  let a = 0
  let b = text.length
  while (a < b && ws(text.charCodeAt(a))) a++
  while (b > a && ws(text.charCodeAt(b - 1))) b--
  return text.slice(a, b)
}

/**
 * Reads the one PEM block of `text`.
 *
 * @param labels the labels accepted (`PUBLIC KEY`, `CERTIFICATE`, …)
 * @param maxChars longest text accepted, whitespace included
 * @throws ProtocolError `ERR_PEM_TOO_LARGE`, `ERR_PEM_FORMAT`, `ERR_PEM_BASE64`
 *
 * @example
 * ```ts
 * const { der } = readPemBlock(body.mtls_cert, ['CERTIFICATE'], 64 * 1024)
 * ```
 */
export function readPemBlock(text: unknown, labels: readonly string[], maxChars: number): PemBlock {
  if (typeof text !== 'string') throw new ProtocolError('ERR_PEM_FORMAT', 'PEM is not a string')
  if (text.length > maxChars) {
    throw new ProtocolError('ERR_PEM_TOO_LARGE', `PEM longer than ${maxChars} characters`)
  }
  const lines = trimWhitespace(text).split(/\r?\n/)
  const begin = /^-----BEGIN ([A-Z0-9 ]+)-----$/.exec(lines[0] ?? '')
  const label = begin?.[1]
  if (label === undefined || !labels.includes(label) || lines.length < 3) {
    throw new ProtocolError('ERR_PEM_FORMAT', `not one PEM block of type ${labels.join(' or ')}`)
  }
  if (lines[lines.length - 1] !== `-----END ${label}-----`) {
    throw new ProtocolError('ERR_PEM_FORMAT', `text after the ${label} block, or no END line`)
  }
  const body = lines.slice(1, -1)
  if (!body.every((l) => BASE64_LINE.test(l))) {
    throw new ProtocolError('ERR_PEM_FORMAT', `${label} block holds more than base64 lines`)
  }
  try {
    return { label, der: Uint8Array.fromBase64(body.join(''), { lastChunkHandling: 'strict' }) }
  } catch (cause) {
    throw new ProtocolError('ERR_PEM_BASE64', `${label} block is not strict base64`, { cause })
  }
}
