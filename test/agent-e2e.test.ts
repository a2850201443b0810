/**
 * Step 8 on the host: the TypeScript agent end to end, as a child process (`bun
 * src/agent/main.ts`) on swtpm, against our control plane as a child process (registrar +
 * verifier + CA), enrolled by our tenant through the CLI as operators run it (`keylime tenant -c
 * add …`, EK certificate checked against the swtpm CA):
 *
 * - configuration from an agent.conf (TOML) plus KEYLIME_AGENT_* env, registration and
 *   activation with the registrar (read back over the registrar's mTLS admin API);
 * - `-f payload.zip --verify`: attestation PASS with attestation_count rising, the payload's
 *   autorun.sh run after K was derived, a signed revocation notice running the payload's action
 *   and a forged one refused; a restart with the same AK and identity;
 * - `--runtime-policy` made by `keylime policy create runtime` from the IMA list the agent serves
 *   (the QEMU guest's list in test/fixtures/ima/vm/a, replayed into the swtpm's PCR 10), and
 *   `--cert default` for two agents: an unapproved entry appended to one agent's list (and
 *   extended into its PCR 10) makes the verifier fail it (INVALID_QUOTE,
 *   `ima.validation.ima-ng.not_in_allowlist`), and the verifier's own signed revocation notice
 *   makes the other agent run its revocation action.
 *
 * swtpm serves one connection at a time, so each agent reaches its swtpm through a small relay
 * in this file that also lets the test extend PCR 10 between the agent's commands.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { constants, createHash, sign, X509Certificate } from 'node:crypto'
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import * as x509 from '@peculiar/x509'
import { zipSync } from 'fflate'
import type { ClientTls } from './support/fleet/enroll-agent.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import { TpmClient } from '../src/agent/tpm/tpm-client.ts'
import { openSwtpmSocket } from '../src/agent/transport/swtpm-socket-transport.ts'
import { serializeTransport } from '../src/agent/transport/tpm-transport.ts'
import { imaNgLine, imaSha256Extends } from './support/ima-ng-line.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'
import { untilValue } from './support/until.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  freePort,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'

const AGENT_MAIN = resolve(import.meta.dir, '../src/agent/main.ts')
/** The QEMU guest's IMA list (vm harness capture): what the agents on swtpm serve. */
const IMA_FIXTURE = resolve(import.meta.dir, 'fixtures/ima/vm/a/ascii_runtime_measurements')
/** TPM_ALG_SHA256 (TPM 2.0 Part 2 §6.3). */
const TPM_ALG_SHA256 = 0x000b
/** Verifier quote_interval in seconds. */
const QUOTE_INTERVAL = 0.5
const missing = missingSwtpmTools()
if (missing.length > 0) {
  console.log(
    `skipping agent e2e: missing ${missing.join(', ')} (apt-get install swtpm swtpm-tools)`,
  )
}

/** An swtpm behind a relay: the agent connects to `tcti`, the test sends through `client`. */
interface RelayedTpm {
  swtpm: Swtpm
  /** `swtpm:host=127.0.0.1,port=<relay>` for the agent. */
  tcti: string
  /** Commands from the test, queued between the agent's. */
  client: TpmClient
  close(): Promise<void>
}

/**
 * Starts an swtpm and a relay in front of it: the relay reads whole `TPM_SEND_COMMAND` frames
 * (`u32 8 | u8 locality | u32 len | command`) from its clients and forwards them, one at a time,
 * over a single connection to swtpm, answering `u32 len | response | u32 0`.
 */
