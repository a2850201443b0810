/**
 * The registrar's REST routes (upstream `keylime/web/registrar_server.py`, keylime-api.md §1.6).
 *
 * | method | path | listener |
 * | --- | --- | --- |
 * | POST | `/v{2,3}[.x]/agents` (id in the body) | both |
 * | POST | `/v{2,3}[.x]/agents/:agent_id/activate` | both |
 * | POST | `/v2[.x]/agents/:agent_id` (legacy register) | both |
 * | PUT | `/v2[.x]/agents/:agent_id/activate`, `/v2[.x]/agents/:agent_id` (legacy activate; the latter is what agents call) | both |
 * | GET | `/v{2,3}[.x]/agents` → `{"uuids": [...]}` | mTLS only |
 * | GET | `/v{2,3}[.x]/agents/:agent_id` (404 unless activated) | mTLS only |
 * | DELETE | `/v{2,3}[.x]/agents/:agent_id` | mTLS only |
 *
 * On the plain-HTTP listener the admin routes answer 403 (they need the mTLS port). Every answer
 * uses the `{code, status, results}` envelope.
 *
 * @module
 */
import type { Context } from 'hono'
import { mountVersioned } from '../http/add-version-routes.ts'
import { apiVersionOfPath, CURRENT_API_VERSION } from '../http/api-version.ts'
import { createRoutes, type KeylimeApp } from '../http/create-app.ts'
import { envelopeResponse } from '../http/envelope.ts'
import { readJsonObject } from '../http/read-json.ts'
import { RegistrarError } from './errors.ts'
import type { RegistrarMetrics } from './registrar-metrics.ts'
import type { RegistrarService } from './service.ts'

/** Which listener the routes are mounted on. */
export type RegistrarListener = 'http' | 'mtls'

const success = (results: Record<string, unknown> = {}) => envelopeResponse(200, 'Success', results)

function versionOf(c: Context): string {
  return apiVersionOfPath(c.req.path) ?? CURRENT_API_VERSION
}

/**
 * Adds the registrar routes for every v2 and v3 prefix to `app` (one route table per major
 * version, mounted under each of its prefixes).
 *
 * @example
 * ```ts
 * addRegistrarRoutes(agentApp, service, 'http', metrics)
 * addRegistrarRoutes(adminApp, service, 'mtls', metrics)
 * ```
 *
 * @param metrics counts the registrations and activations accepted (failures are counted as
 *   they answer, by `metrics.requests`)
 */
export function addRegistrarRoutes(
  app: KeylimeApp,
  service: RegistrarService,
  listener: RegistrarListener,
  metrics?: RegistrarMetrics,
): void {
  // the agent id is in the path (v2 legacy) or in the body
  const register = async (c: Context, idInPath: boolean) => {
    const body = await readJsonObject(c)
    const agentId = idInPath ? c.req.param('agent_id') : body.agent_id
    const { blob } = await service.register(agentId, body, versionOf(c))
    if (metrics) metrics.registrations++
    return success({ blob })
  }
  const activate = async (c: Context) => {
    const body = await readJsonObject(c)
    await service.activate(c.req.param('agent_id'), body)
    if (metrics) metrics.activations++
    return success()
  }
  const adminOnly = () => {
    throw new RegistrarError(
      'ERR_REGISTRAR_MTLS_REQUIRED',
      'Bad Request: this action needs HTTPS with an admin client certificate (the registrar TLS port)',
    )
  }

  // Built once per major version, mounted under each of its prefixes.
  for (const major of [2, 3] as const) {
    const r = createRoutes()
    // Agent self-registration (public; upstream allow_insecure).
    r.post('/agents', (c) => register(c, false))
    r.post('/agents/:agent_id/activate', activate)
    if (major === 2) {
      r.post('/agents/:agent_id', (c) => register(c, true))
      r.put('/agents/:agent_id/activate', activate)
      r.put('/agents/:agent_id', activate)
    }
    // Administration (mTLS).
    if (listener === 'http') {
      r.get('/agents', adminOnly)
      r.get('/agents/:agent_id', adminOnly)
      r.delete('/agents/:agent_id', adminOnly)
    } else {
      r.get('/agents', async () => success({ uuids: await service.list() }))
      r.get('/agents/:agent_id', async (c) =>
        success({ ...(await service.show(c.req.param('agent_id'))) }),
      )
      r.delete('/agents/:agent_id', async (c) => {
        await service.remove(c.req.param('agent_id'))
        return success()
      })
    }
    mountVersioned(app, major, r)
  }
}
