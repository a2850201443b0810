/**
 * The verifier's REST routes with `app.request()`: every route answers malformed input with a 4xx
 * envelope; upstream's status codes and quirks for agents, allowlists and mbpolicies (201, 204,
 * 409, 404, "runtimepolicy names", tmp_policy null, versions kept in the history); and the real
 * mTLS listener refuses clients without a cv_ca certificate.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { emptyRuntimePolicy } from '../src/ima/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { createTestCa, startTestVerifier } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'

const policyB64 = (p: object) => Buffer.from(JSON.stringify(p)).toString('base64')

for (const target of databaseTargets()) {
  describe(`verifier API (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let v: VerifierHandle
    const req = async (method: string, path: string, body?: unknown, raw?: string) => {
      const res = await v.app.request(path, {
        method,
        body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
        headers:
          raw !== undefined || body !== undefined
            ? { 'content-type': 'application/json' }
            : undefined,
      })
      const text = await res.text()
      return {
        status: res.status,
        body: text ? (JSON.parse(text) as { code: number; results: any }) : null,
      }
    }

    beforeAll(async () => {
      kdb = await target.open()
      v = await startTestVerifier(kdb, await createTestCa())
    }, 30_000)
    afterAll(async () => {
      await v?.stop(200)
      await kdb?.close()
    })

    test('malformed input yields 4xx envelopes, never 500', async () => {
      const cases: [string, string, unknown?, string?][] = [
        ['POST', '/v2.6/agents/abc', undefined, '{not json'],
        ['POST', '/v2.6/agents/abc', undefined, '[1,2]'],
        ['POST', '/v2.6/agents/abc', {}],
        ['POST', '/v2.6/agents/bad%20id', {}],
        ['POST', '/v2.6/agents/abc', { tpm_policy: 5, runtime_policy: '!!', mb_policy: null }],
        ['GET', '/v2.6/agents/nope'],
        ['GET', '/v2.6/agents/bad$id'],
        ['DELETE', '/v2.6/agents/nope'],
        ['PUT', '/v2.6/agents/nope/reactivate'],
        ['PUT', '/v2.6/agents/nope/stop'],
        ['POST', '/v2.6/allowlists/p1', { runtime_policy: 'not base64!' }],
        ['POST', '/v2.6/allowlists/p1', { runtime_policy: policyB64({ meta: 1 }) }],
        ['POST', '/v2.6/allowlists/p1', undefined, 'null'],
        ['GET', '/v2.6/allowlists/missing'],
        ['DELETE', '/v2.6/allowlists/missing'],
        ['PUT', '/v2.6/allowlists/missing', { runtime_policy: policyB64(emptyRuntimePolicy()) }],
        ['POST', '/v2.6/mbpolicies/m1', { mb_policy: '{bad' }],
        ['PUT', '/v2.6/mbpolicies/missing', { mb_policy: '{}' }],
        ['GET', '/v2.6/verify/identity?agent_uuid=x'],
        ['POST', '/v2.6/verify/evidence', { type: 'tpm', data: {} }],
        ['POST', '/v2.6/verify/evidence', { type: 'other' }],
      ]
      for (const [m, p, b, raw] of cases) {
        const r = await req(m, p, b, raw)
        expect(r.status, `${m} ${p}`).toBeGreaterThanOrEqual(400)
        expect(r.status, `${m} ${p}`).toBeLessThan(500)
        expect(r.body?.code).toBe(r.status)
      }
    })

    test('allowlists: 201, 409, list key, tmp_policy, PUT keeps history, 204', async () => {
      const p = { ...emptyRuntimePolicy(), digests: { '/bin/sh': ['a'.repeat(64)] } }
      p.meta.generator = 2
      expect(
        (await req('POST', '/v2.6/allowlists/pol', { runtime_policy: policyB64(p) })).status,
      ).toBe(201)
      expect(
        (await req('POST', '/v2.6/allowlists/pol', { runtime_policy: policyB64(p) })).status,
      ).toBe(409)
      const list = await req('GET', '/v2.6/allowlists/')
      expect(list.body!.results['runtimepolicy names']).toEqual(['pol'])
      const one = await req('GET', '/v2.6/allowlists/pol')
      expect(one.body!.results.tmp_policy).toBeNull()
      expect(JSON.parse(one.body!.results.runtime_policy).digests['/bin/sh']).toHaveLength(1)
      expect(
        (
          await req('PUT', '/v2.6/allowlists/pol', {
            runtime_policy: policyB64(emptyRuntimePolicy()),
          })
        ).status,
      ).toBe(201)
      expect(await v.store.allowlistHistory('pol')).toHaveLength(1)
      const del = await v.app.request('/v2.6/allowlists/pol', { method: 'DELETE' })
      expect(del.status).toBe(204)
      expect(await del.text()).toBe('')
    })

    test('mbpolicies: 201, 409 on POST twice and on PUT of a missing name, list key', async () => {
      expect((await req('POST', '/v2.6/mbpolicies/mb', { mb_policy: '{}' })).status).toBe(201)
      expect((await req('POST', '/v2.6/mbpolicies/mb', { mb_policy: '{}' })).status).toBe(409)
      expect((await req('PUT', '/v2.6/mbpolicies/none', { mb_policy: '{}' })).status).toBe(409)
      expect((await req('GET', '/v2.6/mbpolicies')).body!.results['mbpolicy names']).toEqual(['mb'])
      expect((await req('GET', '/v2.6/mbpolicies/mb')).body!.results).toEqual({
        name: 'mb',
        mb_policy: '{}',
      })
      expect((await req('DELETE', '/v2.6/mbpolicies/mb')).status).toBe(204)
    })

    test('agents list, /v2 root, health and metrics', async () => {
      expect((await req('GET', '/v2.6/agents')).body!.results).toEqual({ uuids: [] })
      expect((await req('GET', '/v2.6/agents?bulk=1')).body!.results).toEqual({})
      expect((await req('GET', '/v2/')).status).toBe(405)
      const h = await req('GET', '/health')
      expect(h.status).toBe(200)
      expect(h.body!.results.status).toBe('ok')
      const m = await v.app.request('/metrics')
      expect(await m.text()).toContain('keylime_verifier_attestations_total{result="pass"}')
    })

    test('without a client certificate: public actions answer, admin actions are 403', async () => {
      const url = v.servers[0]!.url
      const call = (path: string) => fetch(`${url}${path}`, { tls: { rejectUnauthorized: false } })
      expect((await call('/version')).status).toBe(200)
      const res = await call('/v2.6/agents')
      expect(res.status).toBe(403)
      expect(await res.json()).toEqual({
        errors: [
          {
            status: '403',
            title: 'Forbidden',
            detail: 'Action list_agents requires admin authentication (mTLS certificate)',
          },
        ],
      })
    })
  })
}
