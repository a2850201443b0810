/**
 * Mirror of keylime-tests `regression/push-tenant_cannot_access_agent_endpoint`
 * (RedHat-SP-Security/keylime-tests `ab163590314546d90cdcd7a89e56d3d0b562f4ec`): a verifier with
 * `mode = push` on a real TLS listener, and the tenant's certificate (the cv_ca client
 * certificate, an admin) used with `curl --cert` to submit an attestation for an agent:
 * `POST /v3/agents/<id>/attestations` with upstream's body must be 403 "Forbidden … Action
 * submit_attestation requires agent authentication (PoP token)" — an admin is not an agent.
 * Also asserted: the `PATCH …/attestations/latest` form of the same action, and that an anonymous
 * client gets the same refusal.
 *
 * Not mirrored: the push agent and registrar of upstream's set-up (the refusal is the access
 * layer's, before any push route; the whole chain is test/push-e2e.test.ts).
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { databaseTargets } from '../support/databases.ts'
import { createTestCa, startTestVerifier, type TestCa } from '../support/verifier-harness.ts'

const AGENT_ID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
const BODY = { quote: 'fake_quote_data', hash_alg: 'sha256', enc_alg: 'rsa', sign_alg: 'rsassa' }

describe('keylime-tests regression/push-tenant_cannot_access_agent_endpoint', () => {
  let db: KeylimeDatabase
  let ca: TestCa
  let verifier: VerifierHandle

  beforeAll(async () => {
    db = await databaseTargets()[0]!.open()
    ca = await createTestCa()
    verifier = await startTestVerifier(db, ca, { mode: 'push' })
  })

  afterAll(async () => {
    await verifier?.stop(200)
    await db?.close()
  })

  /** `curl -k [--cert client-cert.crt --key client-private.pem] -X method url -d BODY`. */
  async function submit(method: string, path: string, tenantCert: boolean) {
    const cert = tenantCert ? { cert: ca.tls.clientCert, key: ca.tls.clientKey } : {}
    const res = await fetch(`${verifier.servers[0]!.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(BODY),
      tls: { rejectUnauthorized: false, ...cert },
    } as RequestInit)
    return { status: res.status, text: await res.text() }
  }

  const refusal =
    /403.*Forbidden.*Action submit_attestation requires agent authentication \(PoP token\)/

  test('the tenant certificate cannot POST an attestation: 403, PoP token required', async () => {
    const r = await submit('POST', `/v3/agents/${AGENT_ID}/attestations`, true)
    expect(r.status).toBe(403)
    expect(r.text).toMatch(refusal)
  })

  test('nor PATCH the latest one; an anonymous client neither', async () => {
    const patch = await submit('PATCH', `/v3/agents/${AGENT_ID}/attestations/latest`, true)
    expect(patch.status).toBe(403)
    expect(patch.text).toMatch(refusal)
    const anonymous = await submit('POST', `/v3/agents/${AGENT_ID}/attestations`, false)
    expect(anonymous.status).toBe(403)
    expect(anonymous.text).toMatch(refusal)
  })
})
