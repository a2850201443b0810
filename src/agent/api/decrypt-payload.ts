/**
 * Payload decryption (wire-formats §4): the `payload` field is
 * `b64(IV(16) ‖ AES-GCM(K, IV, no AAD) ciphertext ‖ tag(16))`, AES-256 for a 32-byte K
 * (AES-128 for 16). The plaintext is returned to the caller and never logged.
 *
 * @module
 */

import { createDecipheriv } from 'node:crypto'
import { AgentError } from '../errors.ts'

/**
 * Decrypts a payload with K.
 *
 * @throws {AgentError} `ERR_AGENT_PAYLOAD` if it is too short or does not authenticate.
 */
export function decryptPayload(k: Uint8Array, b64: string): Uint8Array {
  const blob = Buffer.from(b64, 'base64')
  if (blob.byteLength < 32) throw new AgentError('ERR_AGENT_PAYLOAD', 'payload too short')
  try {
    const d = createDecipheriv(
      k.byteLength === 32 ? 'aes-256-gcm' : 'aes-128-gcm',
      k,
      blob.subarray(0, 16),
    )
    d.setAuthTag(blob.subarray(blob.byteLength - 16))
    return Buffer.concat([d.update(blob.subarray(16, blob.byteLength - 16)), d.final()])
  } catch (cause) {
    throw new AgentError('ERR_AGENT_PAYLOAD', 'payload does not decrypt with K', { cause })
  }
}
