/**
 * The activation challenge: 32 random characters from `[A-Za-z0-9]`, as upstream's
 * `tpm_util.random_password(32)` (wire-formats §2.3). The registrar stores `base64(challenge)`
 * as the agent's `key`; the agent proves possession with HMAC-SHA384 keyed by that base64 text.
 *
 * @module
 */
import { randomPassword } from '../protocol/random-password.ts'

/** Length of a challenge in characters (one SHA-256 digest, the credential size limit). */
export const CHALLENGE_LENGTH = 32

/** Returns a fresh challenge: {@link CHALLENGE_LENGTH} unbiased random alphanumerics. */
export function generateChallenge(): string {
  return randomPassword(CHALLENGE_LENGTH)
}
