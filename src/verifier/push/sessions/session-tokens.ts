/**
 * Bearer token checks (push-protocol.md §1.5.2): the session id is read from the token, its row
 * found (in a bounded cache, else the database), and the token's HMAC compared with the stored
 * hash in constant time. Then the session must be active and unexpired. The answer is upstream's
 * 401 detail word for word.
 *
 * The cache holds hashes, never tokens, and trusts an entry for {@link CACHE_TTL_MS} at most: a
 * session deleted or extended by another verifier sharing the database is seen within that time.
 * An entry that looks expired is re-read before the token is refused (another verifier may have
 * extended it).
 *
 * @module
 */
import type { Logger } from '../../../log/logger.ts'
import { BoundedCache } from '../../../protocol/bounded-cache.ts'
import type { SessionRow, SessionStore } from '../../store/sessions.ts'
import { type TokenHasher, tokenSessionId } from './session-token.ts'

/** How long a cached session is trusted without reading the database again. */
export const CACHE_TTL_MS = 5000

/** Upstream's 401 details (`ActionHandler._validate_authentication`). */
export const TOKEN_REFUSALS = {
  invalid: 'Invalid authentication token',
  inactive: 'Authentication session not active',
  expired: 'Authentication token expired',
  header: 'Invalid Authorization header format',
} as const

/** The outcome of a token check. */
export type TokenCheck =
  | { ok: true; agentId: string }
  | { ok: false; detail: (typeof TOKEN_REFUSALS)[keyof typeof TOKEN_REFUSALS] }

interface Cached {
  agentId: string
  tokenHash: string
  keyId: string
  active: boolean
  /** Epoch ms; NaN when none. */
  expiresAt: number
  readAt: number
}

function cached(row: SessionRow, now: number): Cached {
  return {
    agentId: row.agent_id ?? '',
    tokenHash: row.token_hash,
    keyId: row.token_salt,
    active: row.active === true,
    expiresAt: row.token_expires_at ? Date.parse(row.token_expires_at) : Number.NaN,
    readAt: now,
  }
}

/** Checks bearer tokens against the `sessions` table. */
export class SessionTokens {
  readonly #store: SessionStore
  readonly #hasher: TokenHasher
  readonly #log: Logger
  readonly #cache = new BoundedCache<Cached>({
    maxEntries: 100_000,
    maxBytes: 64 * 1024 * 1024,
    sizeOf: (c) => 200 + c.agentId.length,
  })
  #keyWarned = false

  constructor(store: SessionStore, hasher: TokenHasher, log: Logger) {
    this.#store = store
    this.#hasher = hasher
    this.#log = log
  }

  /** Checks `token` at `now` (epoch ms). */
  async check(token: string, now: number = Date.now()): Promise<TokenCheck> {
    const id = tokenSessionId(token)
    if (id === undefined) return { ok: false, detail: TOKEN_REFUSALS.invalid }
    let entry = this.#cache.get(id)
    if (entry === undefined || now - entry.readAt > CACHE_TTL_MS || !(entry.expiresAt >= now)) {
      const row = await this.#store.get(id)
      entry = row === undefined ? undefined : cached(row, now)
      if (entry === undefined) this.#cache.delete(id)
      else this.#cache.set(id, entry)
    }
    if (entry === undefined || !this.#hasher.matches(token, entry.tokenHash)) {
      this.#warnOtherKey(entry)
      return { ok: false, detail: TOKEN_REFUSALS.invalid }
    }
    if (!entry.active) return { ok: false, detail: TOKEN_REFUSALS.inactive }
    if (!(entry.expiresAt >= now)) return { ok: false, detail: TOKEN_REFUSALS.expired }
    this.#log.debug(`Authentication token validated for agent '${entry.agentId}'`)
    return { ok: true, agentId: entry.agentId }
  }

  /** Drops sessions from the cache (deleted here). */
  forget(sessionIds: readonly string[]): void {
    for (const id of sessionIds) this.#cache.delete(id)
  }

  /** The stored form of a new token. */
  hash(token: string): string {
    return this.#hasher.hash(token)
  }

  /** The id of the key the hashes are made with (stored in `token_salt`). */
  get keyId(): string {
    return this.#hasher.keyId
  }

  /** A token hashed under another key means verifiers do not share the key file: say so once. */
  #warnOtherKey(entry: Cached | undefined): void {
    if (this.#keyWarned || entry === undefined || !entry.active) return
    // upstream's PBKDF2 rows carry a 32-hex salt: those tokens just fail, the agent re-authenticates
    if (entry.keyId.length !== 16 || entry.keyId === this.#hasher.keyId) return
    this.#keyWarned = true
    this.#log.warn(
      'a session token was hashed with another session_token_key: verifiers sharing this database must share the key file (docs/push-mode.md)',
      { key_id: this.#hasher.keyId, other_key_id: entry.keyId },
    )
  }
}
