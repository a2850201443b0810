/**
 * Push-mode authentication sessions (`sessions`, push-protocol.md §1.5.3–1.5.4). Unlike upstream,
 * which keeps a challenge in one process's shared memory, a pending session is a row too, so a
 * challenge issued by one verifier can be answered on another sharing the database.
 *
 * | state | `active` | `token_hash` | `token_salt` | set |
 * | --- | --- | --- | --- | --- |
 * | pending (challenge issued) | false | `''` | `''` | nonce, `nonce_*` |
 * | active (proof accepted) | true | HMAC-SHA256(key, token), hex | the key's id | `pop_received_at`, `token_expires_at`, `ak_*`, algorithms |
 *
 * Timestamps are text in upstream's one format (`protocol/iso-micros.ts`), so SQL compares them
 * as text. The token itself is never stored.
 *
 * @module
 */
import { and, eq, lt, ne, or, sql } from 'drizzle-orm'
import { type Db, sessions } from '../../db/index.ts'
import type { Logger } from '../../log/logger.ts'
import { isoMicros } from '../../protocol/iso-micros.ts'

/** A `sessions` row. */
export type SessionRow = typeof sessions.$inferSelect

/** What an accepted proof writes. */
export interface SessionActivation {
  tokenHash: string
  keyId: string
  hashAlgorithm: string
  signingScheme: string
  akAttest: Uint8Array
  akSign: Uint8Array
  popReceivedAt: string
  tokenExpiresAt: string
}

/** `[verifier]` options of token extension (set by the verifier at start). */
export interface SessionSettings {
  /** `session_lifetime`, seconds. */
  sessionLifetime: number
  /** `extend_token_on_attestation`. */
  extendOnAttestation: boolean
  /** Where an extension is logged (upstream's message, which keylime-tests look for). */
  log?: Logger
}

/** The session rows of the verifier. */
export class SessionStore {
  readonly db: Db
  /** Token extension settings; upstream's defaults until the verifier sets its own. */
  settings: SessionSettings = { sessionLifetime: 180, extendOnAttestation: true }
  /** Told the ids of active sessions this store deleted (the token cache drops them at once). */
  onDeleted: (sessionIds: readonly string[]) => void = () => {}

  constructor(db: Db) {
    this.db = db
  }

  /** Stores a new pending session (a challenge). */
  async insertPending(row: {
    sessionId: string
    agentId: string
    nonce: Uint8Array
    createdAt: string
    expiresAt: string
  }): Promise<void> {
    await this.db.insert(sessions).values({
      session_id: row.sessionId,
      token_hash: '',
      token_salt: '',
      agent_id: row.agentId,
      active: false,
      nonce: Buffer.from(row.nonce),
      nonce_created_at: row.createdAt,
      nonce_expires_at: row.expiresAt,
    })
  }

  /** One session, or undefined. */
  async get(sessionId: string): Promise<SessionRow | undefined> {
    const r = await this.db.select().from(sessions).where(eq(sessions.session_id, sessionId))
    return r[0]
  }

  /** Deletes a pending session; whether it was still pending (not taken by a concurrent answer). */
  async deletePending(sessionId: string): Promise<boolean> {
    const r = await this.db
      .delete(sessions)
      .where(and(eq(sessions.session_id, sessionId), eq(sessions.active, false)))
      .returning({ id: sessions.session_id })
    return r.length > 0
  }

  /**
   * Turns the pending session into the agent's one active session: its other active sessions are
   * deleted in the same transaction. Returns the deleted sessions' ids, or undefined when the
   * session was no longer pending (answered concurrently, possibly on another verifier).
   */
  async activate(
    sessionId: string,
    agentId: string,
    a: SessionActivation,
  ): Promise<string[] | undefined> {
    return this.db
      .transaction(async (tx) => {
        const r = await tx
          .update(sessions)
          .set({
            active: true,
            token_hash: a.tokenHash,
            token_salt: a.keyId,
            hash_algorithm: a.hashAlgorithm,
            signing_scheme: a.signingScheme,
            ak_attest: Buffer.from(a.akAttest),
            ak_sign: Buffer.from(a.akSign),
            pop_received_at: a.popReceivedAt,
            token_expires_at: a.tokenExpiresAt,
          })
          .where(and(eq(sessions.session_id, sessionId), eq(sessions.active, false)))
          .returning({ id: sessions.session_id })
        if (r.length === 0) return undefined
        const gone = await tx
          .delete(sessions)
          .where(
            and(
              eq(sessions.agent_id, agentId),
              eq(sessions.active, true),
              ne(sessions.session_id, sessionId),
            ),
          )
          .returning({ id: sessions.session_id })
        return gone.map((g) => g.id)
      })
      .then((gone) => {
        if (gone !== undefined && gone.length > 0) this.onDeleted(gone)
        return gone
      })
  }

  /**
   * Deletes the agent's pending sessions whose challenge expired and sessions whose token
   * expired (upstream's `delete_stale`), as of `now` (epoch ms).
   */
  async deleteStale(agentId: string, now: number): Promise<void> {
    const t = isoMicros(now)
    await this.db
      .delete(sessions)
      .where(
        and(
          eq(sessions.agent_id, agentId),
          or(
            and(eq(sessions.active, false), lt(sessions.nonce_expires_at, t)),
            lt(sessions.token_expires_at, t),
          ),
        ),
      )
  }

  /**
   * Deletes every expired session (start-up, and periodically): tokens past `token_expires_at`
   * and challenges past `nonce_expires_at`. Returns how many rows went.
   */
  async purgeExpired(now: number): Promise<number> {
    const t = isoMicros(now)
    const r = await this.db
      .delete(sessions)
      .where(
        or(
          lt(sessions.token_expires_at, t),
          and(eq(sessions.active, false), lt(sessions.nonce_expires_at, t)),
        ),
      )
      .returning({ id: sessions.session_id })
    return r.length
  }

  /**
   * Call after each successful attestation of `agentId`: extends its active, unexpired token to
   * `now + session_lifetime` when `extend_token_on_attestation` is set (upstream
   * `TPMEngine._extend_auth_token`). Every verifier sharing the database sees the new expiry.
   * Returns it, or undefined when nothing was extended (option off, no active session).
   *
   * @example
   * ```ts
   * if (verdict.pass) await store.sessions.extendAgentToken(agentId)
   * ```
   */
  async extendAgentToken(agentId: string, now: number = Date.now()): Promise<string | undefined> {
    if (!this.settings.extendOnAttestation) return undefined
    const expires = isoMicros(now + this.settings.sessionLifetime * 1000)
    const r = await this.db
      .update(sessions)
      .set({ token_expires_at: expires })
      .where(
        and(
          eq(sessions.agent_id, agentId),
          eq(sessions.active, true),
          sql`${sessions.token_expires_at} >= ${isoMicros(now)}`,
        ),
      )
      .returning({ id: sessions.session_id })
    if (r.length === 0) return undefined
    this.settings.log?.debug(`Extended auth token for agent '${agentId}' until ${expires}`)
    return expires
  }

  /**
   * Deletes the agent's active sessions, so its token stops working (upstream
   * `delete_active_session_for_agent`, after a failed attestation of a pull-mode agent); returns
   * their ids. Other verifiers sharing the database notice within their cache time (5 s).
   */
  async deleteActive(agentId: string): Promise<string[]> {
    const r = await this.db
      .delete(sessions)
      .where(and(eq(sessions.agent_id, agentId), eq(sessions.active, true)))
      .returning({ id: sessions.session_id })
    const ids = r.map((x) => x.id)
    if (ids.length > 0) this.onDeleted(ids)
    return ids
  }
}