async function startRelayedTpm(): Promise<RelayedTpm> {
  const swtpm = await startSwtpm({ banks: 'sha256' })
  const upstream = serializeTransport(
    await openSwtpmSocket({ host: '127.0.0.1', port: swtpm.port }),
  )
  const server = createServer((sock) => {
    let buf = Buffer.alloc(0)
    let chain: Promise<void> = Promise.resolve()
    sock.on('error', () => undefined)
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      while (buf.byteLength >= 9 && buf.byteLength >= 9 + buf.readUInt32BE(5)) {
        const len = buf.readUInt32BE(5)
        const cmd = new Uint8Array(buf.subarray(9, 9 + len))
        buf = buf.subarray(9 + len)
        chain = chain
          .then(async () => {
            const resp = await upstream.transmit(cmd)
            const out = Buffer.alloc(8 + resp.byteLength)
            out.writeUInt32BE(resp.byteLength, 0)
            out.set(resp, 4)
            sock.write(out)
          })
          .catch(() => {
            sock.destroy()
          })
      }
    })
  })
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res))
  const { port } = server.address() as { port: number }
  return {
    swtpm,
    tcti: `swtpm:host=127.0.0.1,port=${port}`,
    client: new TpmClient(upstream),
    async close() {
      server.close()
      await upstream.close().catch(() => undefined)
      await swtpm.remove()
    },
  }
}

