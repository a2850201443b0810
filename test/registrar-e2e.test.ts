/**
 * End to end: the registrar started in-process (`startRegistrar`, real listeners on 127.0.0.1:0,
 * cv_ca mTLS) against an independent "agent" made of swtpm and tpm2-tools.
 *
 * swtpm_setup manufactures a TPM with an RSA-2048 EK certificate from a throwaway swtpm local CA
 * (root → intermediate → EK); the root is the `tpm_cert_store`, and the agent sends the EK
 * certificate as PEM with the intermediate appended, as rust-keylime does with its NV chain.
 * The agent creates an AK under the EK, registers over HTTP, runs tpm2_activatecredential on our
 * blob, computes the auth_tag with `openssl dgst -sha384 -hmac`, activates, and the admin reads the
 * record back over mTLS. Negative cases: a wrong auth_tag changes nothing; a different AK is 403;
 * tampered AK attributes are 400; an unknown id is 404; a client without a certificate is refused
 * at the TLS handshake. Runs on every database target; skips with a reason when the tools are
 * missing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { databaseTargets } from './support/databases.ts'
import { startTestRegistrar, type TestRegistrar } from './support/test-registrar.ts'
import { missingTpm2ToolsAgentTools, Tpm2ToolsAgent } from './support/tpm2-tools-agent.ts'

const missing = missingTpm2ToolsAgentTools()
if (missing.length > 0) {
  console.log(
    `skipping registrar e2e: missing ${missing.join(', ')} (apt-get install swtpm swtpm-tools tpm2-tools openssl)`,
  )
}

let agent: Tpm2ToolsAgent
let store = ''

beforeAll(async () => {
  if (missing.length > 0) return
  agent = await Tpm2ToolsAgent.start()
  store = mkdtempSync(join(tmpdir(), 'keylime-reg-e2e-store-'))
  writeFileSync(join(store, 'swtpm-root.pem'), agent.tpm.rootCaPem)
}, 60_000)

afterAll(async () => {
  await agent?.remove()
  if (store !== '') rmSync(store, { recursive: true, force: true })
})

for (const target of missing.length > 0 ? [] : databaseTargets()) {
  describe(`registrar e2e with swtpm (${target.name})`, () => {
    let db: KeylimeDatabase
    let registrar: TestRegistrar

    beforeAll(async () => {
      db = await target.open()
      registrar = await startTestRegistrar({ database: db, tpmCertStore: store })
    })
    afterAll(async () => {
      await registrar?.stop()
      await db?.close()
    })

    const send = (method: string, path: string, body?: unknown) =>
      registrar.send(method, path, body)
    const admin = (method: string, path: string) => registrar.admin(method, path)
    const body = (ak: Buffer, extra: Record<string, unknown> = {}) =>
      agent.body(ak, { mtls_cert: registrar.client.cert, ...extra })
    const createAk = (tag: string) => agent.createAk(tag)
    const agentAuthTag = (tag: string, id: string, blob: string) => agent.authTag(tag, id, blob)

    test('register → ActivateCredential in swtpm → activate → read back over mTLS', async () => {
      const id = `e2e-${target.name}`
      const ak = createAk('a')
      const version = await send('GET', '/version')
      expect(version.json.results.current_version).toBe('2.6')
      const reg = await send('POST', `/v2.6/agents/${id}`, body(ak))
      expect(reg.status).toBe(200)
      const tag = agentAuthTag('a', id, reg.json.results.blob as string)
      expect(tag).toMatch(/^[0-9a-f]{96}$/)
      const act = await send('PUT', `/v2.6/agents/${id}`, { auth_tag: tag })
      expect(act.status).toBe(200)

      const shown = await admin('GET', `/v2.6/agents/${id}`)
      expect(shown.status).toBe(200)
      const r = shown.json.results
      expect(r.agent_id).toBe(id)
      expect(r.aik_tpm).toBe(ak.toString('base64'))
      expect(r.ek_tpm).toBe(agent.ekPub.toString('base64'))
      expect(r.ekcert).toBe(agent.ekCertDer.toString('base64'))
      expect(r.mtls_cert).toBe(registrar.client.cert.replace(/\r\n/g, '\n').trimEnd() + '\n')
      expect(r.ip).toBe('127.0.0.1')
      expect(r.port).toBe(9002)
      expect(r.regcount).toBe(1)
      expect(r.ek_cert_verdict).toBe('trusted')
      expect(r.tpm_manufacturer).toBe('id:00001014')
      expect((await admin('GET', '/v2.6/agents')).json.results.uuids).toContain(id)

      // The same TPM identity again: accepted, counted.
      const again = await send('POST', `/v2.6/agents/${id}`, body(ak, { port: 9003 }))
      expect(again.status).toBe(200)
      expect(
        (
          await send('PUT', `/v2.6/agents/${id}`, {
            auth_tag: agentAuthTag('a', id, again.json.results.blob as string),
          })
        ).status,
      ).toBe(200)
      expect((await admin('GET', `/v2.6/agents/${id}`)).json.results.regcount).toBe(2)

      // A different AK for the same id: 403, record intact.
      const ak2 = createAk('b')
      expect((await send('POST', `/v2.6/agents/${id}`, body(ak2))).status).toBe(403)
      expect((await admin('GET', `/v2.6/agents/${id}`)).json.results.aik_tpm).toBe(
        ak.toString('base64'),
      )

      // Delete over mTLS.
      expect((await admin('DELETE', `/v2.6/agents/${id}`)).status).toBe(200)
      expect((await admin('GET', `/v2.6/agents/${id}`)).status).toBe(404)
    }, 30_000)

    test('a wrong auth_tag changes nothing: the agent still activates', async () => {
      const id = `e2e-badtag-${target.name}`
      const ak = createAk('a')
      const reg = await send('POST', `/v2.6/agents/${id}`, body(ak))
      expect(reg.status).toBe(200)
      const good = agentAuthTag('a', id, reg.json.results.blob as string)
      const bad = (good[0] === '0' ? '1' : '0') + good.slice(1)
      const act = await send('PUT', `/v2.6/agents/${id}`, { auth_tag: bad })
      expect(act.status).toBe(400)
      expect((await admin('GET', `/v2.6/agents/${id}`)).status).toBe(404) // not yet activated
      expect((await send('PUT', `/v2.6/agents/${id}`, { auth_tag: good })).status).toBe(200)
      expect((await admin('GET', `/v2.6/agents/${id}`)).status).toBe(200)
    }, 30_000)

    test('an AK with tampered attributes is refused with 400', async () => {
      const ak = Buffer.from(createAk('a'))
      // TPM2B size (2) | type (2) | nameAlg (2) | objectAttributes (4): clear `restricted`.
      ak.writeUInt32BE(ak.readUInt32BE(6) & ~0x00010000, 6)
      const r = await send('POST', `/v2.6/agents/e2e-badak-${target.name}`, body(ak))
      expect(r.status).toBe(400)
      expect(r.json.status).toContain('restricted')
    }, 30_000)

    test('unknown id: 404 over mTLS; admin routes refused on HTTP; no client certificate: public only', async () => {
      expect((await admin('GET', '/v2.6/agents/nobody')).status).toBe(404)
      expect((await send('GET', '/v2.6/agents')).status).toBe(400)
      const anonymous = (path: string) =>
        fetch(`${registrar.httpsUrl}${path}`, {
          tls: { ca: registrar.client.ca, checkServerIdentity: () => undefined },
        })
      expect((await anonymous('/version')).status).toBe(200)
      expect((await anonymous('/v2.6/agents/nobody')).status).toBe(403)
      // With the client certificate the same request works.
      expect((await admin('GET', '/version')).status).toBe(200)
    })
  })
}
