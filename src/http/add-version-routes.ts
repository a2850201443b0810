/**
 * Version discovery routes every Keylime server answers (keylime-api.md §1.1):
 * `GET /version` and `GET /versions` → `{current_version, supported_versions}`, `GET /` → 307 to
 * `/v3.0/`, and `GET /v3[.0]/` → 200 (v3 is recognised).
 *
 * @module
 */
import { versionInfo, versionPrefixes } from './api-version.ts'
import type { KeylimeApp } from './create-app.ts'
import { envelopeResponse } from './envelope.ts'

/** Registers the version discovery routes on `app`. */
export function addVersionRoutes(app: KeylimeApp): void {
  const version = () => envelopeResponse(200, 'Success', versionInfo())
  app.get('/version', version)
  app.get('/versions', version)
  app.get('/', () => new Response(null, { status: 307, headers: { Location: '/v3.0/' } }))
  for (const prefix of versionPrefixes(3)) {
    app.get(prefix, version)
  }
}
