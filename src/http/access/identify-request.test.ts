/**
 * identifyRequest over the verifier's whole access table: a bearer token makes an agent request
 * or a 401 (upstream's bodies), on every route, including the agent routes another part serves
 * (the middleware answers before any handler); session routes ignore the header.
 */
import { describe, expect, test } from 'bun:test'
import { Hono } from 'hono'
import { VERIFIER_ACCESS } from '../../verifier/api/access-table.ts'
import type { ListenerEnv } from '../listener-types.ts'
import { actionKind } from './action.ts'
import { enforceAccess } from './enforce-access.ts'
import { type BearerCheck, identifyRequest } from './identify-request.ts'

const GOOD = 'good-token-of-x1'
const tokens = {
  checked: 0,
  async check(token: string): Promise<BearerCheck> {
    this.checked++
    if (token === GOOD) return { ok: true, agentId: 'x1' }
    if (token === 'expired') return { ok: false, detail: 'Authentication token expired' }
    return { ok: false, detail: 'Invalid authentication token' }
  },
}

const app = new Hono({ strict: false })
app.use('*', enforceAccess(VERIFIER_ACCESS, identifyRequest(tokens)))
app.all('*', (c) => c.text('through'))

const VERIFIED: ListenerEnv = { clientCert: 'verified' }
const unauthorized = (detail: string) => ({
  errors: [{ status: '401', title: 'Unauthorized', detail }],
})
const concrete = (path: string) => path.replace(/:[a-z_]+/g, 'x1')
const bearer = (t: string) => ({ Authorization: `Bearer ${t}` })

describe('identifyRequest on every verifier route', () => {
  for (const [method, path, action] of VERIFIER_ACCESS) {
    const url = concrete(path)
    const kind = actionKind(action)
    const session = action === 'create_session' || action === 'extend_session'
    test(`${method} ${url} (${action})`, async () => {
      // a bad token is 401 before any authorization, even with an admin certificate
      for (const [headers, detail] of [
        [bearer('garbage'), 'Invalid authentication token'],
        [bearer('expired'), 'Authentication token expired'],
        [{ Authorization: 'Basic YWRtaW46YWRtaW4=' }, 'Invalid Authorization header format'],
      ] as const) {
        const res = await app.request(url, { method, headers }, VERIFIED)
        if (session) {
          expect(res.status).toBe(200)
          continue
        }
        expect(res.status).toBe(401)
        expect(await res.json()).toEqual(unauthorized(detail))
      }
      // a good token is agent x1 (its own resource), never an admin despite the certificate
      const asAgent = await app.request(url, { method, headers: bearer(GOOD) }, VERIFIED)
      expect(asAgent.status).toBe(kind === 'admin' ? 403 : 200)
    })
  }

  test('a token works for its own agent only (cross-agent attestation is 403)', async () => {
    const own = await app.request('/v3/agents/x1/attestations', {
      method: 'POST',
      headers: bearer(GOOD),
    })
    expect(own.status).toBe(200)
    const other = await app.request('/v3.0/agents/x2/attestations/latest', {
      method: 'PATCH',
      headers: bearer(GOOD),
    })
    expect(other.status).toBe(403)
    expect(await other.json()).toEqual({
      errors: [
        {
          status: '403',
          title: 'Forbidden',
          detail: 'Agent x1 cannot access resource x2 (ownership required)',
        },
      ],
    })
  })

  test('without the header the certificate decides, and no token is checked', async () => {
    const before = tokens.checked
    expect((await app.request('/v2.6/agents', {}, VERIFIED)).status).toBe(200)
    expect((await app.request('/v2.6/agents', {}, { clientCert: 'none' })).status).toBe(403)
    expect(tokens.checked).toBe(before)
  })
})
