/**
 * The verifier's push-mode authentication, assembled from `[verifier]`: the token key file, the
 * token checks the access middleware uses, the rate limits and the session operations. Expired
 * sessions are purged at start (upstream `clear_expired_sessions_on_startup`) and every minute.
 *
 * @module
 */
import type { VerifierConfig } from '../../../config/index.ts'
import type { Logger } from '../../../log/logger.ts'
import type { VerifierStore } from '../../store/store.ts'
import { PushSessions } from './push-sessions.ts'
import { RateLimiter } from './rate-limiter.ts'
import { TokenHasher } from './session-token.ts'
import { SessionTokens } from './session-tokens.ts'
import { loadTokenKey, tokenKeyPath } from './token-key-file.ts'

/** How often expired sessions are purged while running (ms). */
const PURGE_EVERY_MS = 60_000

/** The started authentication parts. */
export interface VerifierSessions {
  /** Bearer token checks (for `identifyRequest`). */
  tokens: SessionTokens
  /** `POST`/`PATCH /sessions`. */
  sessions: PushSessions
  /** Stops the periodic purge. */
  stop(): void
}

/** Loads the key, purges expired sessions, and builds the session operations. */
export async function startSessions(
  config: VerifierConfig,
  keylimeDir: string,
  store: VerifierStore,
  log: Logger,
): Promise<VerifierSessions> {
  const v = config.verifier
  const path = tokenKeyPath(v.session_token_key, keylimeDir)
  const key = await loadTokenKey(path)
  if (key.created) log.info('created the session token key', { path })
  if (key.exposed) log.warn('session token key file is readable by group or others', { path })
  store.sessions.settings = {
    sessionLifetime: v.session_lifetime,
    extendOnAttestation: v.extend_token_on_attestation,
    log,
  }
  const purged = await store.sessions.purgeExpired(Date.now())
  if (purged > 0) log.info(`Cleaned up ${purged} expired authentication session(s) on start`)
  const tokens = new SessionTokens(store.sessions, new TokenHasher(key.key), log)
  store.sessions.onDeleted = (ids) => tokens.forget(ids)
  // challenges nobody answered (any caller may ask for one) and lapsed tokens do not pile up
  const purge = setInterval(() => {
    store.sessions.purgeExpired(Date.now()).catch((error) => {
      log.warn('could not purge expired sessions', { error: String(error) })
    })
  }, PURGE_EVERY_MS)
  purge.unref()
  const sessions = new PushSessions({
    store: store.sessions,
    enrolledAk: async (id) => (await store.agents.getAgent(id))?.ak_tpm,
    tokens,
    limiter: new RateLimiter(),
    limits: {
      nonceLifetime: v.nonce_lifetime,
      sessionLifetime: v.session_lifetime,
      perIp: v.session_create_rate_limit_per_ip,
      windowIp: v.session_create_rate_limit_window_ip,
      perAgent: v.session_create_rate_limit_per_agent,
      windowAgent: v.session_create_rate_limit_window_agent,
    },
    log,
  })
  return { tokens, sessions, stop: () => clearInterval(purge) }
}
