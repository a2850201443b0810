/**
 * The TypeScript agent end to end, as a child process (`bun src/agent/main.ts`) on swtpm, against
 * our control plane as a child process (registrar + verifier + CA): configuration from an
 * agent.conf (TOML) plus KEYLIME_AGENT_* env, registration and activation with the registrar
 * (read back over the registrar's mTLS admin API), enrolment with the verifier as the upstream
 * tenant does it (bench/fleet/enroll-agent.ts: identity quote, U with a payload, V), attestation
 * PASS with attestation_count rising, the payload's autorun.sh run after K was derived, a signed
 * revocation notice running the payload's action and a forged one refused; then a restart with
 * the same AK and identity.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { constants, createHmac, sign, X509Certificate } from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import * as x509 from '@peculiar/x509'
import { zipSync } from 'fflate'
import { type ClientTls, enrollAgent } from '../bench/fleet/enroll-agent.ts'
import { loadCaDir } from '../bench/fleet/load-ca-dir.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './agent-swtpm.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  freePort,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'

const AGENT_MAIN = resolve(import.meta.dir, '../src/agent/main.ts')
const missing = missingSwtpmTools()
if (missing.length > 0) {
  console.log(
    `skipping agent e2e: missing ${missing.join(', ')} (apt-get install swtpm swtpm-tools)`,
  )
}

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms
  for (;;) {
    const v = await fn().catch(() => undefined)
    if (v !== undefined) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(200)
  }
}

/** A self-signed RSA certificate for the revocation key (WebCrypto + @peculiar/x509). */
async function revocationCert(): Promise<{ certPem: string; keyPem: string }> {
  const alg = {
    name: 'RSASSA-PKCS1-v1_5',
    hash: 'SHA-256',
    publicExponent: new Uint8Array([1, 0, 1]),
    modulusLength: 2048,
  }
  const keys = (await crypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=RevocationNotifier',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys,
  })
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey)).toString(
    'base64',
  )
  return {
    certPem: cert.toString('pem'),
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.replace(/.{1,64}/g, '$&\n')}-----END PRIVATE KEY-----\n`,
  }
}

describe.skipIf(missing.length > 0)(
  'keylime-agent (TypeScript) with swtpm and our control plane',
  () => {
    let swtpm: Swtpm
    let work: string
    let cp: ChildRun
    let agent: ChildRun | undefined
    let cpEnv: Record<string, string>
    let ports: { verifier: number; registrar: number; registrarTls: number }
    let cpDir: string
    let agentPort: number
    let agentEnv: Record<string, string>
    let client: ClientTls
    let uuid: string
    let rev: { certPem: string; keyPem: string }

    const agentDir = () => join(work, 'agent')
    const startAgentProc = () => {
      agent = spawnCollect([process.execPath, AGENT_MAIN], agentEnv)
      return agent
    }
    const agentTls = () => ({
      ca: readFileSync(join(agentDir(), 'server-cert.crt'), 'utf8'),
      cert: client.cert,
      key: client.key,
      checkServerIdentity: () => undefined,
    })
    const callAgent = async (path: string, init: { method?: string; body?: unknown } = {}) => {
      const res = await fetch(`https://127.0.0.1:${agentPort}${path}`, {
        method: init.method ?? 'GET',
        headers: init.body === undefined ? undefined : { 'content-type': 'application/json' },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        tls: agentTls(),
      } as RequestInit)
      return {
        status: res.status,
        body: (await res.json()) as { results: Record<string, unknown> | null },
      }
    }

    beforeAll(async () => {
      swtpm = await startSwtpm({ banks: 'sha256' })
      work = mkdtempSync(join(tmpdir(), 'kl-agent-e2e-'))
      ;({ env: cpEnv, ports, dir: cpDir } = await controlPlaneEnv())
      cpEnv.KEYLIME_VERIFIER_QUOTE_INTERVAL = '0.5'
      cp = spawnCollect([process.execPath, MAIN_TS], cpEnv)
      await cp.waitFor(/keylime control plane started/, 30_000)
      client = (await loadCaDir(join(cpDir, 'cv_ca'))).client
      agentPort = await freePort()
      mkdirSync(agentDir(), { recursive: true })
      mkdirSync(join(work, 'actions'))
      writeFileSync(
        join(work, 'agent.conf'),
        [
          '[agent]',
          `uuid = "hash_ek"`,
          `ip = "127.0.0.1"`,
          `port = ${agentPort}`,
          `contact_ip = "127.0.0.1"`,
          `contact_port = ${agentPort}`,
          `registrar_ip = "127.0.0.1"`,
          `registrar_port = ${ports.registrar}`,
          `trusted_client_ca = "${join(cpDir, 'cv_ca', 'cacert.crt')}"`,
          `revocation_actions_dir = "${join(work, 'actions')}"`,
          `ima_ml_path = "${join(work, 'ima.txt')}"`,
          `measuredboot_ml_path = "${join(work, 'none.bin')}"`,
          `some_future_option = 1`,
          '',
        ].join('\n'),
      )
      writeFileSync(
        join(work, 'ima.txt'),
        '10 0000000000000000000000000000000000000000 ima-ng sha256:00 boot_aggregate\n',
      )
      agentEnv = {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        KEYLIME_AGENT_CONFIG: join(work, 'agent.conf'),
        KEYLIME_AGENT_KEYLIME_DIR: agentDir(),
        TCTI: swtpm.tcti,
      }
      rev = await revocationCert()
    }, 90_000)

    afterAll(async () => {
      await agent?.stop()
      await cp?.stop()
      await swtpm?.remove()
      // the agent mounted a tmpfs on its secure dir when the tests run as root
      if (work) Bun.spawnSync(['umount', join(agentDir(), 'secure')], { stderr: 'ignore' })
      if (work) rmSync(work, { recursive: true, force: true })
    })

    test('registers and activates with our registrar (mTLS cert, EK cert, hash_ek uuid)', async () => {
      const a = startAgentProc()
      await a.waitFor(/registered and activated/, 30_000)
      expect(a.output()).toMatch(/unknown option "some_future_option"/)
      uuid = /agent identity agent_id=([0-9a-f]{64})/.exec(a.output())![1]!
      const key = join(agentDir(), 'server-private.pem')
      expect(statSync(key).mode & 0o777).toBe(0o600)
      expect(statSync(join(agentDir(), 'payload-private.pem')).mode & 0o777).toBe(0o600)
      expect(statSync(join(agentDir(), 'secure')).mode & 0o777).toBe(0o700)
      const res = await fetch(`https://127.0.0.1:${ports.registrarTls}/v2.6/agents/${uuid}`, {
        tls: { ...client, checkServerIdentity: () => undefined },
      } as RequestInit)
      expect(res.status).toBe(200)
      const r = ((await res.json()) as { results: Record<string, unknown> }).results
      expect(r.regcount).toBeGreaterThanOrEqual(1)
      expect(new X509Certificate(String(r.mtls_cert)).fingerprint256).toBe(
        new X509Certificate(readFileSync(join(agentDir(), 'server-cert.crt'))).fingerprint256,
      )
      expect(String(r.ekcert).length).toBeGreaterThan(100)
      // the agent API answers over mTLS and refuses a client without a certificate
      const info = await callAgent('/v2.6/agent/info')
      expect(info.body.results).toMatchObject({
        agent_uuid: uuid,
        tpm_hash_alg: 'sha256',
        tpm_enc_alg: 'rsa2048',
        tpm_sign_alg: 'rsassa',
      })
      await expect(
        fetch(`https://127.0.0.1:${agentPort}/version`, {
          tls: { ca: agentTls().ca, checkServerIdentity: () => undefined },
        } as RequestInit),
      ).rejects.toThrow()
      const ima = await callAgent(
        '/v2.6/quotes/integrity?nonce=abc&mask=0x400&partial=0&ima_ml_entry=5',
      )
      expect(ima.body.results).toMatchObject({ ima_measurement_list_entry: 0 })
      expect(String(ima.body.results!.ima_measurement_list)).toContain('boot_aggregate')
      expect(typeof ima.body.results!.boottime).toBe('number')
      ;(globalThis as { akTpm?: string }).akTpm = String(r.aik_tpm)
    }, 60_000)

    test('enrolled with U, V and a payload: attestation PASS, K derived, autorun.sh ran, revocation action', async () => {
      const marker = join(work, 'autorun-ran')
      const actionOut = join(work, 'action-ran.json')
      const payload = zipSync({
        'autorun.sh': new TextEncoder().encode(`#!/bin/sh\necho ok > '${marker}'\n`),
        'RevocationNotifier-cert.crt': new TextEncoder().encode(rev.certPem),
        action_list: new TextEncoder().encode('local_action_mark\n'),
        local_action_mark: new TextEncoder().encode(`#!/bin/sh\ncp "$1" '${actionOut}'\n`),
      })
      const verifierUrl = `https://127.0.0.1:${ports.verifier}`
      const enrolled = await enrollAgent({
        verifierUrl,
        tls: client,
        uuid,
        ip: '127.0.0.1',
        port: agentPort,
        akTpm: (globalThis as { akTpm?: string }).akTpm!,
        mtlsCert: readFileSync(join(agentDir(), 'server-cert.crt'), 'utf8'),
        withKeys: true,
        payload,
        tpmPolicy: JSON.stringify({ mask: '0x0' }),
      })
      const status = async () => {
        const res = await fetch(`${verifierUrl}/v${enrolled.verifierApiVersion}/agents/${uuid}`, {
          tls: { ...client, checkServerIdentity: () => undefined },
        } as RequestInit)
        return ((await res.json()) as { results: Record<string, unknown> }).results
      }
      const first = await until(
        async () => {
          const s = await status()
          return Number(s.attestation_count) >= 1 ? s : undefined
        },
        20_000,
        'first attestation',
      )
      expect(first.attestation_status).toBe('PASS')
      await until(
        async () =>
          Number((await status()).attestation_count) > Number(first.attestation_count)
            ? true
            : undefined,
        20_000,
        'attestation_count rising',
      )
      // V arrives after the first good quote: K, then the payload
      await until(async () => (existsSync(marker) ? true : undefined), 20_000, 'autorun.sh')
      expect(readFileSync(marker, 'utf8').trim()).toBe('ok')
      const challenge = 'Challenge123'
      const v = await callAgent(`/v2.6/keys/verify?challenge=${challenge}`)
      expect(v.body.results!.hmac).toBe(
        createHmac('sha384', enrolled.k!).update(challenge).digest('hex'),
      )
      expect(statSync(join(agentDir(), 'secure', 'unzipped', 'autorun.sh')).mode & 0o777).toBe(
        0o700,
      )
      // a forged notice is refused and runs nothing; a signed one runs the payload's action
      const msg = JSON.stringify({ type: 'revocation', agent_id: 'other', event_id: 'x' })
      const signature = sign('sha256', Buffer.from(msg), {
        key: rev.keyPem,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_MAX_SIGN,
      }).toString('base64')
      const forged = await callAgent('/v2.6/notifications/revocation', {
        method: 'POST',
        body: { msg: msg.replace('other', 'evil'), signature },
      })
      expect(forged.status).toBe(400)
      expect(existsSync(actionOut)).toBe(false)
      const ok = await callAgent('/v2.6/notifications/revocation', {
        method: 'POST',
        body: { msg, signature },
      })
      expect(ok.body as unknown).toEqual({ code: 200, status: 'Success', results: null })
      expect(JSON.parse(readFileSync(actionOut, 'utf8'))).toMatchObject({
        agent_id: 'other',
        event_id: 'x',
      })
      // nothing secret in the logs
      const logs = agent!.output()
      expect(logs).not.toContain(Buffer.from(enrolled.k!).toString('hex'))
      expect(logs).not.toContain(Buffer.from(enrolled.k!).toString('base64'))
    }, 90_000)

    test('a restart keeps the AK, NK, mTLS identity and uuid, and re-registers', async () => {
      const before = {
        ak: readFileSync(join(agentDir(), 'agent_data.json'), 'utf8'),
        cert: readFileSync(join(agentDir(), 'server-cert.crt'), 'utf8'),
        nk: (await callAgent('/v2.6/keys/pubkey')).body.results!.pubkey,
      }
      expect(await agent!.stop()).toBe(0)
      const a = startAgentProc()
      await a.waitFor(/registered and activated/, 30_000)
      expect(a.output()).toContain('reused=true')
      expect(a.output()).toContain(uuid)
      expect(readFileSync(join(agentDir(), 'agent_data.json'), 'utf8')).toBe(before.ak)
      expect(readFileSync(join(agentDir(), 'server-cert.crt'), 'utf8')).toBe(before.cert)
      expect((await callAgent('/v2.6/keys/pubkey')).body.results!.pubkey).toBe(before.nk)
    }, 60_000)
  },
)
