/**
 * Upstream's `tpm_util.random_password(n)`: `n` characters of `[A-Za-z0-9]` from the CSPRNG,
 * without modulo bias (bytes ≥ 248 are redrawn). Every role draws its nonces and challenges here:
 * the verifier's quote nonces, the registrar's activation challenges, the tenant's nonces.
 *
 * Bytes come from `randomBytes` a 4 KiB block at a time: one call per ~200 verifier nonces
 * instead of one per round.
 *
 * @module
 */
import { randomBytes } from 'node:crypto'

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'
/** Largest multiple of 62 not above 256: bytes at or above it are discarded. */
const LIMIT = 248

let pool = Buffer.alloc(0)
let at = 0

/** `n` unbiased random alphanumerics. */
export function randomPassword(n: number): string {
  let s = ''
  while (s.length < n) {
    if (at >= pool.length) {
      pool = randomBytes(4096)
      at = 0
    }
    const b = pool[at++] as number
    if (b < LIMIT) s += ALPHABET[b % 62]
  }
  return s
}
