/**
 * The verifier's identity of a request, as upstream 7.14's `ActionHandler` decides it
 * (`_validate_authentication`, then `_extract_identity`): a request with an `Authorization` header
 * is an agent request, and only that:
 *
 * - `Bearer <token>` valid, active, unexpired → that agent;
 * - anything else → 401 with upstream's detail (`Invalid Authorization header format`, `Invalid
 *   authentication token`, `Authentication session not active`, `Authentication token expired`),
 *   never a fall-back to the client certificate;
 * - except on the session routes (`create_session`, `extend_session`), which an agent calls to
 *   replace a bad token: there the header is ignored, as upstream.
 *
 * Without the header, the client certificate decides ({@link identifyByClientCert}).
 *
 * @module
 */
import type { Context } from 'hono'
import type { Action } from './action.ts'
import { type Identify, identifyByClientCert } from './enforce-access.ts'

/** The outcome of a bearer token check (`verifier/push/sessions/session-tokens.ts`). */
export type BearerCheck = { ok: true; agentId: string } | { ok: false; detail: string }

/** Checks bearer tokens. */
export interface BearerTokens {
  check(token: string): Promise<BearerCheck>
}

/** Actions an agent may call with a bad token: the ones that give it a new one. */
const SESSION_ACTIONS: ReadonlySet<Action> = new Set(['create_session', 'extend_session'])

/** Identity from a bearer token, else from the client certificate. */
export function identifyRequest(tokens: BearerTokens): Identify {
  return async (c: Context, action: Action | undefined) => {
    const header = c.req.header('Authorization')
    if (header === undefined) return identifyByClientCert(c)
    if (action !== undefined && SESSION_ACTIONS.has(action)) return { type: 'anonymous' }
    if (!header.startsWith('Bearer ')) {
      return { type: 'unauthenticated', detail: 'Invalid Authorization header format' }
    }
    const checked = await tokens.check(header.slice(7))
    return checked.ok
      ? { type: 'agent', agentId: checked.agentId }
      : { type: 'unauthenticated', detail: checked.detail }
  }
}
