/**
 * The HMAC-SHA384 proofs of Keylime's registration and key exchange:
 * - registrar `auth_tag`: `hex(HMAC-SHA384(key = ASCII(base64(challenge)), msg = ASCII(uuid)))`
 *   (wire-formats §2.4; the key is the base64 *text*, not its decoded bytes);
 * - tenant/agent `auth_tag` and `/keys/verify`: `hex(HMAC-SHA384(K, uuid | challenge))` (§4).
 * Hex is lowercase (Python `hexdigest()`); comparison is constant time.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from 'node:crypto'

/** HMAC-SHA384 output size in bytes. */
const TAG_BYTES = 48

function toBytes(v: string | Uint8Array): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v
}

/** Computes `hex(HMAC-SHA384(key, msg))`, lowercase. Strings are taken as UTF-8 bytes. */
export function computeAuthTag(key: string | Uint8Array, msg: string | Uint8Array): string {
  return createHmac('sha384', toBytes(key)).update(toBytes(msg)).digest('hex')
}

/**
 * Checks a hex HMAC-SHA384 proof in constant time. Case-insensitive hex; anything that is not
 * 96 hex digits is simply false (never throws).
 */
export function verifyHmacProof(
  key: string | Uint8Array,
  msg: string | Uint8Array,
  hex: string,
): boolean {
  if (typeof hex !== 'string' || hex.length !== TAG_BYTES * 2 || !/^[0-9a-fA-F]+$/.test(hex))
    return false
  const got = Buffer.from(hex, 'hex')
  const expected = createHmac('sha384', toBytes(key)).update(toBytes(msg)).digest()
  return got.byteLength === TAG_BYTES && timingSafeEqual(got, expected)
}
