/**
 * The verifier's REST routes (keylime-api.md §1.2–§1.5), built once and mounted under every
 * `/v2[.x]` prefix, plus `GET /metrics` and `GET /health` (`http/add-ops-routes.ts`), all
 * behind the mTLS listener.
 *
 * | method | path | operation |
 * | --- | --- | --- |
 * | GET | `/v2[.x]/` | 405 (use `/agents/`) |
 * | GET | `/v2[.x]/agents[?verifier=][&bulk]` | {@link AgentsApi.list} |
 * | GET, POST, DELETE | `/v2[.x]/agents/:agent_id` | status, enrol, remove |
 * | PUT | `/v2[.x]/agents/:agent_id/reactivate`, `…/stop` | reactivate, stop |
 * | POST, PUT | `/v2[.x]/agents` | 400 `uri not supported` |
 * | GET | `/v2[.x]/allowlists`, `/v2[.x]/mbpolicies` | names |
 * | GET, POST, PUT, DELETE | `/v2[.x]/allowlists/:name`, `/v2[.x]/mbpolicies/:name` | {@link PoliciesApi} |
 * | GET | `/v2[.x]/verify/identity` | {@link EvidenceApi.verifyIdentity} |
 * | POST | `/v2[.x]/verify/evidence` | {@link EvidenceApi.verifyEvidence} (an EAR for `Accept: application/eat+jwt`) |
 * | GET | `/v2[.x]/agents/:agent_id/ear`, `/v3[.0]/agents/:agent_id/ear` | {@link EarApi.agentEar} (keylime-ts) |
 * | GET | `/.well-known/jwks.json` | {@link EarApi.jwks} (keylime-ts) |
 * | GET, POST | `/v3[.0]/agents` | {@link AgentsV3Api} list, enrol (JSON:API) |
 * | GET, PATCH, DELETE | `/v3[.0]/agents/:agent_id` | {@link AgentsV3Api} show, update, remove |
 * | POST, GET | `/v3[.0]/agents/:agent_id/attestations` | push capabilities, list (`push/routes.ts`) |
 * | PATCH, GET | `/v3[.0]/agents/:agent_id/attestations/latest\|:index` | push evidence, read |
 *
 * @module
 */
import type { Context } from 'hono'
import { BadRequest } from '../../errors.ts'
import { mountVersioned } from '../../http/add-version-routes.ts'
import { createRoutes, type KeylimeApp } from '../../http/create-app.ts'
import { envelopeResponse } from '../../http/envelope.ts'
import { addOpsRoutes, type Observability } from '../../http/add-ops-routes.ts'
import { readJsonBytes, readJsonObject } from '../../http/read-json.ts'
import { checkAgentId } from './agent-id.ts'
import { EAR_MEDIA_TYPE, checkEarNonce } from '../results/ear-claims.ts'
import type { AgentsApi } from './agents.ts'
import { type EarApi, JWKS_PATH } from './ear.ts'
import type { EvidenceApi } from './evidence.ts'
import type { PoliciesApi } from './policies.ts'
import type { VerifierService } from './service.ts'
import { answer, jsonApiBody, pushAttestationRoutes } from '../push/routes.ts'
import type { AgentsV3Api } from './agents-v3.ts'

function param(c: Context, name: string): string {
  const v = c.req.param(name)
  if (v === undefined || v === '') throw new BadRequest('uri not supported')
  return v
}

const success = (results?: Record<string, unknown>) => envelopeResponse(200, 'Success', results)

/** A signed EAR as the body, typed with its profile (RFC 9782). */
const earResponse = (token: string) =>
  new Response(token, { status: 200, headers: { 'content-type': EAR_MEDIA_TYPE } })

/** Whether `Accept` asks for `application/eat+jwt` (parameters and q-values aside). */
function wantsEar(accept: string | undefined): boolean {
  if (accept === undefined) return false
  return accept
    .split(',')
    .some((t) => t.split(';')[0]?.trim().toLowerCase() === 'application/eat+jwt')
}

/** `GET /agents/:agent_id/ear[?nonce=]` (keylime-ts, admin), under v2 and v3. */
function agentEarRoute(api: EarApi): KeylimeApp {
  return createRoutes().get('/:agent_id/ear', async (c) =>
    earResponse(await api.agentEar(param(c, 'agent_id'), c.req.query('nonce'))),
  )
}

/** `/agents` (keylime-api.md §1.3). */
function agentRoutes(api: AgentsApi): KeylimeApp {
  const r = createRoutes()
  r.get('/', async (c) => {
    const verifier = c.req.query('verifier')
    const bulk = c.req.query('bulk') !== undefined
    return success(await api.list(verifier || undefined, bulk))
  })
  r.post('/', () => envelopeResponse(400, 'uri not supported'))
  r.put('/', () => envelopeResponse(400, 'uri not supported'))
  r.get('/:agent_id', async (c) => success(await api.status(param(c, 'agent_id'))))
  r.post('/:agent_id', async (c) => {
    const id = param(c, 'agent_id')
    checkAgentId(id)
    await api.enrol(id, await readJsonObject(c))
    return success()
  })
  r.delete('/:agent_id', async (c) => {
    const code = await api.remove(param(c, 'agent_id'))
    return envelopeResponse(code, code === 200 ? 'Success' : 'Accepted')
  })
  r.put('/:agent_id/reactivate', async (c) => {
    await api.reactivate(param(c, 'agent_id'))
    return success()
  })
  r.put('/:agent_id/stop', async (c) => {
    await api.stop(param(c, 'agent_id'))
    return success()
  })
  return r
}

