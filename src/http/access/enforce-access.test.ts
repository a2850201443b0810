import { describe, expect, test } from 'bun:test'
import { Hono } from 'hono'
import { REGISTRAR_ACCESS } from '../../registrar/access-table.ts'
import { addRegistrarRoutes } from '../../registrar/routes.ts'
import type { RegistrarService } from '../../registrar/service.ts'
import { addVerifierRoutes } from '../../verifier/api/routes.ts'
import type { VerifierService } from '../../verifier/api/service.ts'
import type { PushSessions } from '../../verifier/push/sessions/push-sessions.ts'
import { addSessionRoutes } from '../../verifier/push/sessions/session-routes.ts'
import { addOpsRoutes } from '../add-ops-routes.ts'
import { addVersionRoutes } from '../add-version-routes.ts'
import { createRoutes } from '../create-app.ts'
import type { ListenerEnv } from '../listener-types.ts'
import { VERIFIER_ACCESS } from '../../verifier/api/access-table.ts'
import { actionKind, authorizeAction } from './action.ts'
import {
  type AccessRule,
  asAgent,
  enforceAccess,
  identifyByClientCert,
  matchAction,
} from './enforce-access.ts'

/** An app answering 200 on every request that gets past the middleware. */
function guarded(rules: readonly AccessRule[]) {
  const app = new Hono({ strict: false })
  app.use('*', enforceAccess(rules, identifyByClientCert))
  app.all('*', (c) => c.text('through'))
  return app
}

/** The env of a request whose client certificate the listener verified. */
const VERIFIED: ListenerEnv = { clientCert: 'verified' }
/** Upstream's 403 body. */
const forbidden = (detail: string | null) => ({
  errors: [{ status: '403', title: 'Forbidden', detail }],
})

/** The env of a request without a client certificate. */
const NONE: ListenerEnv = { clientCert: 'none' }

/** A concrete path for a rule's path: version prefixes and parameters filled in. */
const concrete = (path: string, version: string) =>
  path.replace(/^\/v(\d)/, `/v$1${version}`).replace(/:[a-z_]+/g, 'x1')

describe('authorizeAction (upstream simple provider)', () => {
  test('the refusal reasons are upstream’s, word for word', () => {
    expect(authorizeAction('list_agents', { type: 'anonymous' }, undefined)).toBe(
      'Action list_agents requires admin authentication (mTLS certificate)',
    )
    expect(authorizeAction('read_agent', { type: 'anonymous' }, 'a')).toBe(
      'Action read_agent requires authentication',
    )
    expect(authorizeAction('submit_attestation', { type: 'admin' }, 'a')).toBe(
      'Action submit_attestation requires agent authentication (PoP token)',
    )
    expect(authorizeAction('read_agent', { type: 'agent', agentId: 'b' }, 'a')).toBe(
      'Agent b cannot access resource a (ownership required)',
    )
  })
  test('an agent reads and submits for itself only; an admin reads any agent', () => {
    expect(authorizeAction('read_agent', { type: 'agent', agentId: 'a' }, 'a')).toBeNull()
    expect(authorizeAction('submit_attestation', { type: 'agent', agentId: 'a' }, 'a')).toBeNull()
    expect(authorizeAction('read_agent', { type: 'admin' }, 'a')).toBeNull()
    expect(
      authorizeAction('list_agents', { type: 'agent', agentId: 'a' }, undefined),
    ).not.toBeNull()
  })
})

