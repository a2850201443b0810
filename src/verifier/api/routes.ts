/**
 * The verifier's v2 REST routes (keylime-api.md §1.2–§1.4) on every `/v2[.x]` prefix, plus
 * `GET /metrics` and `GET /health` (`http/ops/add-ops-routes.ts`), all behind the mTLS listener.
 *
 * @module
 */
import type { Context } from 'hono'
import { BadRequest } from '../../errors.ts'
import { versionPrefixes } from '../../http/api-version.ts'
import type { KeylimeApp } from '../../http/create-app.ts'
import { envelopeResponse } from '../../http/envelope.ts'
import { addOpsRoutes, type Observability } from '../../http/ops/add-ops-routes.ts'
import { readJsonBytes, readJsonObject } from '../../http/read-json.ts'
import { checkAgentId, type VerifierService } from './service.ts'

function param(c: Context, name: string): string {
  const v = c.req.param(name)
  if (v === undefined || v === '') throw new BadRequest('uri not supported')
  return v
}

/** Registers the routes. */
export function addVerifierRoutes(app: KeylimeApp, svc: VerifierService, obs: Observability): void {
  addOpsRoutes(app, obs)
  for (const p of versionPrefixes(2)) {
    app.get(p, () => envelopeResponse(405, 'Not Implemented: Use /agents/ interface instead'))
    app.get(`${p}/agents`, async (c) => {
      const verifier = c.req.query('verifier')
      const bulk = c.req.query('bulk') !== undefined
      return envelopeResponse(200, 'Success', await svc.list(verifier || undefined, bulk))
    })
    app.get(`${p}/agents/:agent_id`, async (c) =>
      envelopeResponse(200, 'Success', await svc.status(param(c, 'agent_id'))),
    )
    app.post(`${p}/agents/:agent_id`, async (c) => {
      const id = param(c, 'agent_id')
      checkAgentId(id)
      const body = await readJsonObject(c)
      await svc.enrol(id, body)
      return envelopeResponse(200, 'Success')
    })
    app.delete(`${p}/agents/:agent_id`, async (c) => {
      const code = await svc.remove(param(c, 'agent_id'))
      return envelopeResponse(code, code === 200 ? 'Success' : 'Accepted')
    })
    app.put(`${p}/agents/:agent_id/reactivate`, async (c) => {
      await svc.reactivate(param(c, 'agent_id'))
      return envelopeResponse(200, 'Success')
    })
    app.put(`${p}/agents/:agent_id/stop`, async (c) => {
      await svc.stop(param(c, 'agent_id'))
      return envelopeResponse(200, 'Success')
    })
    for (const m of ['post', 'put'] as const) {
      app[m](`${p}/agents`, () => envelopeResponse(400, 'uri not supported'))
    }

    app.get(`${p}/allowlists`, async () =>
      envelopeResponse(200, 'Success', { 'runtimepolicy names': await svc.listAllowlistNames() }),
    )
    app.get(`${p}/allowlists/:name`, async (c) =>
      envelopeResponse(200, 'Success', await svc.getAllowlist(param(c, 'name'))),
    )
    app.post(`${p}/allowlists/:name`, async (c) => {
      await svc.putAllowlist(param(c, 'name'), await readJsonObject(c), false)
      return envelopeResponse(201, 'Created')
    })
    app.put(`${p}/allowlists/:name`, async (c) => {
      await svc.putAllowlist(param(c, 'name'), await readJsonObject(c), true)
      return envelopeResponse(201, 'Created')
    })
    app.delete(`${p}/allowlists/:name`, async (c) => {
      await svc.deleteAllowlist(param(c, 'name'))
      return envelopeResponse(204, 'Deleted')
    })

    app.get(`${p}/mbpolicies`, async () =>
      envelopeResponse(200, 'Success', { 'mbpolicy names': await svc.listMbPolicyNames() }),
    )
    app.get(`${p}/mbpolicies/:name`, async (c) =>
      envelopeResponse(200, 'Success', await svc.getMbPolicy(param(c, 'name'))),
    )
    app.post(`${p}/mbpolicies/:name`, async (c) => {
      await svc.putMbPolicy(param(c, 'name'), await readJsonObject(c), false)
      return envelopeResponse(201, 'Created')
    })
    app.put(`${p}/mbpolicies/:name`, async (c) => {
      await svc.putMbPolicy(param(c, 'name'), await readJsonObject(c), true)
      return envelopeResponse(201, 'Created')
    })
    app.delete(`${p}/mbpolicies/:name`, async (c) => {
      await svc.deleteMbPolicy(param(c, 'name'))
      return envelopeResponse(204, 'Deleted')
    })

    app.get(`${p}/verify/identity`, async (c) =>
      envelopeResponse(200, 'Success', await svc.verifyIdentity(c.req.query())),
    )
    app.post(`${p}/verify/evidence`, async (c) => {
      const [code, results] = await svc.verifyEvidence(await readJsonBytes(c))
      return envelopeResponse(code, code === 200 ? 'Success' : 'Bad Request', results)
    })
  }
}