/** Extends each entry of an IMA ASCII list into PCR 10 (sha256 bank), as the kernel does. */
async function extendImaList(client: TpmClient, list: string): Promise<void> {
  for (const digest of imaSha256Extends(list))
    await client.pcrExtend(10, [{ hashAlg: TPM_ALG_SHA256, digest }])
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
    let tpm: RelayedTpm
    let work: string
    let cp: ChildRun
    let agent: ChildRun | undefined
    let cpEnv: Record<string, string>
    let tenantEnv: Record<string, string>
    let ports: { verifier: number; registrar: number; registrarTls: number }
    let cpDir: string
    let agentPort: number
    let agentEnv: Record<string, string>
    let client: ClientTls
    let uuid: string
    let rev: { certPem: string; keyPem: string }
    const others: Array<{ tpm: RelayedTpm; agent: ChildRun; dir: string }> = []

    const agentDir = () => join(work, 'agent')
    const startAgentProc = () => {
      agent = spawnCollect([process.execPath, AGENT_MAIN], agentEnv)
      return agent
    }
    const agentTls = (dir = agentDir()) => ({
      ca: readFileSync(join(dir, 'server-cert.crt'), 'utf8'),
      cert: client.cert,
      key: client.key,
      checkServerIdentity: () => undefined,
    })
    const callAgent = async (
      path: string,
      init: { method?: string; body?: unknown; port?: number; dir?: string } = {},
    ) => {
      const res = await fetch(`https://127.0.0.1:${init.port ?? agentPort}${path}`, {
        method: init.method ?? 'GET',
        headers: init.body === undefined ? undefined : { 'content-type': 'application/json' },
        body: init.body === undefined ? undefined : JSON.stringify(init.body),
        tls: agentTls(init.dir),
      } as RequestInit)
      return {
        status: res.status,
        body: (await res.json()) as { results: Record<string, unknown> | null },
      }
    }
    /** `keylime tenant <args>` as a child process, as an operator runs it. */
    const tenant = async (args: string[]) => {
      const p = spawnCollect([process.execPath, MAIN_TS, 'tenant', ...args], tenantEnv)
      const code = await p.proc.exited
      await Bun.sleep(50)
      return { code, out: p.output() }
    }
    const addArgs = (id: string, port: number) => [
      '-c',
      'add',
      '-v',
      '127.0.0.1',
      '-vp',
      String(ports.verifier),
      '-r',
      '127.0.0.1',
      '-rp',
      String(ports.registrarTls),
      '-t',
      '127.0.0.1',
      '-tp',
      String(port),
      '-u',
      id,
    ]
    const status = async (id: string) => {
      const res = await fetch(`https://127.0.0.1:${ports.verifier}/v2.6/agents/${id}`, {
        tls: { ...client, checkServerIdentity: () => undefined },
      } as RequestInit)
      return ((await res.json()) as { results: Record<string, unknown> }).results
    }
    const attested = (id: string, atLeast: number) =>
      untilValue(
        async () => {
          const s = await status(id)
          return Number(s.attestation_count) >= atLeast ? s : undefined
        },
        30_000,
        `${atLeast} attestations of ${id.slice(0, 8)}`,
        200,
      )
    /** An agent.conf for an agent on 127.0.0.1:`port` with its files under `dir`. */
    const agentConf = (port: number, dir: string) =>
      [
        '[agent]',
        `uuid = "hash_ek"`,
        `ip = "127.0.0.1"`,
        `port = ${port}`,
        `contact_ip = "127.0.0.1"`,
        `contact_port = ${port}`,
        `registrar_ip = "127.0.0.1"`,
        `registrar_port = ${ports.registrar}`,
        `trusted_client_ca = "${join(cpDir, 'cv_ca', 'cacert.crt')}"`,
        `revocation_actions_dir = "${join(dir, 'actions')}"`,
        `ima_ml_path = "${join(dir, 'ima.txt')}"`,
        `measuredboot_ml_path = "${join(dir, 'none.bin')}"`,
        '',
      ].join('\n')

    beforeAll(async () => {
      tpm = await startRelayedTpm()
      work = mkdtempSync(join(tmpdir(), 'kl-agent-e2e-'))
      ;({ env: cpEnv, ports, dir: cpDir } = await controlPlaneEnv())
      cpEnv.KEYLIME_VERIFIER_QUOTE_INTERVAL = String(QUOTE_INTERVAL)
      cp = spawnCollect([process.execPath, MAIN_TS], cpEnv)
      // the tenant trusts the swtpm EK CA chain; --cert default creates $KEYLIME_DIR/ca
      const certStore = join(work, 'tpm_cert_store')
      mkdirSync(certStore)
      writeFileSync(join(certStore, 'root.pem'), tpm.swtpm.rootCaPem)
      writeFileSync(join(certStore, 'intermediate.pem'), tpm.swtpm.intermediatePem)
      tenantEnv = {
        ...cpEnv,
        KEYLIME_TENANT_TPM_CERT_STORE: certStore,
        KEYLIME_TENANT_RETRY_INTERVAL: '0.2',
        KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
        KEYLIME_TENANT_MAX_RETRIES: '50',
        KEYLIME_CA_PASSWORD: 'agent-e2e-ca-pw',
      }
      await cp.waitFor(/keylime control plane started/, 30_000)
      client = (await loadCaDir(join(cpDir, 'cv_ca'))).client
      agentPort = await freePort()
      mkdirSync(agentDir(), { recursive: true })
      mkdirSync(join(work, 'actions'))
      writeFileSync(
        join(work, 'agent.conf'),
        `${agentConf(agentPort, work)}some_future_option = 1\n`,
      )
      // the agent serves the guest's IMA list; its PCR 10 holds the same entries
      const ima = readFileSync(IMA_FIXTURE, 'utf8')
      writeFileSync(join(work, 'ima.txt'), ima)
      await extendImaList(tpm.client, ima)
      agentEnv = {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '/root',
        KEYLIME_AGENT_CONFIG: join(work, 'agent.conf'),
        KEYLIME_AGENT_KEYLIME_DIR: agentDir(),
        TCTI: tpm.tcti,
      }
      rev = await revocationCert()
    }, 90_000)

    afterAll(async () => {
      await agent?.stop()
      for (const o of others) {
        await o.agent.stop()
        Bun.spawnSync(['umount', join(o.dir, 'agent', 'secure')], { stderr: 'ignore' })
        await o.tpm.close()
      }
      await cp?.stop()
      await tpm?.close()
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
      expect(ima.body.results).toMatchObject({ ima_measurement_list_entry: 5 })
      expect(String(ima.body.results!.ima_measurement_list)).toStartWith(
        readFileSync(IMA_FIXTURE, 'utf8').split('\n').slice(5).join('\n').slice(0, 200),
      )
      expect(typeof ima.body.results!.boottime).toBe('number')
    }, 60_000)

    test('tenant -c add -f payload.zip --verify: PASS, K derived, autorun.sh ran, revocation action', async () => {
      const marker = join(work, 'autorun-ran')
      const actionOut = join(work, 'action-ran.json')
      writeFileSync(
        join(work, 'payload.zip'),
        zipSync({
          'autorun.sh': new TextEncoder().encode(`#!/bin/sh\necho ok > '${marker}'\n`),
          'RevocationNotifier-cert.crt': new TextEncoder().encode(rev.certPem),
          action_list: new TextEncoder().encode('local_action_mark\n'),
          local_action_mark: new TextEncoder().encode(`#!/bin/sh\ncp "$1" '${actionOut}'\n`),
        }),
      )
      const add = await tenant([
        ...addArgs(uuid, agentPort),
        '-f',
        join(work, 'payload.zip'),
        '--verify',
      ])
      expect(add.code, add.out).toBe(0)
      // --verify: the tenant checked the agent's HMAC of a challenge with the K it derived
      expect(add.out).toContain('key derivation verified')
      const first = await attested(uuid, 1)
      expect(first.attestation_status).toBe('PASS')
      await attested(uuid, Number(first.attestation_count) + 1)
      await untilValue(
        async () => (existsSync(marker) ? true : undefined),
        20_000,
        'autorun.sh',
        200,
      )
      expect(readFileSync(marker, 'utf8').trim()).toBe('ok')
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
      // nothing secret in the logs: no payload bytes, no key material
      const logs = agent!.output()
      expect(logs).not.toContain(`echo ok > '${marker}'`)
      expect(logs).not.toContain('PRIVATE KEY')
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

    test('runtime policy from the served IMA list, --cert default: an unapproved entry fails the agent and the verifier revokes it at the other agent', async () => {
      // a second agent on its own swtpm, serving the same list
      const bDir = join(work, 'b')
      mkdirSync(join(bDir, 'actions'), { recursive: true })
      const bTpm = await startRelayedTpm()
      const bPort = await freePort()
      writeFileSync(join(bDir, 'agent.conf'), agentConf(bPort, bDir))
      const list = readFileSync(IMA_FIXTURE, 'utf8')
      writeFileSync(join(bDir, 'ima.txt'), list)
      await extendImaList(bTpm.client, list)
      writeFileSync(
        join(tenantEnv.KEYLIME_TENANT_TPM_CERT_STORE!, 'b-root.pem'),
        bTpm.swtpm.rootCaPem,
      )
      writeFileSync(
        join(tenantEnv.KEYLIME_TENANT_TPM_CERT_STORE!, 'b-intermediate.pem'),
        bTpm.swtpm.intermediatePem,
      )
      const bAgent = spawnCollect([process.execPath, AGENT_MAIN], {
        ...agentEnv,
        KEYLIME_AGENT_CONFIG: join(bDir, 'agent.conf'),
        KEYLIME_AGENT_KEYLIME_DIR: join(bDir, 'agent'),
        TCTI: bTpm.tcti,
      })
      others.push({ tpm: bTpm, agent: bAgent, dir: bDir })
      await bAgent.waitFor(/registered and activated/, 30_000)
      const bUuid = /agent identity agent_id=([0-9a-f]{64})/.exec(bAgent.output())![1]!

      // the policy, made by our tool from the list the agent serves
      const served = await callAgent(
        '/v2.6/quotes/integrity?nonce=policy&mask=0x400&partial=0&ima_ml_entry=0',
      )
      writeFileSync(join(work, 'served-ima.txt'), String(served.body.results!.ima_measurement_list))
      const pol = spawnCollect(
        [
          process.execPath,
          MAIN_TS,
          'policy',
          'create',
          'runtime',
          '-m',
          join(work, 'served-ima.txt'),
          '-o',
          join(work, 'policy.json'),
        ],
        cpEnv,
      )
      expect(await pol.proc.exited).toBe(0)
      const policy = JSON.parse(readFileSync(join(work, 'policy.json'), 'utf8')) as {
        digests: Record<string, string[]>
      }
      expect(Object.keys(policy.digests)).toContain('/usr/bin/busybox')

      // re-enrol A and enrol B with the policy and a CA certificate package each; the package's
      // RevocationNotifier certificate checks the verifier's notices, --include adds the action
      expect(
        (
          await tenant([
            '-c',
            'delete',
            '-u',
            uuid,
            '-v',
            '127.0.0.1',
            '-vp',
            String(ports.verifier),
          ])
        ).code,
      ).toBe(0)
      const include = (id: string, out: string) => {
        const d = join(work, `include-${id.slice(0, 8)}`)
        mkdirSync(d)
        writeFileSync(join(d, 'action_list'), 'local_action_mark\n')
        writeFileSync(join(d, 'local_action_mark'), `#!/bin/sh\ncp "$1" '${out}'\n`)
        return d
      }
      const aOut = join(work, 'a-revoked.json')
      const bOut = join(work, 'b-revoked.json')
      for (const [id, port, out] of [
        [uuid, agentPort, aOut],
        [bUuid, bPort, bOut],
      ] as const) {
        const add = await tenant([
          ...addArgs(id, port),
          '--cert',
          'default',
          '--include',
          include(id, out),
          '--runtime-policy',
          join(work, 'policy.json'),
          '--verify',
        ])
        expect(add.code, add.out).toBe(0)
      }
      const sA = await attested(uuid, 2)
      const sB = await attested(bUuid, 2)
      expect([sA.attestation_status, sB.attestation_status]).toEqual(['PASS', 'PASS'])
      expect([sA.has_runtime_policy, sB.has_runtime_policy]).toEqual([1, 1])
      await bAgent.waitFor(/revocation certificate loaded from the payload/, 10_000)

      // an executable outside the policy runs on A: list entry first, then PCR 10, as IMA does
      const path = '/usr/local/bin/unapproved'
      const digest = createHash('sha256').update('not in the policy').digest('hex')
      const line = imaNgLine(path, digest)
      appendFileSync(join(work, 'ima.txt'), line)
      await extendImaList(tpm.client, line)
      const t0 = performance.now()
      const failed = await untilValue(
        async () => {
          const s = await status(uuid)
          return s.attestation_status !== 'PASS' ? s : undefined
        },
        10_000,
        'the verifier to fail A',
        200,
      )
      const delay = performance.now() - t0
      expect(failed.attestation_status).toBe('FAIL')
      expect(failed.operational_state).toBe(9) // INVALID_QUOTE (upstream states: 7 is FAILED)
      expect(failed.last_event_id).toBe('ima.validation.ima-ng.not_in_allowlist')
      // one quote_interval plus a round (quote, IMA evaluation) with margin for a loaded CI host
      expect(delay).toBeLessThan(QUOTE_INTERVAL * 1000 + 3000)

      // the verifier's signed notice reached B, which verified it and ran its action
      await untilValue(
        async () => (existsSync(bOut) ? true : undefined),
        20_000,
        'B revocation action',
        200,
      )
      const notice = JSON.parse(readFileSync(bOut, 'utf8')) as Record<string, unknown>
      expect(notice).toMatchObject({
        type: 'revocation',
        agent_id: uuid,
        event_id: 'ima.validation.ima-ng.not_in_allowlist',
      })
      expect(String(notice.context)).toContain(path)
      expect(bAgent.output()).toContain('revocation notice verified')
      expect(existsSync(aOut)).toBe(false)
      expect((await status(bUuid)).attestation_status).toBe('PASS')
    }, 120_000)
  },
)