/** `/allowlists` and `/mbpolicies` (keylime-api.md §1.4). */
function policyRoutes(api: PoliciesApi, kind: 'allowlists' | 'mbpolicies'): KeylimeApp {
  const ops =
    kind === 'allowlists'
      ? {
          list: async () => ({ 'runtimepolicy names': await api.listAllowlistNames() }),
          get: (n: string) => api.getAllowlist(n),
          put: (n: string, b: Record<string, unknown>, replace: boolean) =>
            api.putAllowlist(n, b, replace),
          remove: (n: string) => api.deleteAllowlist(n),
        }
      : {
          list: async () => ({ 'mbpolicy names': await api.listMbPolicyNames() }),
          get: (n: string) => api.getMbPolicy(n),
          put: (n: string, b: Record<string, unknown>, replace: boolean) =>
            api.putMbPolicy(n, b, replace),
          remove: (n: string) => api.deleteMbPolicy(n),
        }
  const r = createRoutes()
  r.get('/', async () => success(await ops.list()))
  r.get('/:name', async (c) => success(await ops.get(param(c, 'name'))))
  r.post('/:name', async (c) => {
    await ops.put(param(c, 'name'), await readJsonObject(c), false)
    return envelopeResponse(201, 'Created')
  })
  r.put('/:name', async (c) => {
    await ops.put(param(c, 'name'), await readJsonObject(c), true)
    return envelopeResponse(201, 'Created')
  })
  r.delete('/:name', async (c) => {
    await ops.remove(param(c, 'name'))
    return envelopeResponse(204, 'Deleted')
  })
  return r
}

/**
 * `/verify` (keylime-api.md §1.5). `POST /evidence` with `Accept: application/eat+jwt` answers
 * a verdict as a signed EAR (`?nonce=` echoed); a refused body keeps the JSON envelope.
 */
function verifyRoutes(api: EvidenceApi, ear: EarApi): KeylimeApp {
  const r = createRoutes()
  r.get('/identity', async (c) => success(await api.verifyIdentity(c.req.query())))
  r.post('/evidence', async (c) => {
    const asEar = wantsEar(c.req.header('accept'))
    const query = c.req.query('nonce')
    const nonce = asEar && query !== undefined ? checkEarNonce(query) : undefined
    const { status, results, checks } = await api.verifyEvidence(await readJsonBytes(c))
    if (asEar && status === 200) return earResponse(await ear.evidenceEar(results, checks, nonce))
    return envelopeResponse(status, status === 200 ? 'Success' : 'Bad Request', results)
  })
  return r
}

/** `/v3[.0]/agents` (JSON:API, keylime-ts: upstream 7.14 answers 404/500; see `agents-v3.ts`). */
function agentV3Routes(api: AgentsV3Api): KeylimeApp {
  const r = createRoutes()
  const base = (c: Context) => c.req.path.replace(/\/agents\/.*$|\/agents\/?$/, '/agents')
  r.get('/', (c) => answer(c, () => api.list(c.req.query('verifier') || undefined, base(c))))
  r.post('/', (c) => answer(c, async () => api.create(await jsonApiBody(c), base(c))))
  r.get('/:agent_id', (c) => answer(c, () => api.show(param(c, 'agent_id'), base(c))))
  r.patch('/:agent_id', (c) =>
    answer(c, async () => api.update(param(c, 'agent_id'), await jsonApiBody(c), base(c))),
  )
  r.delete('/:agent_id', (c) => answer(c, () => api.remove(param(c, 'agent_id'))))
  return r
}

/** The v2 route table, built once. */
function v2Routes(svc: VerifierService): KeylimeApp {
  return createRoutes()
    .get('/', () => envelopeResponse(405, 'Not Implemented: Use /agents/ interface instead'))
    .route('/agents', agentRoutes(svc.agents))
    .route('/agents', agentEarRoute(svc.ear))
    .route('/allowlists', policyRoutes(svc.policies, 'allowlists'))
    .route('/mbpolicies', policyRoutes(svc.policies, 'mbpolicies'))
    .route('/verify', verifyRoutes(svc.evidence, svc.ear))
}

/** Registers the routes. */
export function addVerifierRoutes(app: KeylimeApp, svc: VerifierService, obs: Observability): void {
  addOpsRoutes(app, obs)
  app.get(JWKS_PATH, async () =>
    Response.json(await svc.ear.jwks(), { headers: { 'cache-control': 'max-age=300' } }),
  )
  mountVersioned(app, 2, v2Routes(svc))
  const v3 = createRoutes()
    .route('/agents', agentEarRoute(svc.ear))
    .route('/agents', agentV3Routes(svc.agentsV3))
  if (svc.attestations !== undefined) v3.route('/agents', pushAttestationRoutes(svc.attestations))
  mountVersioned(app, 3, v3)
}
