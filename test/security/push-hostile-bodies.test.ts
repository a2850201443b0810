/**
 * Hostile push bodies: an agent (or whoever holds its token) may send anything to
 * `POST`/`PATCH /v3/agents/:id/attestations` and the v3 admin routes. Every malformed, mistyped,
 * oversized-in-parts or prototype-polluting body must get a typed 4xx JSON:API error document in
 * bounded time, never a 500, and leave the stored attestation unchanged.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { setLogSink } from '../../src/log/logger.ts'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { databaseTargets } from '../support/databases.ts'
import { generateSoftTpmKey, SoftTpm } from '../support/fleet/soft-tpm.ts'
import { createTestCa, startTestVerifier } from '../support/verifier-harness.ts'
import { pushCapabilities } from '../support/push-capabilities.ts'

setLogSink(() => {}, false)

const JSON_API = 'application/vnd.api+json'
const target = databaseTargets()[0]!

/** Bodies no parser should trip on. */
function hostileBodies(): unknown[] {
  const deep: Record<string, unknown> = {}
  let cur = deep
  for (let i = 0; i < 2000; i++) {
    const next = {}
    cur.data = next
    cur = next
  }
  const items = (v: unknown) => ({
    data: { type: 'attestation', attributes: { evidence_supported: v, evidence_collected: v } },
  })
  return [
    null,
    [],
    'x',
    42,
    {},
    { data: null },
    { data: [] },
    { data: { type: 'attestation' } },
    { data: { type: 'nope', attributes: {} } },
    { data: { type: 'attestation', attributes: [] } },
    JSON.parse(
      '{"__proto__":{"polluted":1},"data":{"type":"attestation","attributes":{"__proto__":{"x":1}}}}',
    ),
    items(null),
    items({}),
    items(new Array(10_000).fill(0)),
    items([null, 1, 'x', [], {}]),
    items([{ evidence_class: {}, evidence_type: [], capabilities: 'x' }]),
    items([
      {
        evidence_class: 'certification',
        evidence_type: 'tpm_quote',
        capabilities: {
          available_subjects: { sha256: 'x'.repeat(100_000) },
          hash_algorithms: [{}],
          certification_keys: [null],
        },
      },
    ]),
    items([
      {
        evidence_class: 'certification',
        evidence_type: 'tpm_quote',
        data: { message: 'A'.repeat(200_000), signature: 1, subject_data: null },
      },
    ]),
    items([
      {
        evidence_class: 'certification',
        evidence_type: 'tpm_quote',
        data: { message: 'AAAA', signature: 'AAAA', subject_data: 'AAAA' },
      },
    ]),
    deep,
  ]
}

describe(`hostile push bodies (${target.name})`, () => {
  let kdb: KeylimeDatabase
  let v: VerifierHandle
  const id = 'hostile-push-agent'

  beforeAll(async () => {
    kdb = await target.open()
    v = await startTestVerifier(
      kdb,
      await createTestCa(),
      { quote_interval: '0' },
      { checkWorkers: 0 },
    )
    const tpm = new SoftTpm({
      keys: {
        ek: generateSoftTpmKey('ecc'),
        ak: generateSoftTpmKey('ecc'),
        nk: generateSoftTpmKey('rsa'),
      },
    })
    const res = await v.app.request(`/v2.6/agents/${id}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        v: null,
        tpm_policy: JSON.stringify({ '15': ['00'.repeat(32)], mask: '0x8000' }),
        runtime_policy: '',
        mb_policy: null,
        mb_policy_name: '',
        ima_sign_verification_keys: '',
        metadata: '{}',
        revocation_key: '',
        accept_tpm_hash_algs: ['sha256'],
        accept_tpm_encryption_algs: ['ecc'],
        accept_tpm_signing_algs: ['ecdsa'],
        ak_tpm: Buffer.from(tpm.akTpm2b).toString('base64'),
      }),
    })
    expect(res.status).toBe(200)
  }, 30_000)

  afterAll(async () => {
    await v?.stop(100)
    await kdb?.close()
  })

  const send = async (method: string, path: string, body: string, agent = true) => {
    const app = agent ? v.asAgent(id) : v.app
    const t0 = performance.now()
    const res = await app.request(path, { method, headers: { 'content-type': JSON_API }, body })
    const ms = performance.now() - t0
    const doc = (await res.json()) as { errors?: { status: string; code: string }[] }
    return { status: res.status, doc, ms }
  }

  test('every hostile body is a typed 4xx JSON:API error, quickly', async () => {
    const texts = [...hostileBodies().map((b) => JSON.stringify(b)), '{"data":', '\u0000', '']
    const routes: [string, string, boolean][] = [
      ['POST', `/v3.0/agents/${id}/attestations`, true],
      ['PATCH', `/v3.0/agents/${id}/attestations/latest`, true],
      ['POST', '/v3.0/agents', false],
      ['PATCH', `/v3.0/agents/${id}`, false],
    ]
    for (const [method, path, agent] of routes) {
      for (const text of texts) {
        const r = await send(method, path, text, agent)
        expect(r.status, `${method} ${path} ${text.slice(0, 60)}`).toBeGreaterThanOrEqual(400)
        expect(r.status, `${method} ${path} ${text.slice(0, 60)}`).toBeLessThan(500)
        expect(r.doc.errors?.[0]?.status).toBe(String(r.status))
        expect(r.ms).toBeLessThan(2000)
      }
    }
    expect(({} as { polluted?: number }).polluted).toBeUndefined()
  }, 60_000)

  test('a refused PATCH leaves the attestation awaiting its evidence', async () => {
    const caps = pushCapabilities({
      akType: 'ecc',
      akTpm2b: Buffer.from('x'),
      localIdentifier: 'x',
      subjects: { sha256: [15] },
    })
    const created = await send('POST', `/v3.0/agents/${id}/attestations`, JSON.stringify(caps))
    expect(created.status).toBe(201)
    for (const text of hostileBodies().map((b) => JSON.stringify(b))) {
      await send('PATCH', `/v3.0/agents/${id}/attestations/latest`, text)
    }
    const latest = await v.store.attestations.latest(id)
    expect(latest?.stage).toBe('awaiting_evidence')
  })
})
