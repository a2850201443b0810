/**
 * Signed attestation results (docs/ear.md) end to end: simulated agents attested by a verifier
 * over real mTLS on loopback, their current results fetched as EARs and verified with a standard
 * JOSE library (`jose`) against the JWKS, fetched over the real TLS listener WITHOUT a client
 * certificate. Proves, with the real guest IMA list and OVMF event log of the step 5/6 fixtures:
 *
 * - pass → `affirming`, every checked category 2 (hardware, instance identity, executables,
 *   configuration); IMA failure → `contraindicated`, executables 96; PCR (`tpm_policy`) failure →
 *   configuration 96; measured-boot failure → configuration 96; the caller's nonce is echoed as
 *   `eat_nonce`, a bad one is refused with a 400; an unknown agent is a 404;
 * - the per-agent route is admin-only on the listener, the JWKS is public;
 * - `POST /verify/evidence` with `Accept: application/eat+jwt` answers an EAR (and JSON as before
 *   without it);
 * - `[revocations] webhook_ear = True`: the webhook notice carries the failing agent's EAR;
 * - `keylime ear rotate` while the verifier runs: new tokens carry the new `kid` within a second,
 *   the JWKS serves both keys, and a token signed before the rotation still verifies.
 *
 * Runs on PGlite and, with TEST_DATABASE_URL, PostgreSQL.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose'
import { main } from '../src/cli/main.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { runPolicyCreateRuntime } from '../src/policy-tools/index.ts'
import { runPolicyCreateMeasuredBoot } from '../src/policy-tools/create-refstate-cli.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { databaseTargets } from './support/databases.ts'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import type { SimAgent } from './support/fleet/sim-agent.ts'
import { until } from './support/until.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'

const IMA_LOG = readFileSync(
  join(import.meta.dir, 'fixtures/ima/vm/a/ascii_runtime_measurements'),
  'utf8',
)
const MB_PATH = join(import.meta.dir, 'fixtures/mb/vm-plain/binary_bios_measurements')
const MB_LOG = readFileSync(MB_PATH)
const NONCE = Buffer.from('a relying party nonce').toString('base64url')
const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64')

/** Runs one of our policy tools in-process; its stdout. */
async function tool(
  fn: typeof runPolicyCreateRuntime,
  argv: string[],
  cwd = mkdtempSync(join(tmpdir(), 'kl-ear-e2e-')),
): Promise<string> {
  let out = ''
  let err = ''
  const rc = await fn(argv, {
    cwd,
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
  })
  if (rc !== 0) throw new Error(`tool failed (${rc}): ${err}`)
  return out
}

/** A runtime policy made from the IMA log (`keylime policy create runtime -m`). */
async function runtimePolicy(): Promise<{ digests: Record<string, string[]> }> {
  const dir = mkdtempSync(join(tmpdir(), 'kl-ear-e2e-'))
  writeFileSync(join(dir, 'ascii_runtime_measurements'), IMA_LOG)
  await tool(runPolicyCreateRuntime, ['-m', 'ascii_runtime_measurements', '-o', 'p.json'], dir)
  return JSON.parse(readFileSync(join(dir, 'p.json'), 'utf8'))
}

/** A webhook notice: upstream's `{msg, signature}` plus the EAR. */
interface Notice {
  msg: string
  signature: string
  ear?: string
}

