/**
 * Route-level authorization, as upstream Keylime 7.14's `ActionHandler._check_authorization`
 * (`keylime/web/base/action_handler.py`): each route of a role is declared once with its action
 * ({@link AccessRule}), and {@link enforceAccess} refuses a request whose sender may not perform
 * it with upstream's 403 body:
 *
 * ```json
 * {"errors":[{"status":"403","title":"Forbidden","detail":"Action list_agents requires admin authentication (mTLS certificate)"}]}
 * ```
 *
 * Paths are written as in the API tables: `/v2/…` stands for every `/v2` and `/v2.x` prefix,
 * `/v3/…` for `/v3` and `/v3.0`, and a trailing slash is optional. `HEAD` is checked as `GET`.
 * A request matching no rule is refused to a non-admin ("Could not determine required
 * permissions", upstream's fail-safe), so a route added without its rule stays admin-only.
 *
 * @module
 */
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import type { ListenerEnv } from '../listener-types.ts'
import { type Action, authorizeAction, type Identity } from './action.ts'
import { authErrorResponse } from './auth-error.ts'

/** One route and its action: `[method, path, action]`, e.g. `['GET', '/v2/agents', 'list_agents']`. */
export type AccessRule = readonly [method: string, path: string, action: Action]

/**
 * A request whose credentials are refused outright: upstream's 401 with this detail (a bearer
 * token that is malformed, unknown, inactive or expired), before any authorization.
 */
export interface Unauthenticated {
  type: 'unauthenticated'
  detail: string
}

/**
 * Decides who sent a request (see {@link Identity}), possibly reading the database; `action` is
 * the matched route's (undefined for an unmapped path).
 */
export type Identify = (
  c: Context,
  action: Action | undefined,
) => Identity | Unauthenticated | Promise<Identity | Unauthenticated>

interface CompiledRule {
  method: string
  pattern: RegExp
  action: Action
}

/** Turns `/v2/agents/:agent_id` into a regular expression capturing `agent_id`. */
function compile([method, path, action]: AccessRule): CompiledRule {
  const body = path
    .replace(/\/$/, '')
    .split('/')
    .map((seg) => {
      if (seg.startsWith(':')) return `(?<${seg.slice(1)}>[^/]+)`
      const version = /^v(\d+)$/.exec(seg)
      if (version) return `v${version[1]}(?:\\.\\d+)?`
      return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
    })
    .join('/')
  return { method, pattern: new RegExp(`^${body}/?$`), action }
}

/** The 403 answer upstream gives a refused action. */
export function forbiddenResponse(detail: string): Response {
  return authErrorResponse(403, detail)
}

/** The action of `method path` under `rules`, with the route's `agent_id`, if any rule matches. */
export function matchAction(
  rules: readonly AccessRule[],
): (method: string, path: string) => { action: Action; resource?: string } | undefined {
  const compiled = rules.map(compile)
  return (method, path) => {
    const m = method === 'HEAD' ? 'GET' : method
    for (const rule of compiled) {
      if (rule.method !== m) continue
      const hit = rule.pattern.exec(path)
      if (hit) return { action: rule.action, resource: hit.groups?.agent_id }
    }
    return undefined
  }
}

/**
 * Middleware enforcing `rules`: credentials refused by `identify` are upstream's 401; then a
 * public action passes, any other needs the identity its kind asks for, else upstream's 403.
 *
 * @example
 * ```ts
 * app.use('*', enforceAccess(VERIFIER_ACCESS, identifyByClientCert))
 * ```
 */
export function enforceAccess(rules: readonly AccessRule[], identify: Identify): MiddlewareHandler {
  const match = matchAction(rules)
  return async function enforceAccess(c, next) {
    const found = match(c.req.method, c.req.path)
    const identity = await identify(c, found?.action)
    if (identity.type === 'unauthenticated') return authErrorResponse(401, identity.detail)
    if (!found) {
      if (identity.type === 'admin') return next()
      return forbiddenResponse('Could not determine required permissions for this operation')
    }
    const reason = authorizeAction(found.action, identity, found.resource)
    if (reason !== null) return forbiddenResponse(reason)
    return next()
  }
}

/**
 * The identity of a request, as upstream's `_extract_identity` decides it: an admin when its
 * listener verified the client's certificate (`c.env.clientCert`, set by
 * `listen-optional-client-cert.ts`) and it sends no `Authorization` header (upstream never falls
 * back from a bearer token to the certificate); anonymous otherwise, and always on a listener
 * that verifies no certificate (`trusted_client_ca = all`: `clientCert` is `none`). The registrar
 * uses it as is; the verifier adds bearer tokens (`identify-request.ts`).
 */
export function identifyByClientCert(c: Context, _action?: Action): Identity {
  const env = c.env as Partial<ListenerEnv> | undefined
  if (env?.agentId !== undefined) return { type: 'agent', agentId: env.agentId }
  return env?.clientCert === 'verified' && c.req.header('Authorization') === undefined
    ? { type: 'admin' }
    : { type: 'anonymous' }
}

/**
 * `app` as an admin calls it in-process (tests, embedding: a role handle's `app`): every request
 * reaches it as from a verified client certificate. Listeners never use this.
 */
export function asAdmin(app: Hono): Hono {
  const admin: ListenerEnv = { clientCert: 'verified' }
  return new Hono().all('*', (c) => app.fetch(c.req.raw, admin))
}

/**
 * `app` as push agent `agentId` calls it in-process (tests): every request reaches it as from
 * that agent, authenticated. Listeners never use this.
 */
export function asAgent(app: Hono, agentId: string): Hono {
  const agent: ListenerEnv = { clientCert: 'none', agentId }
  return new Hono().all('*', (c) => app.fetch(c.req.raw, agent))
}
