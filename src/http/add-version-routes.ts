/**
 * Versioned routing. Every Keylime server answers version discovery (keylime-api.md §1.1):
 * `GET /version` and `GET /versions` → `{current_version, supported_versions}`, `GET /` → 307 to
 * `/v3.0/`, and `GET /v3[.0]/` → 200 (v3 is recognised). A role's REST routes are built once, as a
 * route table, and mounted under each prefix of a major version with {@link mountVersioned}; a
 * prefix of no supported version matches nothing (404, the app's `notFound`).
 *
 * @module
 */
import type { AccessRule } from './access/enforce-access.ts'
import { type API_MINOR_VERSIONS, versionInfo, versionPrefixes } from './api-version.ts'
import { createRoutes, type KeylimeApp } from './create-app.ts'
import { envelopeResponse } from './envelope.ts'

/**
 * Mounts `routes` under every prefix of API version `major` (`/v2`, `/v2.0` … `/v2.6`). The
 * mounted patterns keep their prefix (`/v2.6/agents/:agent_id`), so request metrics label them
 * as before.
 *
 * @example
 * ```ts
 * const v2 = createRoutes()
 * v2.get('/agents/:agent_id', show)
 * mountVersioned(app, 2, v2)
 * ```
 */
export function mountVersioned(
  app: KeylimeApp,
  major: keyof typeof API_MINOR_VERSIONS,
  routes: KeylimeApp,
): void {
  for (const prefix of versionPrefixes(major)) app.route(prefix, routes)
}

/** Registers the version discovery routes on `app`. */
export function addVersionRoutes(app: KeylimeApp): void {
  const version = () => envelopeResponse(200, 'Success', versionInfo())
  app.get('/version', version)
  app.get('/versions', version)
  app.get('/', () => new Response(null, { status: 307, headers: { Location: '/v3.0/' } }))
  mountVersioned(app, 3, createRoutes().get('/', version))
}

/** The access rules of `/version` and `/versions` (upstream `read_version`, public). */
export const VERSION_ACCESS: readonly AccessRule[] = [
  ['GET', '/version', 'read_version'],
  ['GET', '/versions', 'read_version'],
]
