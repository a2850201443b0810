/**
 * Strict base64 for verifier API fields ({@link decodeBase64}) with upstream's error wording,
 * shared by the service and the `/verify/evidence` evaluation (which runs in a check worker and so
 * must not import the service).
 *
 * @module
 */
import { BadRequest } from '../errors.ts'
import { decodeBase64 } from './decode-base64.ts'
import { ProtocolError } from './errors.ts'

/**
 * Decodes `v`, a base64 string field named `field`.
 *
 * @throws BadRequest (`Exception error: …`, upstream's wording) when `v` is not a base64 string
 */
export function decodeBase64Field(v: unknown, field: string): Buffer {
  if (typeof v !== 'string')
    throw new BadRequest(`Exception error: ${field} must be a base64 string`)
  try {
    return decodeBase64(v, { what: field })
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    throw new BadRequest(`Exception error: ${e.message}`, { cause: e })
  }
}
