/**
 * For a TLS listener that verifies no client certificate (`trusted_client_ca = all`): nobody can
 * be an admin there, so only the public routes are served and every other request answers 403,
 * as upstream's authorization does for an anonymous client (keylime-api.md §1.1). Without this,
 * such a listener would serve its whole admin API to any client (the CVE-2026-1709 class).
 *
 * @module
 */
import type { MiddlewareHandler } from 'hono'
import { envelopeResponse } from './envelope.ts'

/**
 * Middleware answering 403 for every path `isPublic` rejects.
 *
 * @example
 * ```ts
 * if (!tls.verifyPeer) app.use('*', publicRoutesOnly((path) => path === '/version'))
 * ```
 */
export function publicRoutesOnly(isPublic: (path: string) => boolean): MiddlewareHandler {
  return async function publicRoutesOnly(c, next) {
    if (isPublic(c.req.path)) return next()
    return envelopeResponse(
      403,
      'This action requires a client certificate, and this listener verifies none (trusted_client_ca = all)',
    )
  }
}