for (const [role, rules] of [
  ['verifier', VERIFIER_ACCESS],
  ['registrar', REGISTRAR_ACCESS],
] as const) {
  describe(`${role} access table`, () => {
    const app = guarded(rules)
    for (const [method, path, action] of rules) {
      for (const version of path.startsWith('/v2')
        ? ['', '.1', '.6']
        : path.startsWith('/v3')
          ? ['', '.0']
          : ['']) {
        const url = concrete(path, version)
        test(`${method} ${url} (${action})`, async () => {
          // An admin (certificate verified at the handshake) gets through, except to the
          // agents' own actions (upstream's strict separation).
          const admin = await app.request(url, { method }, VERIFIED)
          expect(admin.status).toBe(actionKind(action) === 'agent' ? 403 : 200)
          // No certificate, a bearer token (never a fall-back to the certificate), and a listener
          // verifying none (`trusted_client_ca = all`: no env) are anonymous: public actions only.
          const anonymous = [
            await app.request(url, { method }, NONE),
            await app.request(url, { method, headers: { Authorization: 'Bearer t' } }, VERIFIED),
            await app.request(url, { method }),
          ]
          for (const res of anonymous) {
            if (actionKind(action) === 'public') {
              expect(res.status).toBe(200)
              continue
            }
            expect(res.status).toBe(403)
            expect(await res.json()).toEqual(
              forbidden(authorizeAction(action, { type: 'anonymous' }, 'x1')),
            )
          }
        })
      }
    }
  })
}

describe('matching', () => {
  const match = matchAction(VERIFIER_ACCESS)
  test('a trailing slash, HEAD and the agent id resource', () => {
    expect(match('GET', '/v2.6/agents/')?.action).toBe('list_agents')
    expect(match('HEAD', '/version')?.action).toBe('read_version')
    expect(match('GET', '/v2.6/agents/a1')).toEqual({ action: 'read_agent', resource: 'a1' })
    expect(match('GET', '/v2.6/agents/a1/extra')).toBeUndefined()
    expect(match('GET', '/v22/agents')).toBeUndefined()
  })
  test('asAgent: an in-process agent submits for itself only and is no admin', async () => {
    const agent = asAgent(guarded(VERIFIER_ACCESS), 'a1')
    expect((await agent.request('/v3/agents/a1/attestations', { method: 'POST' })).status).toBe(200)
    const other = await agent.request('/v3/agents/a2/attestations', { method: 'POST' })
    expect(await other.json()).toEqual(
      forbidden('Agent a1 cannot access resource a2 (ownership required)'),
    )
    expect((await agent.request('/v2.6/agents')).status).toBe(403)
  })
  test("an agent reads its own EAR, not another agent's", async () => {
    const agent = asAgent(guarded(VERIFIER_ACCESS), 'a1')
    expect((await agent.request('/v2.6/agents/a1/ear')).status).toBe(200)
    expect((await agent.request('/v3.0/agents/a1/ear')).status).toBe(200)
    expect(await (await agent.request('/v2.6/agents/a2/ear')).json()).toEqual(
      forbidden('Agent a1 cannot access resource a2 (ownership required)'),
    )
  })
  test('an unmapped route is refused to a non-admin, passed to an admin', async () => {
    const res = await guarded(VERIFIER_ACCESS).request('/v2.6/unknown', {}, NONE)
    expect(res.status).toBe(403)
    expect(await res.json()).toEqual(
      forbidden('Could not determine required permissions for this operation'),
    )
    expect((await guarded(VERIFIER_ACCESS).request('/v2.6/unknown', {}, VERIFIED)).status).toBe(200)
  })
})

describe('every served route has its rule', () => {
  const obs = { metricsText: () => '', health: () => ({ status: 'ok' }) }
  const served = (app: Hono) =>
    app.routes
      .filter((r) => r.method !== 'ALL' && !r.path.includes('*'))
      .map((r) => [r.method, r.path.replace(/:[a-z_]+/g, 'x1')] as const)
  test('verifier', () => {
    const app = createRoutes()
    addVersionRoutes(app)
    addVerifierRoutes(app, {} as VerifierService, obs)
    addSessionRoutes(app, {} as PushSessions)
    const match = matchAction(VERIFIER_ACCESS)
    expect(served(app).length).toBeGreaterThan(10)
    const missing = served(app).filter(([m, p]) => match(m, p) === undefined)
    expect(missing).toEqual([])
  })
  test('registrar (TLS port)', () => {
    const app = createRoutes()
    addVersionRoutes(app)
    addRegistrarRoutes(app, {} as RegistrarService, 'mtls')
    addOpsRoutes(app, obs)
    const match = matchAction(REGISTRAR_ACCESS)
    expect(served(app).length).toBeGreaterThan(10)
    const missing = served(app).filter(([m, p]) => match(m, p) === undefined)
    expect(missing).toEqual([])
  })
})
