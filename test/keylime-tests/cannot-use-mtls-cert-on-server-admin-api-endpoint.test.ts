/**
 * Mirror of keylime-tests `regression/cannot-use-mTLS-cert-on-server-admin-api-endpoint`
 * (RedHat-SP-Security/keylime-tests `ab163590314546d90cdcd7a89e56d3d0b562f4ec`, the `/pull` plan):
 * the control plane as a child process (verifier 8881-style port, registrar plain and TLS ports,
 * one cv_ca), a simulated agent registered and added with `keylime_tenant -c add`, and then:
 *
 * 1. TLS to the verifier: the cv_ca client certificate is accepted; the agent's self-signed mTLS
 *    certificate (`openssl req -x509 … -subj /CN=127.0.0.1`) is refused;
 * 2. `keylime_tenant` configured with that self-signed certificate (`tls_dir`, `client_key`,
 *    `client_cert`) fails `-c cvlist` and `-c delete --uuid` (and the agent stays);
 * 3. no client certificate (`curl -k`) on the verifier: `GET /v2.4/agents/` is 403 "Action
 *    list_agents requires admin authentication" without the agent id, `DELETE /v2.4/agents/<id>` is
 *    403 "Action delete_agent requires admin authentication" and not "Accepted|Success";
 * 4–6. the same on the registrar TLS port: the self-signed certificate refused, the tenant's
 *    `reglist` and `regdelete` fail, `list_registrations` and `delete_registration` 403;
 * 7. the registrar's plain port: HTTPS to it fails; `GET /v2.4/agents/` over HTTP does not list the
 *    agent: 400 "Bad Request" (upstream `https_required`: the route is not `allow_insecure`).
 *
 * Not mirrored: the `/push` plan (push mode is not served yet), and upstream's `SSL alert number
 * 48` — keylime-ts refuses a certificate that does not verify right after the handshake, before
 * any answer (docs/compatibility.md, 7.14 authorization), so the assertion is "no answer".
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { OPENSSL, openssl } from '../support/ca-helpers.ts'
import { startTenantBed, type TenantBed } from '../support/tenant-bed.ts'

if (!OPENSSL) console.log('skipping cannot-use-mTLS-cert-on-server-admin-api-endpoint: no openssl')

/** An answer over TLS, or `null` when the connection was refused before any answer. */
interface Answer {
  status: number
  text: string
}

