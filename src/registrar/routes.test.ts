/**
 * The registrar routes through `app.request()` (STYLE rule 10): paths, methods, envelopes and
 * status codes as upstream's registrar answers them, with the bodies rust-keylime sends.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { tmpdir } from 'node:os'
import { type KeylimeDatabase, openDatabase } from '../db/index.ts'
import { addVersionRoutes } from '../http/add-version-routes.ts'
import { createApp, type KeylimeApp } from '../http/create-app.ts'
import { getLogger } from '../log/logger.ts'
import { addRegistrarRoutes } from './routes.ts'
import { RegistrarService } from './service.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from '../../test/support/software-agent.ts'

const log = getLogger('registrar-test')
const agent = new SoftwareAgent(makeSoftwareEk('ecc'), makeSoftwareAk('ecc'))
let kdb: KeylimeDatabase
let http: KeylimeApp
let mtls: KeylimeApp

beforeAll(async () => {
  kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  const service = new RegistrarService({
    database: kdb,
    log,
    certStore: { get: () => new Error('no store') },
  })
  http = createApp({ log, maxUploadSize: 64 * 1024 })
  addVersionRoutes(http)
  addRegistrarRoutes(http, service, 'http')
  mtls = createApp({ log })
  addVersionRoutes(mtls)
  addRegistrarRoutes(mtls, service, 'mtls')
})
afterAll(async () => {
  await kdb.close()
})

async function call(
  app: KeylimeApp,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
) {
  const res = await app.request(path, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  })
  const json = (await res.json()) as {
    code: number
    status: string
    results: Record<string, unknown>
  }
  expect(json.code).toBe(res.status) // envelope code = HTTP status, always
  expect(typeof json.status).toBe('string')
  expect(json.results).toBeDefined()
  return { status: res.status, json }
}

describe('registrar routes', () => {
  test('GET /version on both listeners', async () => {
    for (const app of [http, mtls]) {
      const { status, json } = await call(app, 'GET', '/version')
      expect(status).toBe(200)
      expect(json.results.current_version).toBe('2.6')
    }
  })

  test('rust-keylime flow: POST /v2.6/agents/{id}, PUT /v2.6/agents/{id}, then admin GET over mTLS', async () => {
    const id = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
    const reg = await call(http, 'POST', `/v2.6/agents/${id}`, agent.body())
    expect(reg.status).toBe(200)
    expect(reg.json.status).toBe('Success')
    const blob = reg.json.results.blob as string
    expect(Object.keys(reg.json.results)).toEqual(['blob'])
    const notYet = await call(mtls, 'GET', `/v2.6/agents/${id}`)
    expect(notYet.status).toBe(404)
    expect(notYet.json.status).toBe(`Agent with ID '${id}' has not been activated`)
    const act = await call(http, 'PUT', `/v2.6/agents/${id}`, { auth_tag: agent.authTag(id, blob) })
    expect(act.status).toBe(200)
    expect(act.json.results).toEqual({})
    const shown = await call(mtls, 'GET', `/v2.6/agents/${id}/`) // trailing slash accepted
    expect(shown.status).toBe(200)
    for (const k of [
      'agent_id',
      'ek_tpm',
      'ekcert',
      'aik_tpm',
      'mtls_cert',
      'ip',
      'port',
      'regcount',
      'ek_cert_verdict',
    ]) {
      expect(shown.json.results).toHaveProperty(k)
    }
    expect(shown.json.results.regcount).toBe(1)
    const list = await call(mtls, 'GET', '/v2.6/agents/')
    expect(list.json.results).toEqual({ uuids: [id] }) // flat list (the verifier's is nested)
  })

  test('v3: POST /v3/agents with agent_id in the body, POST /v3/agents/{id}/activate', async () => {
    const id = 'v3-agent'
    const reg = await call(http, 'POST', '/v3/agents', { ...agent.body(), agent_id: id })
    expect(reg.status).toBe(200)
    const act = await call(http, 'POST', `/v3.0/agents/${id}/activate`, {
      auth_tag: agent.authTag(id, reg.json.results.blob as string),
    })
    expect(act.status).toBe(200)
    expect((await call(mtls, 'GET', `/v3/agents/${id}`)).status).toBe(200)
    expect((await call(mtls, 'DELETE', `/v3/agents/${id}`)).status).toBe(200)
    expect((await call(mtls, 'DELETE', `/v3/agents/${id}`)).status).toBe(404)
    // v3 has no legacy routes
    expect((await call(http, 'POST', `/v3/agents/${id}`, agent.body())).status).toBe(404)
    expect((await call(http, 'PUT', `/v3/agents/${id}`, { auth_tag: 'x' })).status).toBe(404)
  })

  test('legacy PUT /v2.x/agents/{id}/activate and POST /v2/agents/{id}/activate', async () => {
    for (const [i, [method, suffix]] of [
      ['PUT', '/activate'],
      ['POST', '/activate'],
    ].entries()) {
      const id = `legacy-${i}`
      const reg = await call(http, 'POST', `/v2.1/agents/${id}`, agent.body())
      const act = await call(http, method!, `/v2/agents/${id}${suffix}`, {
        auth_tag: agent.authTag(id, reg.json.results.blob as string),
      })
      expect(act.status).toBe(200)
    }
  })

  test('wrong auth_tag: 400, record kept (not activated), the tag not echoed', async () => {
    const id = 'bad-tag'
    await call(http, 'POST', `/v2.6/agents/${id}`, agent.body())
    const tag = 'cd'.repeat(48)
    const act = await call(http, 'PUT', `/v2.6/agents/${id}`, { auth_tag: tag })
    expect(act.status).toBe(400)
    expect(act.json.status).toContain('does not match the expected value')
    expect(act.json.status).not.toContain(tag)
    expect((await call(mtls, 'GET', `/v2.6/agents/${id}`)).json.status).toBe(
      `Agent with ID '${id}' has not been activated`,
    )
  })

  test('admin routes are refused on the plain-HTTP listener', async () => {
    for (const [m, p] of [
      ['GET', '/v2.6/agents'],
      ['GET', '/v2.6/agents/x'],
      ['DELETE', '/v2.6/agents/x'],
    ] as const) {
      const r = await call(http, m, p)
      expect(r.status).toBe(400) // upstream `https_required`
    }
  })

  test('bad input: JSON, media type, ids, versions, sizes → 4xx envelopes', async () => {
    expect((await call(http, 'POST', '/v2.6/agents/x', '{"aik_tpm": ')).status).toBe(400)
    expect((await call(http, 'POST', '/v2.6/agents/x', '[1,2]')).status).toBe(400)
    expect((await call(http, 'POST', '/v2.6/agents/x', '')).status).toBe(400)
    expect(
      (await call(http, 'POST', '/v2.6/agents/x', agent.body(), { 'content-type': 'text/plain' }))
        .status,
    ).toBe(415)
    expect((await call(http, 'POST', '/v2.6/agents/a%20b', agent.body())).status).toBe(400)
    expect((await call(http, 'POST', '/v3/agents', agent.body())).status).toBe(400) // no agent_id
    expect((await call(http, 'POST', '/v2.9/agents/x', agent.body())).status).toBe(404)
    expect(
      (await call(http, 'POST', '/v2.6/agents/x', { ...agent.body(), aik_tpm: 'A'.repeat(70000) }))
        .status,
    ).toBe(413)
    const noAik = await call(http, 'POST', '/v2.6/agents/x', { ...agent.body(), aik_tpm: null })
    expect(noAik.status).toBe(400)
    expect(noAik.json.status).toBe(
      'Could not register agent with invalid data: aik_tpm is required',
    )
    for (const ip of ['host\u0000name', 'a b', 'x/y', 7]) {
      const bad = await call(http, 'POST', '/v2.6/agents/x', { ...agent.body(), ip })
      expect(bad.status).toBe(400)
    }
    expect((await call(mtls, 'GET', '/v2.6/agents/unknown')).status).toBe(404)
    expect((await call(http, 'PUT', '/v2.6/agents/unknown', { auth_tag: 'ab' })).status).toBe(404)
  })

  test('rust-keylime quirks: null certs, absent ek_tpm → 400 (no challenge possible), port as string', async () => {
    const body = { ...agent.body(), iak_cert: null, idevid_cert: null, port: '9002' }
    expect((await call(http, 'POST', '/v2.6/agents/quirks', body)).status).toBe(200)
    const { ek_tpm: _omit, ...noEk } = agent.body()
    const r = await call(http, 'POST', '/v2.6/agents/quirks-noek', noEk)
    expect(r.status).toBe(400)
    expect(r.json.status).toContain('ek_tpm is required')
  })
})
