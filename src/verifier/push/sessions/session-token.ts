/**
 * Push-mode bearer tokens: `<session_id>.<base64url of 32 random bytes>`, as upstream
 * (`keylime/crypto.py::generate_session_token`), so the session id is read from the token itself.
 *
 * Stored as HMAC-SHA256 under a per-installation key ({@link TokenHasher}), not upstream's
 * PBKDF2-HMAC-SHA256 with 600 000 iterations: a token carries 256 random bits, so a slow hash
 * adds nothing against guessing and costs ~0.3 s of CPU per uncached check (a denial of service
 * by garbage tokens); a keyed hash also makes a stolen `sessions` table useless without the key.
 *
 * @module
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'

/** Longest token accepted (a UUID, a dot, 43 base64url characters; room for variants). */
export const MAX_TOKEN_LENGTH = 128

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const SECRET = /^[A-Za-z0-9_-]{16,}$/

/** A new token for session `sessionId` (a UUID). */
export function newSessionToken(sessionId: string): string {
  return `${sessionId}.${randomBytes(32).toString('base64url')}`
}

/** The session id of a well-formed token (lower-cased UUID), or undefined. */
export function tokenSessionId(token: string): string | undefined {
  if (token.length > MAX_TOKEN_LENGTH) return undefined
  const dot = token.indexOf('.')
  if (dot < 0) return undefined
  const id = token.slice(0, dot)
  if (!UUID.test(id) || !SECRET.test(token.slice(dot + 1))) return undefined
  return id.toLowerCase()
}

/**
 * HMAC-SHA256 of tokens under the installation's key (`token-key-file.ts`). `keyId` names the key
 * (stored in `token_salt`) so that a verifier holding another key can tell why a token fails.
 */
export class TokenHasher {
  readonly #key: Buffer
  /** 16 hex characters identifying the key (not secret: a hash of a hash of it). */
  readonly keyId: string

  constructor(key: Uint8Array) {
    if (key.byteLength < 32) throw new Error('session token key must be at least 32 bytes')
    this.#key = Buffer.from(key)
    const inner = createHmac('sha256', this.#key).update('keylime-ts session token key id').digest()
    this.keyId = createHash('sha256').update(inner).digest('hex').slice(0, 16)
  }

  /** The stored form of `token`: lower-case hex HMAC-SHA256. */
  hash(token: string): string {
    return createHmac('sha256', this.#key).update(token, 'utf8').digest('hex')
  }

  /** Whether `token` hashes to `stored`, compared in constant time. */
  matches(token: string, stored: string): boolean {
    const mine = Buffer.from(this.hash(token), 'hex')
    const theirs = /^[0-9a-f]{64}$/.test(stored) ? Buffer.from(stored, 'hex') : Buffer.alloc(32)
    return timingSafeEqual(mine, theirs) && stored.length === 64
  }
}