describe.skipIf(!OPENSSL)(
  'keylime-tests regression/cannot-use-mTLS-cert-on-server-admin-api-endpoint',
  () => {
    let bed: TenantBed
    let agentId: string
    const work = mkdtempSync(join(tmpdir(), 'kl-kt-mtls-'))
    const agentTls = join(work, 'agent-tls')

    const pem = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8')
    /** GOOD_CERTS: the cv_ca client certificate. BAD_CERTS: the agent's self-signed one. */
    const certs = {
      good: () => ({
        cert: pem(bed.cvCa, 'client-cert.crt'),
        key: pem(bed.cvCa, 'client-private.pem'),
      }),
      bad: () => ({
        cert: pem(agentTls, 'server-cert.crt'),
        key: pem(agentTls, 'server-private.pem'),
      }),
      none: () => ({}),
    }
    const tenant = (args: string[]) => bed.tenant(args)

    /** The tenant with the agent's self-signed certificate as its client certificate. */
    const badTenant = (args: string[]) =>
      bed.tenant(args, {
        KEYLIME_TENANT_TLS_DIR: agentTls,
        KEYLIME_TENANT_CLIENT_KEY: 'server-private.pem',
        KEYLIME_TENANT_CLIENT_CERT: 'server-cert.crt',
        KEYLIME_TENANT_TRUSTED_SERVER_CA: `['${join(bed.cvCa, 'cacert.crt')}']`,
      })

    /** `curl -kv [-X method] url` with `who`'s certificate; null when refused before an answer. */
    async function call(
      url: string,
      who: keyof typeof certs,
      method = 'GET',
    ): Promise<Answer | null> {
      try {
        const res = await fetch(url, {
          method,
          keepalive: false,
          tls: { rejectUnauthorized: false, ...certs[who]() },
        } as RequestInit)
        return { status: res.status, text: await res.text() }
      } catch {
        return null
      }
    }

    beforeAll(async () => {
      bed = await startTenantBed({ count: 1, seed: `kt-mtls-${process.pid}` })
      const agent = bed.agents[0]!
      agentId = agent.uuid
      writeFileSync(join(work, 'hostname'), 'keylime-tests\n')
      const add = await tenant([...bed.agentArgs(agent), '-f', join(work, 'hostname'), '-c', 'add'])
      if (add.code !== 0) throw new Error(`tenant add failed (${add.code}): ${add.err}`)
      // The agent's self-signed server certificate, as the test makes it for the push agent.
      mkdirSync(agentTls)
      const made = openssl(
        [
          ...['req', '-x509', '-newkey', 'rsa:2048', '-sha256', '-days', '365', '-nodes'],
          ...['-keyout', 'server-private.pem', '-out', 'server-cert.crt', '-subj', '/CN=127.0.0.1'],
          ...['-addext', 'subjectAltName=IP:127.0.0.1'],
        ],
        agentTls,
      )
      if (made.code !== 0) throw new Error(`openssl req failed: ${made.out}`)
    }, 60_000)

    afterAll(async () => {
      await bed?.stop()
    })

    const verifier = () => `https://127.0.0.1:${bed.ports.verifier}`
    const registrarTls = () => `https://127.0.0.1:${bed.ports.registrarTls}`

    for (const [name, base] of [
      ['verifier', verifier],
      ['registrar TLS port', registrarTls],
    ] as const) {
      test(`${name}: the cv_ca client certificate connects, the agent's self-signed one is refused`, async () => {
        expect((await call(`${base()}/version`, 'good'))?.status).toBe(200)
        expect(await call(`${base()}/version`, 'bad')).toBeNull()
      })
    }

    test("tenant with the agent's self-signed certificate: cvlist and delete fail", async () => {
      const list = await badTenant(['-c', 'cvlist'])
      expect(list.code).not.toBe(0)
      // Upstream greps (TLSV1_ALERT_UNKNOWN_CA|Connection reset by peer|SSLError).
      expect(list.err).toMatch(/connection reset during TLS/i)
      expect(list.out).not.toContain(agentId)
      const del = await badTenant(['-c', 'delete', '--uuid', agentId])
      expect(del.code).not.toBe(0)
      expect((await tenant(['-c', 'cvlist'])).out).toContain(agentId)
    })

    test('verifier admin API with no certificate: 403 list_agents, 403 delete_agent', async () => {
      const list = await call(`${verifier()}/v2.4/agents/`, 'none')
      expect(list?.status).toBe(403)
      expect(list?.text).not.toContain(agentId)
      expect(list?.text).toMatch(/Forbidden.*Action list_agents requires admin authentication /)
      const del = await call(`${verifier()}/v2.4/agents/${agentId}`, 'none', 'DELETE')
      expect(del?.status).toBe(403)
      expect(del?.text).not.toMatch(/Accepted|Success/i)
      expect(del?.text).toMatch(/Forbidden.*Action delete_agent requires admin authentication /)
      expect((await tenant(['-c', 'cvlist'])).out).toContain(agentId)
    })

    test("tenant with the agent's self-signed certificate: reglist and regdelete fail", async () => {
      const list = await badTenant(['-c', 'reglist'])
      expect(list.code).not.toBe(0)
      expect(list.err).toMatch(/connection reset during TLS/i)
      expect(list.out).not.toContain(agentId)
      const del = await badTenant(['-c', 'regdelete', '--uuid', agentId])
      expect(del.code).not.toBe(0)
      expect((await tenant(['-c', 'reglist'])).out).toContain(agentId)
    })

    test('registrar admin API with no certificate: 403 list_registrations, delete_registration', async () => {
      const list = await call(`${registrarTls()}/v2.4/agents/`, 'none')
      expect(list?.status).toBe(403)
      expect(list?.text).not.toContain(agentId)
      expect(list?.text).toMatch(
        /Forbidden.*Action list_registrations requires admin authentication /,
      )
      const del = await call(`${registrarTls()}/v2.4/agents/${agentId}`, 'none', 'DELETE')
      expect(del?.status).toBe(403)
      expect(del?.text).not.toMatch(/Accepted|Success/i)
      expect(del?.text).toMatch(
        /Forbidden.*Action delete_registration requires admin authentication /,
      )
      expect((await tenant(['-c', 'reglist'])).out).toContain(agentId)
    })

    test('registrar plain port: HTTPS fails, HTTP does not list the agent', async () => {
      const plain = `127.0.0.1:${bed.ports.registrar}/v2.4/agents/`
      expect(await call(`https://${plain}`, 'none')).toBeNull()
      const r = await fetch(`http://${plain}`)
      expect(r.status).toBeGreaterThanOrEqual(400)
      expect(await r.text()).not.toContain(agentId)
    })

    test('registrar plain port: GET /v2.4/agents/ is 400 Bad Request, as upstream', async () => {
      const r = await fetch(`http://127.0.0.1:${bed.ports.registrar}/v2.4/agents/`)
      expect(r.status).toBe(400)
      expect(await r.text()).toMatch(/Bad Request/i)
    })
  },
)
