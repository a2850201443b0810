/**
 * End to end: the registrar started in-process (`startRegistrar`, real listeners on 127.0.0.1:0,
 * cv_ca mTLS) against an independent "agent" made of swtpm and tpm2-tools.
 *
 * swtpm_setup manufactures a TPM with an RSA-2048 EK certificate from a throwaway swtpm local CA
 * (root → intermediate → EK); the root is the `tpm_cert_store`, and the agent sends the EK
 * certificate as PEM with the intermediate appended, as rust-keylime does with its NV chain.
 * The agent creates an AK under the EK, registers over HTTP, runs tpm2_activatecredential on our
 * blob, computes the auth_tag with `openssl dgst -sha384 -hmac`, activates, and the admin reads the
 * record back over mTLS. Negative cases: wrong auth_tag deletes; a different AK is 403; tampered
 * AK attributes are 400; an unknown id is 404; a client without a certificate is refused at the
 * TLS handshake. Runs on every database target; skips with a reason when the tools are missing.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  DEFAULT_CA_SETTINGS,
  ensureCvCa,
  loadTlsMaterial,
  resolveTlsFiles,
  type TlsMaterial,
} from '../src/ca/index.ts'
import { loadRegistrarConfig, type RegistrarConfig } from '../src/config/index.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import type { RoleHandle } from '../src/http/role.ts'
import { getLogger } from '../src/log/logger.ts'
import { startRegistrar } from '../src/registrar/start-registrar.ts'
import { databaseTargets } from './support/databases.ts'
import { startSwtpm, type Swtpm } from './support/swtpm.ts'

const TOOLS = [
  'swtpm',
  'swtpm_setup',
  'swtpm_localca',
  'openssl',
  'tpm2_createak',
  'tpm2_readpublic',
  'tpm2_nvread',
  'tpm2_activatecredential',
  'tpm2_startauthsession',
  'tpm2_policysecret',
  'tpm2_flushcontext',
]
const missing = TOOLS.filter((t) => Bun.which(t) === null)
if (missing.length > 0) {
  console.log(
    `skipping registrar e2e: missing ${missing.join(', ')} (apt-get install swtpm swtpm-tools tpm2-tools openssl)`,
  )
}
const EK_HANDLE = '0x81010001'
const EK_CERT_NV = '0x01c00002'

let work = ''
let port = 0
let tpm: Swtpm | undefined
let tls: TlsMaterial
let config: RegistrarConfig
let ekPub: Buffer
let ekCertDer: Buffer
let intermediatePem = ''

function run(args: string[], opts: { stdin?: string; tcti?: boolean } = {}) {
  const p = Bun.spawnSync(args, {
    cwd: work,
    env: { ...process.env, TPM2TOOLS_TCTI: `swtpm:host=127.0.0.1,port=${port}` },
    stdin: opts.stdin === undefined ? 'ignore' : Buffer.from(opts.stdin),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { ok: p.exitCode === 0, stdout: p.stdout.toString(), stderr: p.stderr.toString() }
}

function must(args: string[], stdin?: string): string {
  const r = run(args, { stdin })
  if (!r.ok) throw new Error(`${args.join(' ')} failed: ${r.stderr}`)
  return r.stdout
}

function flushAll(): void {
  run(['tpm2_flushcontext', '-t'])
  run(['tpm2_flushcontext', '-s'])
}

function pem(der: Uint8Array): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
}

/** Creates an AK under the persistent EK; returns its TPM2B_PUBLIC (ak-<tag>.pub, context ak-<tag>.ctx). */
function createAk(tag: string): Buffer {
  flushAll()
  must([
    'tpm2_createak',
    '-C',
    EK_HANDLE,
    '-c',
    `ak-${tag}.ctx`,
    '-G',
    'rsa',
    '-g',
    'sha256',
    '-s',
    'rsassa',
    '-u',
    `ak-${tag}.pub`,
    '-n',
    `ak-${tag}.name`,
  ])
  flushAll()
  return readFileSync(join(work, `ak-${tag}.pub`))
}

/** The agent's half: TPM2_ActivateCredential on the blob, then the auth_tag via openssl. */
function agentAuthTag(tag: string, agentId: string, blobB64: string): string {
  writeFileSync(join(work, 'cred.blob'), Buffer.from(blobB64, 'base64'))
  rmSync(join(work, 'cred.out'), { force: true })
  flushAll()
  must(['tpm2_startauthsession', '--policy-session', '-S', 'session.ctx'])
  must(['tpm2_policysecret', '-S', 'session.ctx', '-c', 'e'])
  must([
    'tpm2_activatecredential',
    '-c',
    `ak-${tag}.ctx`,
    '-C',
    EK_HANDLE,
    '-i',
    'cred.blob',
    '-o',
    'cred.out',
    '-P',
    'session:session.ctx',
  ])
  flushAll()
  const key = readFileSync(join(work, 'cred.out')).toString('base64')
  const out = must(['openssl', 'dgst', '-sha384', '-hmac', key], agentId)
  return out.trim().split(/\s+/).pop()!
}

