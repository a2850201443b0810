/**
 * `keylime_tenant` in push mode (API 3.0): the requests it sends and what it prints, checked
 * against a small local HTTPS server (real TLS with an openssl-made PKI) that plays registrar and
 * verifier and records every request.
 *
 * A recording server instead of our verifier on purpose: the verifier's push routes
 * (`PATCH /v3.0/agents/:id`, push status fields) are being built concurrently, and these tests pin
 * the tenant's side of the wire (URLs, methods, media types, JSON bodies) as upstream 7.14 and the
 * v3 agent resource define it. The live counterpart against upstream's push verifier is
 * test/tenant-push-upstream.test.ts.
 *
 * @module
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Server } from 'bun'
import { runTenant } from './support/run-tenant.ts'
import { controlPlaneEnv } from './support/control-plane-process.ts'
import { hasOpenssl, makeTestPki } from './support/openssl-pki.ts'

const UUID = 'push-agent-0001'
const PULL_UUID = 'pull-agent-0001'
const AK = Buffer.from('ak-tpm2b-public').toString('base64')

interface Recorded {
  role: 'registrar' | 'verifier'
  method: string
  path: string
  contentType: string | null
  body: unknown
}

/** What the fake verifier answers to `PATCH /v3.0/agents/:id`. */
let patchAnswer: 'ok' | 'html500' = 'ok'
/** The registrar record's `ekcert` and contact address. */
let ekcert: string | null = 'emulator'
let regAddress: { ip: string | null; port: number | null } = { ip: '127.0.0.1', port: 9002 }
let requests: Recorded[] = []
let verifier: Server<undefined> | undefined
let registrar: Server<undefined> | undefined
let env: Record<string, string> = {}
let work = ''

/** A push agent's v2 status as upstream 7.14's push verifier renders it (process_get_status). */
function pushStatus(opState: number | null): Record<string, unknown> {
  return {
    operational_state: opState,
    v: null,
    ip: null,
    port: null,
    tpm_policy: '{"mask": "0x0"}',
    verifier_id: 'default',
    verifier_ip: '127.0.0.1',
    verifier_port: verifier?.port,
    attestation_count: 0,
    last_received_quote: 0,
    last_successful_attestation: 0,
    attestation_status: 'PENDING',
    attestation_period: '2s',
    maximum_attestation_interval: '10s',
  }
}

const envelope = (results: unknown, code = 200) =>
  Response.json({ code, status: code === 200 ? 'Success' : 'Error', results }, { status: code })

async function record(role: Recorded['role'], req: Request): Promise<string> {
  const url = new URL(req.url)
  const text = await req.text()
  const body: unknown = text === '' ? null : JSON.parse(text)
  const path = url.pathname + url.search
  requests.push({
    role,
    method: req.method,
    path,
    contentType: req.headers.get('content-type'),
    body,
  })
  return `${req.method} ${url.pathname}`
}

async function registrarAnswer(req: Request): Promise<Response> {
  const m = await record('registrar', req)
  if (m === `GET /v2.6/agents/${UUID}` || m === `GET /v2.6/agents/${PULL_UUID}`)
    return envelope({
      aik_tpm: AK,
      ek_tpm: AK,
      ekcert,
      mtls_cert: null,
      ...regAddress,
      regcount: 1,
    })
  return envelope({}, 404)
}

async function verifierAnswer(req: Request): Promise<Response> {
  const m = await record('verifier', req)
  const url = new URL(req.url)
  if (m === 'GET /version') return new Response('', { status: 410 }) // a push-mode verifier
  if (m === `GET /v2.6/agents/${UUID}`) return envelope(pushStatus(3))
  if (m === `GET /v2.6/agents/${PULL_UUID}`)
    return envelope({ ...pushStatus(3), ip: '127.0.0.1', port: 9002 })
  if (m === `POST /v2.6/agents/${UUID}`) return envelope({})
  if (m === `DELETE /v2.6/agents/${UUID}`) return envelope({})
  if (req.method === 'PUT' && url.pathname.endsWith('/reactivate')) return envelope({})
  if (m === `PATCH /v3.0/agents/${UUID}`) {
    if (patchAnswer === 'html500')
      return new Response('<html><title>500: Internal Server Error</title></html>', {
        status: 500,
        headers: { 'content-type': 'text/html' },
      })
    return Response.json(
      { data: { type: 'agent', id: UUID, attributes: { accept_attestations: true } } },
      { headers: { 'content-type': 'application/vnd.api+json' } },
    )
  }
  if (m === 'GET /v2.6/agents/')
    return envelope({ [UUID]: { ...pushStatus(null), attestation_status: 'TIMEOUT' } })
  return envelope({}, 404)
}