for (const target of databaseTargets()) {
  describe(`signed attestation results (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let ca: TestCa
    let fleet: Fleet
    let v: VerifierHandle
    let webhook: ReturnType<typeof Bun.serve>
    let caPem: string
    let jwks: JSONWebKeySet
    const notices: Notice[] = []
    const [PASS, IMA_FAIL, PCR_FAIL, MB_FAIL] = [0, 1, 2, 3]
    const agent = (i: number) => fleet.agents[i]!
    const rec = (a: SimAgent) => v.loop.records.get(a.uuid)

    const enrol = async (a: SimAgent, p: { tpm?: object; ima?: object; mb?: object }) => {
      const res = await v.app.request(`/v2.6/agents/${a.uuid}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          // a V makes a pull agent: an enrolment without one is push mode (docs/push-mode.md)
          v: Buffer.alloc(32, 7).toString('base64'),
          cloudagent_ip: a.contactIp,
          cloudagent_port: a.contactPort,
          tpm_policy: JSON.stringify(p.tpm ?? { mask: '0x0' }),
          runtime_policy: p.ima === undefined ? '' : b64(p.ima),
          runtime_policy_name: '',
          mb_policy: p.mb === undefined ? null : JSON.stringify(p.mb),
          mb_policy_name: '',
          ima_sign_verification_keys: '',
          metadata: '{}',
          revocation_key: '',
          accept_tpm_hash_algs: ['sha256'],
          accept_tpm_encryption_algs: ['ecc', 'rsa'],
          accept_tpm_signing_algs: ['ecdsa', 'rsassa'],
          ak_tpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
          mtls_cert: a.mtlsCertPem,
          supported_version: '2.6',
        }),
      })
      expect(res.status, await res.text()).toBe(200)
    }
    /** `tpm_policy` pinning PCR 15 to `hex`. */
    const pcr15 = (hex: string) => ({ '15': [hex], mask: '0x8000' })

    /** The agent's EAR through the admin API, verified with jose: its claims. */
    const earOf = async (a: SimAgent, nonce?: string) => {
      const q = nonce === undefined ? '' : `?nonce=${nonce}`
      const res = await v.app.request(`/v2.6/agents/${a.uuid}/ear${q}`)
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toBe(
        'application/eat+jwt; eat_profile="tag:ietf.org,2026:rats/ear#04"',
      )
      return verified(await res.text())
    }
    const verified = async (token: string) => {
      const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwks), {
        algorithms: ['ES256'],
        typ: 'JWT',
      })
      expect(protectedHeader.kid).toBe(jwks.keys[0]!.kid!)
      return payload as Record<string, unknown> & { submods: Record<string, unknown> }
    }
    const failedWith = async (a: SimAgent, eventId: string) => {
      await until(
        () => rec(a)?.state === AGENT_STATES.INVALID_QUOTE,
        15_000,
        () => `INVALID_QUOTE, state ${rec(a)?.state} ${rec(a)?.lastEventId}`,
      )
      expect(rec(a)!.lastEventId).toBe(eventId)
    }

    beforeAll(async () => {
      ca = await createTestCa()
      caPem = readFileSync(join(ca.caDir, 'cacert.crt'), 'utf8')
      kdb = await target.open()
      webhook = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          notices.push((await req.json()) as Notice)
          return new Response('ok')
        },
      })
      fleet = await startFleet({
        count: 4,
        caCertPem: (await loadCaDir(ca.caDir)).caCertPem,
        listen: 'ports',
        seed: `ear-e2e-${target.name}`,
        banks: ['sha1'],
      })
      v = await startTestVerifier(kdb, ca, {
        // 5 × quote_interval (2.5 s) is how old a pass may be and still affirm
        quote_interval: '0.5',
        measured_boot_policy_name: 'example',
        revocations_enabled_revocation_notifications: "['webhook']",
        revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
        revocations_webhook_ear: 'True',
      })
      const policy = await runtimePolicy()
      const refstate = JSON.parse(
        await tool(runPolicyCreateMeasuredBoot, ['-e', MB_PATH, '-i', '-o', '-']),
      )
      const pass = agent(PASS)
      pass.serveImaList(IMA_LOG)
      pass.serveMbLog(MB_LOG)
      const pcr = Buffer.from(pass.tpm.readPcr('sha256', 15)).toString('hex')
      await enrol(pass, { tpm: pcr15(pcr), ima: policy, mb: refstate })

      agent(IMA_FAIL).serveImaList(IMA_LOG)
      const changed = structuredClone(policy)
      changed.digests['/usr/bin/busybox'] = ['00'.repeat(32)]
      await enrol(agent(IMA_FAIL), { ima: changed })

      await enrol(agent(PCR_FAIL), { tpm: pcr15('ff'.repeat(32)) })

      agent(MB_FAIL).serveMbLog(MB_LOG)
      const kernel = structuredClone(refstate)
      kernel.kernels[0].kernel_authcode_sha256 = `0x${'11'.repeat(32)}`
      await enrol(agent(MB_FAIL), { mb: kernel })
    }, 60_000)

    afterAll(async () => {
      await v?.stop(1000)
      await fleet?.stop()
      webhook?.stop(true)
      await kdb?.close()
    })

    test('the JWKS is served over TLS to a client without a certificate; the agent EAR is not', async () => {
      const url = v.servers[0]!.url
      const tls = { ca: caPem, checkServerIdentity: () => undefined }
      const res = await fetch(`${url}/.well-known/jwks.json`, { tls } as RequestInit)
      expect(res.status).toBe(200)
      jwks = (await res.json()) as JSONWebKeySet
      expect(jwks.keys).toHaveLength(1)
      expect(jwks.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' })
      expect('d' in jwks.keys[0]!).toBe(false)
      const anon = await fetch(`${url}/v2.6/agents/${agent(PASS).uuid}/ear`, { tls } as RequestInit)
      expect(anon.status).toBe(403)
      const cert = (n: string) => readFileSync(join(ca.caDir, n), 'utf8')
      const admin = {
        ...tls,
        cert: cert('client-cert.crt'),
        key: cert('client-private.pem'),
      }
      const ok = await fetch(`${url}/v3.0/agents/${agent(PASS).uuid}/ear`, {
        tls: admin,
      } as RequestInit)
      expect(ok.status).toBe(200)
      expect(decodeProtectedHeader(await ok.text()).kid).toBe(jwks.keys[0]!.kid!)
    })

    test('pass: affirming, every checked category 2, the nonce echoed', async () => {
      const a = agent(PASS)
      await until(
        () => (rec(a)?.attestationCount ?? 0) >= 2,
        15_000,
        () => `passes, state ${rec(a)?.state} ${rec(a)?.lastEventId}`,
      )
      const claims = await earOf(a, NONCE)
      expect(claims).toMatchObject({
        eat_profile: 'tag:ietf.org,2026:rats/ear#04',
        eat_nonce: NONCE,
        ear_status: 'affirming',
        ear_verifier_id: { developer: 'https://github.com/keylime-ts' },
      })
      expect(Math.abs((claims.iat as number) - Date.now() / 1000)).toBeLessThan(60)
      expect(claims.submods).toEqual({
        [a.uuid]: {
          ear_status: 'affirming',
          ear_trustworthiness_vector: {
            'instance-identity': 2,
            hardware: 2,
            executables: 2,
            configuration: 2,
          },
        },
      })
    }, 20_000)

    test('IMA failure: contraindicated, executables 96', async () => {
      const a = agent(IMA_FAIL)
      await failedWith(a, 'ima.validation.ima-ng.runtime_policy_hash')
      expect((await earOf(a)).submods[a.uuid]).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { executables: 96, hardware: 2, 'instance-identity': 2 },
      })
    }, 20_000)

    test('PCR (tpm_policy) failure: contraindicated, configuration 96', async () => {
      const a = agent(PCR_FAIL)
      await failedWith(a, 'pcr_validation.invalid_pcr_15')
      expect((await earOf(a)).submods[a.uuid]).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { configuration: 96, hardware: 2, 'instance-identity': 2 },
      })
    }, 20_000)

    test('measured-boot failure: contraindicated, configuration 96', async () => {
      const a = agent(MB_FAIL)
      await failedWith(a, 'measured_boot.policy_example')
      const claims = await earOf(a)
      expect(claims.ear_status).toBe('contraindicated')
      expect(claims.submods[a.uuid]).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { configuration: 96, hardware: 2, 'instance-identity': 2 },
      })
    }, 20_000)

    test('webhook_ear: the revocation notice carries the failing agent EAR', async () => {
      const a = agent(MB_FAIL)
      await until(
        () => notices.some((n) => JSON.parse(n.msg).agent_id === a.uuid),
        10_000,
        () => 'notice',
      )
      const n = notices.find((x) => JSON.parse(x.msg).agent_id === a.uuid)!
      expect(typeof n.signature).toBe('string')
      const claims = await verified(n.ear!)
      expect(claims.submods[a.uuid]).toMatchObject({ ear_status: 'contraindicated' })
    }, 15_000)

    test('a bad nonce or agent id is a 400, an unknown agent a 404, in the envelope', async () => {
      const a = agent(PASS)
      for (const nonce of ['short', 'A'.repeat(200), 'not%20base64%20at%20all%21']) {
        const res = await v.app.request(`/v2.6/agents/${a.uuid}/ear?nonce=${nonce}`)
        expect(res.status).toBe(400)
        expect(await res.json()).toMatchObject({ code: 400 })
      }
      const res = await v.app.request('/v2.6/agents/d432fbb3-d2f1-4a97-9ef7-75bd81c00000/ear')
      expect(res.status).toBe(404)
      const badId = await v.app.request(`/v2.6/agents/${'x'.repeat(300)}%00/ear`)
      expect(badId.status).toBe(400)
    })

    test('/verify/evidence: an EAR for Accept: application/eat+jwt, JSON without it', async () => {
      const tpm = agent(PASS).tpm
      const quoteNonce = 'evidence-nonce-1'
      const body = (pin: string) =>
        JSON.stringify({
          type: 'tpm',
          data: {
            quote: tpm.quote(quoteNonce, [15]).quote,
            nonce: quoteNonce,
            hash_alg: 'sha256',
            tpm_ek: Buffer.from(tpm.ekTpm2b).toString('base64'),
            tpm_ak: Buffer.from(tpm.akTpm2b).toString('base64'),
            tpm_policy: JSON.stringify(pcr15(pin)),
          },
        })
      const good = Buffer.from(tpm.readPcr('sha256', 15)).toString('hex')
      const post = (b: string, headers: Record<string, string>, q = '') =>
        v.app.request(`/v2.5/verify/evidence${q}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: b,
        })
      const accept = { accept: 'application/json;q=0.5, application/eat+jwt' }
      const pass = await post(body(good), accept, `?nonce=${NONCE}`)
      expect(pass.status).toBe(200)
      expect(pass.headers.get('content-type')).toStartWith('application/eat+jwt')
      const passClaims = await verified(await pass.text())
      expect(passClaims).toMatchObject({ eat_nonce: NONCE, ear_status: 'affirming' })
      expect(passClaims.submods).toEqual({
        tpm: {
          ear_status: 'affirming',
          ear_trustworthiness_vector: { hardware: 2, configuration: 2 },
        },
      })
      const fail = await post(body('ff'.repeat(32)), accept)
      expect((await verified(await fail.text())).submods).toEqual({
        tpm: {
          ear_status: 'contraindicated',
          ear_trustworthiness_vector: { hardware: 2, configuration: 96 },
        },
      })
      const json = await post(body(good), {})
      expect(json.headers.get('content-type')).toStartWith('application/json')
      expect(((await json.json()) as { results: { valid: boolean } }).results.valid).toBe(true)
      const badNonce = await post(body(good), accept, '?nonce=short')
      expect(badNonce.status).toBe(400)
      // a malformed body keeps upstream's 400 envelope even when an EAR was asked for
      const malformed = await post('{"type": "tpm", "data": {}}', accept)
      expect(malformed.status).toBe(400)
      expect(await malformed.json()).toMatchObject({ code: 400 })
    })

    test('keylime ear rotate: picked up without a restart, old tokens still verify', async () => {
      const a = agent(PASS)
      const before = await (await v.app.request(`/v2.6/agents/${a.uuid}/ear`)).text()
      const io = { stdout: () => {}, stderr: () => {}, env: { KEYLIME_DIR: ca.keylimeDir } }
      expect(await main('keylime', ['ear', 'rotate'], io)).toBe(0)
      await Bun.sleep(1100) // the verifier looks for a rotation at most once a second
      const res = await v.app.request('/.well-known/jwks.json')
      const rotated = (await res.json()) as JSONWebKeySet
      expect(rotated.keys).toHaveLength(2)
      expect(rotated.keys[1]!.kid).toBe(jwks.keys[0]!.kid!)
      const after = await (await v.app.request(`/v2.6/agents/${a.uuid}/ear`)).text()
      expect(decodeProtectedHeader(after).kid).toBe(rotated.keys[0]!.kid!)
      const set = createLocalJWKSet(rotated)
      for (const token of [before, after]) {
        const { payload } = await jwtVerify(token, set, { algorithms: ['ES256'] })
        expect(payload.submods).toHaveProperty(a.uuid)
      }
    })
  })
}
