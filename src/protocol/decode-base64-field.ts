/**
 * Strict base64 for verifier API fields (standard alphabet, padding, whitespace ignored), shared
 * by the service and the `/verify/evidence` evaluation (which runs in a check worker and so must
 * not import the service).
 *
 * @module
 */
import { BadRequest } from '../errors.ts'

const B64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * Decodes `v`, a base64 string field named `field`.
 *
 * @throws BadRequest (`Exception error: …`, upstream's wording) when `v` is not a base64 string
 */
export function decodeBase64Field(v: unknown, field: string): Buffer {
  if (typeof v !== 'string')
    throw new BadRequest(`Exception error: ${field} must be a base64 string`)
  const s = v.replace(/\s+/g, '')
  if (s.length % 4 !== 0 || !B64.test(s)) {
    throw new BadRequest(`Exception error: ${field} is not valid base64`)
  }
  return Buffer.from(s, 'base64')
}
