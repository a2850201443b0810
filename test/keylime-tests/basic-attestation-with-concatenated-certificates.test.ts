/**
 * Mirror of keylime-tests `functional/basic-attestation-with-concatenated-certificates`
 * (RedHat-SP-Security/keylime-tests `ab163590314546d90cdcd7a89e56d3d0b562f4ec`), the access model
 * with a custom PKI: a root CA and an intermediate CA (`openssl/certgen`, here
 * `makeChainPki` in `test/support/openssl-pki.ts`) concatenated into one `cacerts.pem`; the
 * verifier's and registrar's server certificates, the verifier's client certificate and the
 * tenant's client certificate all issued by the intermediate. The control plane (child process)
 * runs with `tls_dir` = that directory, `trusted_client_ca` / `trusted_server_ca` =
 * `["cacerts.pem"]`, and the simulated agent trusts `cacerts.pem` for clients.
 *
 * Mirrored: "Add keylime agent" — `keylime_tenant -v 127.0.0.1 -t 127.0.0.1 -u <id> --verify
 * --runtime-policy policy.json --file /etc/hostname -c add`, the agent reaches "Get Quote", and
 * `cvlist` lists it. Added here (the access model behind it): on the verifier and registrar TLS
 * ports the intermediate-issued tenant certificate is an admin (200), no certificate is 403
 * `list_agents` / `list_registrations`, and a certificate of another CA is refused before any
 * answer.
 *
 * Not mirrored: `functional/basic-attestation-with-custom-certificates`' payload, revocation
 * script and HTTPS webhook phases (agent-side and notifier features outside these routes); its
 * chain set-up is this one with the two CA certificates in separate files.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runPolicyCreateRuntime } from '../../src/policy-tools/index.ts'
import { OPENSSL } from '../support/ca-helpers.ts'
import { imaEntry, runTool } from '../support/host-evidence.ts'
import { type ChainPki, makeChainPki } from '../support/openssl-pki.ts'
import { startTenantBed, type TenantBed } from '../support/tenant-bed.ts'
import { untilValue } from '../support/until.ts'

if (!OPENSSL) console.log('skipping basic-attestation-with-concatenated-certificates: no openssl')

const HOSTNAME = 'keylime-tests\n'
const BOOT_AGGREGATE = createHash('sha256').update(Buffer.alloc(320)).digest('hex')
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

describe.skipIf(!OPENSSL)(
  'keylime-tests functional/basic-attestation-with-concatenated-certificates',
  () => {
    let pki: ChainPki
    let bed: TenantBed

    beforeAll(async () => {
      pki = makeChainPki()
      const certs = (role: 'VERIFIER' | 'REGISTRAR', server: string) => ({
        [`KEYLIME_${role}_TLS_DIR`]: pki.dir,
        [`KEYLIME_${role}_TRUSTED_CLIENT_CA`]: '["cacerts.pem"]',
        [`KEYLIME_${role}_SERVER_CERT`]: `${server}-cert.pem`,
        [`KEYLIME_${role}_SERVER_KEY`]: `${server}-key.pem`,
      })
      bed = await startTenantBed({
        count: 1,
        seed: `kt-chain-${process.pid}`,
        agentTrustedCaPem: pki.caCerts,
        env: {
          ...certs('VERIFIER', 'verifier'),
          KEYLIME_VERIFIER_TRUSTED_SERVER_CA: '["cacerts.pem"]',
          KEYLIME_VERIFIER_CLIENT_CERT: join(pki.dir, 'verifier-client-cert.pem'),
          KEYLIME_VERIFIER_CLIENT_KEY: join(pki.dir, 'verifier-client-key.pem'),
          KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.3',
          ...certs('REGISTRAR', 'registrar'),
          KEYLIME_TENANT_TLS_DIR: pki.dir,
          KEYLIME_TENANT_TRUSTED_SERVER_CA: '["cacerts.pem"]',
          KEYLIME_TENANT_CLIENT_CERT: 'tenant-cert.pem',
          KEYLIME_TENANT_CLIENT_KEY: 'tenant-key.pem',
        },
      })
      bed.agents[0]!.serveImaList(
        imaEntry('boot_aggregate', BOOT_AGGREGATE).line +
          imaEntry('/etc/hostname', sha256(HOSTNAME)).line,
      )
      writeFileSync(join(pki.dir, 'hostname'), HOSTNAME)
      writeFileSync(
        join(pki.dir, 'allowlist.txt'),
        `${BOOT_AGGREGATE}  boot_aggregate\n${sha256(HOSTNAME)}  /etc/hostname\n`,
      )
      await runTool(runPolicyCreateRuntime, [
        ...['--allowlist', join(pki.dir, 'allowlist.txt'), '-o', join(pki.dir, 'policy.json')],
      ])
    }, 60_000)

    afterAll(async () => {
      await bed?.stop()
    })

    test('add --verify with the runtime policy: the agent attests, cvlist lists it', async () => {
      const a = bed.agents[0]!
      const add = await bed.tenant([
        ...bed.agentArgs(a),
        ...['--verify', '--runtime-policy', join(pki.dir, 'policy.json')],
        ...['--file', join(pki.dir, 'hostname'), '-c', 'add'],
      ])
      expect({ code: add.code, err: add.code === 0 ? '' : add.err }).toEqual({ code: 0, err: '' })
      await untilValue(
        async () => {
          const r = await bed.tenant(['-c', 'cvstatus', '-u', a.uuid, '--json'])
          const s = (r.doc.results as Record<string, Record<string, unknown>>)[a.uuid]!
          return s.operational_state === 'Get Quote' && Number(s.attestation_count) >= 1
        },
        20_000,
        'Get Quote after an attestation',
      )
      expect((await bed.tenant(['-c', 'cvlist'])).text).toContain(a.uuid)
    }, 30_000)

    test('(added) the intermediate-issued tenant certificate is an admin; no certificate is 403; another CA is refused', async () => {
      const pem = (f: string) => readFileSync(join(pki.dir, f), 'utf8')
      const who = {
        tenant: { cert: pem('tenant-cert.pem'), key: pem('tenant-key.pem') },
        none: {},
        rogue: { cert: pem('rogue-client-cert.pem'), key: pem('rogue-client-key.pem') },
      }
      const call = async (url: string, w: keyof typeof who) => {
        try {
          const res = await fetch(url, {
            keepalive: false,
            tls: { ca: [pki.caCerts], checkServerIdentity: () => undefined, ...who[w] },
          } as RequestInit)
          return { status: res.status, text: await res.text() }
        } catch {
          return null
        }
      }
      for (const [port, action] of [
        [bed.ports.verifier, 'list_agents'],
        [bed.ports.registrarTls, 'list_registrations'],
      ] as const) {
        const url = `https://127.0.0.1:${port}/v2.6/agents/`
        expect((await call(url, 'tenant'))?.status).toBe(200)
        const anonymous = await call(url, 'none')
        expect(anonymous?.status).toBe(403)
        expect(anonymous?.text).toContain(`Action ${action} requires admin authentication`)
        expect(await call(url, 'rogue')).toBeNull()
      }
    })
  },
)
