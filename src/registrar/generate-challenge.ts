/**
 * The activation challenge: 32 random characters from `[A-Za-z0-9]`, as upstream's
 * `tpm_util.random_password(32)` (wire-formats §2.3). The registrar stores `base64(challenge)`
 * as the agent's `key`; the agent proves possession with HMAC-SHA384 keyed by that base64 text.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
/** Largest multiple of 62 below 256: bytes at or above it are discarded (no modulo bias). */
const LIMIT = 248

/** Length of a challenge in characters (one SHA-256 digest, the credential size limit). */
export const CHALLENGE_LENGTH = 32

/** Returns a fresh challenge: {@link CHALLENGE_LENGTH} unbiased random alphanumerics. */
export function generateChallenge(): string {
  let out = ''
  while (out.length < CHALLENGE_LENGTH) {
    for (const b of randomBytes(48)) {
      if (b >= LIMIT) continue
      out += ALPHABET[b % 62]
      if (out.length === CHALLENGE_LENGTH) break
    }
  }
  return out
}