beforeAll(async () => {
  if (!hasOpenssl) return
  const pki = makeTestPki()
  const base = await controlPlaneEnv()
  work = mkdtempSync(join(tmpdir(), 'kl-tenant-push-'))
  const cvCa = join(base.dir, 'cv_ca')
  mkdirSync(cvCa, { recursive: true })
  writeFileSync(join(cvCa, 'cacert.crt'), pki.caCert)
  writeFileSync(join(cvCa, 'client-cert.crt'), pki.clientCert)
  writeFileSync(join(cvCa, 'client-private.pem'), pki.clientKey, { mode: 0o600 })
  writeFileSync(join(work, 'secret.txt'), 'secret')
  const tls = { cert: pki.serverCert, key: pki.serverKey }
  verifier = Bun.serve({ hostname: '127.0.0.1', port: 19401, tls, fetch: verifierAnswer })
  registrar = Bun.serve({ hostname: '127.0.0.1', port: 19402, tls, fetch: registrarAnswer })
  env = {
    ...base.env,
    KEYLIME_TENANT_VERIFIER_IP: '127.0.0.1',
    KEYLIME_TENANT_VERIFIER_PORT: String(verifier.port),
    KEYLIME_TENANT_REGISTRAR_IP: '127.0.0.1',
    KEYLIME_TENANT_REGISTRAR_PORT: String(registrar.port),
    KEYLIME_TENANT_REQUIRE_EK_CERT: 'False',
    KEYLIME_TENANT_RETRY_INTERVAL: '0.1',
    KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
    KEYLIME_TENANT_MAX_RETRIES: '2',
  }
})

afterAll(() => {
  verifier?.stop(true)
  registrar?.stop(true)
})

beforeEach(() => {
  requests = []
  patchAnswer = 'ok'
  ekcert = 'emulator'
  regAddress = { ip: '127.0.0.1', port: 9002 }
})

async function tenant(args: string[], extra: Record<string, string> = {}) {
  const { code, out, err } = await runTenant(args, { ...env, ...extra })
  const doc = () => JSON.parse(out) as { results: Record<string, unknown>; error?: unknown }
  return { code, out, err, doc }
}

const calls = () => requests.map((r) => `${r.role} ${r.method} ${r.path}`)