beforeAll(async () => {
  if (missing.length > 0) return
  work = mkdtempSync(join(tmpdir(), 'keylime-reg-e2e-'))
  for (const d of ['store', 'etc', 'kl']) mkdirSync(join(work, d))
  tpm = await startSwtpm({ banks: 'sha256' })
  port = tpm.port
  writeFileSync(join(work, 'store', 'swtpm-root.pem'), tpm.rootCaPem)
  intermediatePem = tpm.intermediatePem
  must(['tpm2_readpublic', '-c', EK_HANDLE, '-o', 'ek.pub'])
  must(['tpm2_nvread', EK_CERT_NV, '-C', 'o', '-o', 'ek.der'])
  ekPub = readFileSync(join(work, 'ek.pub'))
  ekCertDer = readFileSync(join(work, 'ek.der'))

  // cv_ca as the verifier would create it; the registrar serves with its server certificate and
  // trusts the CA for admin clients (tls_dir = default).
  const keylimeDir = join(work, 'kl')
  await ensureCvCa({ keylimeDir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
  const base = loadRegistrarConfig({
    etcDir: join(work, 'etc'),
    usrEtcDir: join(work, 'etc'),
    env: {},
    warn: () => {},
  })
  config = { ...base, registrar: { ...base.registrar, ip: '127.0.0.1', port: 0, tls_port: 0 } }
  const r = config.registrar
  tls = await loadTlsMaterial(
    resolveTlsFiles({
      keylimeDir,
      tlsDir: r.tls_dir,
      component: 'registrar',
      serverKey: r.server_key,
      serverKeyPassword: r.server_key_password,
      serverCert: r.server_cert,
      trustedCa: r.trusted_client_ca,
    }),
    { server: true, client: false },
  )
}, 60_000)

afterAll(async () => {
  await tpm?.remove()
  if (work !== '') rmSync(work, { recursive: true, force: true })
})

for (const target of missing.length > 0 ? [] : databaseTargets()) {
  describe(`registrar e2e with swtpm (${target.name})`, () => {
    let db: KeylimeDatabase
    let role: RoleHandle
    let httpUrl = ''
    let httpsUrl = ''
    let client: { cert: string; key: string; ca: string }

    beforeAll(async () => {
      db = await target.open()
      role = await startRegistrar(
        { config, keylimeDir: join(work, 'kl'), database: db, tls, log: getLogger('registrar') },
        { tpmCertStore: join(work, 'store') },
      )
      httpUrl = role.servers[0]!.url
      httpsUrl = role.servers[1]!.url
      const ca = join(work, 'kl', 'cv_ca')
      client = {
        cert: readFileSync(join(ca, 'client-cert.crt'), 'utf8'),
        key: readFileSync(join(ca, 'client-private.pem'), 'utf8'),
        ca: readFileSync(join(ca, 'cacert.crt'), 'utf8'),
      }
    })
    afterAll(async () => {
      await role?.stop(1000)
      await db?.close()
    })

    const send = async (method: string, path: string, body?: unknown) => {
      const res = await fetch(`${httpUrl}${path}`, {
        method,
        headers: { 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return {
        status: res.status,
        json: (await res.json()) as {
          code: number
          status: string
          results: Record<string, unknown>
        },
      }
    }
    const admin = async (method: string, path: string) => {
      const res = await fetch(`${httpsUrl}${path}`, {
        method,
        tls: { ...client, checkServerIdentity: () => undefined },
      })
      return {
        status: res.status,
        json: (await res.json()) as {
          code: number
          status: string
          results: Record<string, unknown>
        },
      }
    }
    const body = (ak: Buffer, extra: Record<string, unknown> = {}) => ({
      aik_tpm: ak.toString('base64'),
      ek_tpm: ekPub.toString('base64'),
      ekcert: pem(ekCertDer) + intermediatePem,
      iak_cert: null,
      idevid_cert: null,
      ip: '127.0.0.1',
      port: 9002,
      mtls_cert: client.cert,
      ...extra,
    })

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
      expect(r.ek_tpm).toBe(ekPub.toString('base64'))
      expect(r.ekcert).toBe(ekCertDer.toString('base64'))
      expect(r.mtls_cert).toBe(client.cert.replace(/\r\n/g, '\n').trimEnd() + '\n')
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

    test('wrong auth_tag deletes the registration', async () => {
      const id = `e2e-badtag-${target.name}`
      const ak = createAk('a')
      const reg = await send('POST', `/v2.6/agents/${id}`, body(ak))
      expect(reg.status).toBe(200)
      const good = agentAuthTag('a', id, reg.json.results.blob as string)
      const bad = (good[0] === '0' ? '1' : '0') + good.slice(1)
      const act = await send('PUT', `/v2.6/agents/${id}`, { auth_tag: bad })
      expect(act.status).toBe(400)
      expect((await admin('GET', `/v2.6/agents/${id}`)).status).toBe(404)
      expect((await send('PUT', `/v2.6/agents/${id}`, { auth_tag: good })).status).toBe(404)
    }, 30_000)

    test('an AK with tampered attributes is refused with 400', async () => {
      const ak = Buffer.from(createAk('a'))
      // TPM2B size (2) | type (2) | nameAlg (2) | objectAttributes (4): clear `restricted`.
      ak.writeUInt32BE(ak.readUInt32BE(6) & ~0x00010000, 6)
      const r = await send('POST', `/v2.6/agents/e2e-badak-${target.name}`, body(ak))
      expect(r.status).toBe(400)
      expect(r.json.status).toContain('restricted')
    }, 30_000)

    test('unknown id: 404 over mTLS; admin routes refused on HTTP; no client certificate: handshake fails', async () => {
      expect((await admin('GET', '/v2.6/agents/nobody')).status).toBe(404)
      expect((await send('GET', '/v2.6/agents')).status).toBe(403)
      let refused = false
      try {
        await fetch(`${httpsUrl}/version`, {
          tls: { ca: client.ca, checkServerIdentity: () => undefined },
        })
      } catch {
        refused = true
      }
      expect(refused).toBe(true)
      // With the client certificate the same request works.
      expect((await admin('GET', '/version')).status).toBe(200)
    })
  })
}