describe.skipIf(!hasOpenssl)('tenant --push-model (recording HTTPS server)', () => {
  test('add: v2 enrolment with v null and the registered address, no agent contact', async () => {
    const r = await tenant(['-c', 'add', '-u', UUID, '--push-model', '--json'])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    expect(calls()).toEqual([
      `registrar GET /v2.6/agents/${UUID}`,
      'verifier GET /version', // 410 from a push-mode verifier → the current version
      `verifier POST /v2.6/agents/${UUID}`,
      `verifier GET /v2.6/agents/${UUID}`, // poll until added
    ])
    const post = requests[2]!
    expect(post.contentType).toBe('application/json')
    expect(post.body).toMatchObject({
      v: null,
      cloudagent_ip: '127.0.0.1', // as upstream: sent, and ignored by a push verifier
      cloudagent_port: 9002,
      ak_tpm: AK,
      mtls_cert: null,
      revocation_key: '',
      metadata: '{}',
    })
    expect(r.doc().results).toMatchObject({
      agent_id: UUID,
      push_model: true,
      payload: 'none',
      verified: false,
      operational_state: null,
      attestation_status: 'PENDING',
    })
    expect(r.err).toContain('is not contacted')
  })

  test('add: needs no agent address (null when unknown); one given on the command line wins', async () => {
    regAddress = { ip: null, port: null }
    const none = await tenant(['-c', 'add', '-u', UUID, '--push-model'])
    expect(none.code).toBe(0)
    expect(requests.find((q) => q.method === 'POST')?.body).toMatchObject({
      cloudagent_ip: null,
      cloudagent_port: null,
    })
    requests = []
    const r = await tenant([
      '-c',
      'add',
      '-u',
      UUID,
      '--push-model',
      '-t',
      '10.0.0.5',
      '-tp',
      '9100',
    ])
    expect(r.code).toBe(0)
    expect(requests.find((q) => q.method === 'POST')?.body).toMatchObject({
      v: null,
      cloudagent_ip: '10.0.0.5',
      cloudagent_port: 9100,
    })
  })

  test('add: a payload cannot be delivered to a push agent (usage error, nothing sent)', async () => {
    const r = await tenant([
      '-c',
      'add',
      '-u',
      UUID,
      '--push-model',
      '-f',
      join(work, 'secret.txt'),
    ])
    expect(r.code).toBe(2)
    expect(r.err).toContain('cannot be used with --push-model')
    expect(requests).toEqual([])
  })

  test('add: require_ek_cert applies to push enrolments (no EK certificate → exit 5, no POST)', async () => {
    ekcert = null
    const r = await tenant(['-c', 'add', '-u', UUID, '--push-model', '--json'], {
      KEYLIME_TENANT_REQUIRE_EK_CERT: 'True',
    })
    expect(r.code).toBe(5)
    expect(JSON.stringify(r.doc().error)).toContain('No EK cert provided')
    expect(requests.some((q) => q.method === 'POST')).toBe(false)
  })

  test('update: delete on the owning verifier, then the push enrolment', async () => {
    const r = await tenant(['-c', 'update', '-u', UUID, '--push-model'])
    expect(r.code).toBe(0)
    const writes = calls().filter((c) => !c.includes(' GET '))
    expect(writes).toEqual([
      `verifier DELETE /v2.6/agents/${UUID}`,
      `verifier POST /v2.6/agents/${UUID}`,
    ])
    expect(requests.find((q) => q.method === 'POST')?.body).toMatchObject({ v: null })
  })

  test('cvstatus --push-model drops operational_state and shows the push status fields', async () => {
    const r = await tenant(['-c', 'cvstatus', '-u', UUID, '--push-model', '--json'])
    expect(r.code).toBe(0)
    const st = r.doc().results[UUID] as Record<string, unknown>
    expect(st).not.toHaveProperty('operational_state')
    expect(st).toMatchObject({
      attestation_status: 'PENDING',
      attestation_period: '2s',
      maximum_attestation_interval: '10s',
    })
    const human = await tenant(['-c', 'cvstatus', '-u', UUID])
    expect(human.code).toBe(0)
    expect(human.out).toContain('"operational_state": "Get Quote"')
    expect(human.out).toContain('"attestation_status": "PENDING"')
    expect(human.out).toContain('"maximum_attestation_interval": "10s"')
  })

  test('bulkinfo names a null operational_state "Not applicable (Push Mode)"', async () => {
    const r = await tenant(['-c', 'bulkinfo', '--json'])
    expect(r.code).toBe(0)
    expect(r.doc().results[UUID]).toMatchObject({
      operational_state: 'Not applicable (Push Mode)',
      attestation_status: 'TIMEOUT',
    })
  })

  test('reactivate of a push agent: PATCH /v3.0/agents/:id with the JSON:API body', async () => {
    const r = await tenant(['-c', 'reactivate', '-u', UUID, '--json'])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    const patch = requests.find((q) => q.method === 'PATCH')
    expect(patch).toEqual({
      role: 'verifier',
      method: 'PATCH',
      path: `/v3.0/agents/${UUID}`,
      contentType: 'application/vnd.api+json',
      body: { data: { type: 'agent', id: UUID, attributes: { accept_attestations: true } } },
    })
    expect(calls().some((c) => c.includes(' PUT '))).toBe(false)
    expect(r.doc().results).toMatchObject({ reactivated: true, push_model: true })
  })

  test('reactivate of a push agent on a verifier without the v3 agent API falls back to PUT', async () => {
    patchAnswer = 'html500' // upstream 7.14 answers 500 for v3 admin routes
    const r = await tenant(['-c', 'reactivate', '-u', UUID])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toMatchObject({ code: 0 })
    expect(calls().filter((c) => !c.includes(' GET '))).toEqual([
      `verifier PATCH /v3.0/agents/${UUID}`,
      `verifier PUT /v2.6/agents/${UUID}/reactivate`,
    ])
    expect(r.err).toContain('using PUT /reactivate')
  })

  test('reactivate of a pull agent keeps the v2 PUT; -nvc --push-model PATCHes without a lookup', async () => {
    const pull = await tenant(['-c', 'reactivate', '-u', PULL_UUID])
    expect(pull.code).toBe(0)
    expect(calls()).toEqual([
      `verifier GET /v2.6/agents/${PULL_UUID}`,
      `verifier PUT /v2.6/agents/${PULL_UUID}/reactivate`,
    ])
    requests = []
    const nvc = await tenant(['-c', 'reactivate', '-u', UUID, '-nvc', '--push-model'])
    expect(nvc.code).toBe(0)
    expect(calls()).toEqual([`verifier PATCH /v3.0/agents/${UUID}`])
  })
})
