/**
 * The whole push chain, every piece real: our push agent (`startAgent`, `mode = push`, on swtpm)
 * registers at our registrar without an mTLS certificate, `keylime_tenant -c add --push-model`
 * enrols it at our verifier (one cv_ca, real TLS on 127.0.0.1), and the agent authenticates
 * (TPM2_Certify proof of possession, RSA and ECC AKs) and attests on its own schedule:
 * PASS → a PCR 23 extend → FAIL with `failure_reason` and a webhook notice → the PCR reset stays
 * FAIL (no auto-recover, docs/push-mode.md) → `keylime_tenant -c reactivate` → PASS → the agent
 * stopped → TIMEOUT after `quote_interval × 5` → the agent back → PASS → the verifier restarted
 * on the same database and `KEYLIME_DIR`: the agent keeps attesting with the same token.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAgentConfig } from '../src/agent/config/load-agent-config.ts'
import { type RunningAgent, startAgent } from '../src/agent/start-agent.ts'
import { DEFAULT_CA_SETTINGS, ensureCvCa } from '../src/ca/index.ts'
import { main } from '../src/cli/main.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { controlPlaneEnv } from './support/control-plane-process.ts'
import { databaseTargets } from './support/databases.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'
import { startTestRegistrar, type TestRegistrar } from './support/test-registrar.ts'
import { until } from './support/until.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'

const missing = missingSwtpmTools(['tpm2_pcrextend', 'tpm2_pcrreset'])
if (missing.length > 0) console.log(`skipping push e2e: missing ${missing.join(', ')}`)

const QUOTE_INTERVAL = 1
const PCR23_ZERO = '0'.repeat(64)

function tpm2(swtpm: Swtpm, args: string[]): void {
  const r = Bun.spawnSync(args, {
    env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  if (r.exitCode !== 0) throw new Error(`${args[0]}: ${r.stderr.toString()}`)
}

/** Verifier ports in our range, one per (database, AK) run: the restart reuses it. */
let nextPort = 19510

for (const target of databaseTargets()) {
  for (const alg of ['rsa', 'ecc'] as const) {
    describe.skipIf(missing.length > 0)(
      `push e2e, ${alg.toUpperCase()} AK (${target.name})`,
      () => {
        const agentId = `push-e2e-${alg}-${target.name}`.toLowerCase()
        const port = nextPort++
        let swtpm: Swtpm
        let kdb: KeylimeDatabase
        let ca: TestCa
        let registrar: TestRegistrar
        let v: VerifierHandle
        let agent: RunningAgent | undefined
        let webhook: ReturnType<typeof Bun.serve>
        let tenantEnv: Record<string, string>
        let work: string
        const notices: { msg: string }[] = []
        /** Every request the agent sent, `METHOD path`. */
        const sent: string[] = []

        const verifierOverrides = () => ({
          port: String(port),
          quote_interval: String(QUOTE_INTERVAL),
          revocations_enabled_revocation_notifications: "['webhook']",
          revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
        })
        const startV = () => startTestVerifier(kdb, ca, verifierOverrides(), { checkWorkers: 1 })

        const tenant = async (args: string[]) => {
          let out = ''
          let err = ''
          const code = (await main('keylime_tenant', args, {
            stdout: (s) => {
              out += s
            },
            stderr: (s) => {
              err += s
            },
            env: tenantEnv,
          })) as number
          return { code, out, err }
        }
        const file = (n: string) => readFileSync(join(ca.caDir, n), 'utf8')
        /** `GET /v2.6/agents/:id` over TLS with the admin certificate. */
        const status = async () => {
          const res = await fetch(`https://127.0.0.1:${port}/v2.6/agents/${agentId}`, {
            tls: {
              ca: file('cacert.crt'),
              cert: file('client-cert.crt'),
              key: file('client-private.pem'),
            },
          } as RequestInit)
          const body = (await res.json()) as { results: Record<string, unknown> }
          return body.results
        }
        const statusIs = async (want: string, ms: number) =>
          until(async () => (await status()).attestation_status === want, ms, want)
        const attestationCount = async () => Number((await status()).attestation_count)

        const startPushAgent = async () => {
          const conf = join(work, 'agent.conf')
          writeFileSync(
            conf,
            `[agent]
mode = "push"
uuid = "${agentId}"
keylime_dir = "${join(work, 'kl')}"
registrar_ip = "127.0.0.1"
registrar_port = ${new URL(registrar.httpUrl).port}
verifier_url = "https://127.0.0.1:${port}"
verifier_tls_ca_cert = "${join(ca.caDir, 'cacert.crt')}"
attestation_interval_seconds = 1
exponential_backoff_initial_delay = 100
exponential_backoff_max_retries = 3
exponential_backoff_max_delay = 500
tpm_encryption_alg = "${alg}"
tpm_signing_alg = "${alg === 'rsa' ? 'rsassa' : 'ecdsa'}"
ima_ml_path = "${join(work, 'none')}"
measuredboot_ml_path = "${join(work, 'none')}"
run_as = ""
`,
          )
          const caPem = file('cacert.crt')
          agent = await startAgent(loadAgentConfig({ file: conf, env: {} }), {
            tcti: { kind: 'swtpm', host: '127.0.0.1', port: swtpm.port },
            // real TLS to the verifier; recorded to count the sessions
            fetch: (req) => {
              sent.push(`${req.method} ${new URL(req.url).pathname}`)
              return fetch(req, { tls: { ca: caPem } } as RequestInit)
            },
          })
        }
        const sessions = () => sent.filter((s) => /^POST \/v3(\.0)?\/sessions$/.test(s)).length

        beforeAll(async () => {
          work = mkdtempSync(join(tmpdir(), 'kl-push-e2e-'))
          const keylimeDir = join(work, 'cp')
          await ensureCvCa({ keylimeDir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
          ca = await createTestCa(keylimeDir)
          swtpm = await startSwtpm()
          kdb = await target.open()
          webhook = Bun.serve({
            hostname: '127.0.0.1',
            port: 0,
            fetch: async (req) => {
              notices.push((await req.json()) as { msg: string })
              return new Response('ok')
            },
          })
          registrar = await startTestRegistrar({ database: kdb, keylimeDir })
          v = await startV()
          const base = await controlPlaneEnv(keylimeDir)
          tenantEnv = {
            ...base.env,
            KEYLIME_TENANT_VERIFIER_IP: '127.0.0.1',
            KEYLIME_TENANT_VERIFIER_PORT: String(port),
            KEYLIME_TENANT_REGISTRAR_IP: '127.0.0.1',
            KEYLIME_TENANT_REGISTRAR_PORT: new URL(registrar.httpsUrl).port,
            KEYLIME_TENANT_REQUIRE_EK_CERT: 'False',
            KEYLIME_TENANT_ACCEPT_TPM_SIGNING_ALGS: "['ecdsa', 'rsassa']",
            KEYLIME_TENANT_RETRY_INTERVAL: '0.2',
            KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
            KEYLIME_TENANT_MAX_RETRIES: '10',
            KEYLIME_TENANT_REQUEST_TIMEOUT: '5',
          }
        }, 60_000)

        afterAll(async () => {
          await agent?.stop()
          await v?.stop(200)
          await registrar?.stop()
          webhook?.stop(true)
          await kdb?.close()
          await swtpm?.remove()
          if (work) rmSync(work, { recursive: true, force: true })
        })

        test('register → enrol → PASS → FAIL → reactivate → TIMEOUT → PASS → verifier restart', async () => {
          // the agent registers (no mTLS certificate) and asks for sessions until it is enrolled
          await startPushAgent()
          const row = await registrar.admin('GET', `/v2.6/agents/${agentId}`)
          expect(row.json.results.mtls_cert).toBeNull()

          const add = await tenant([
            ...['-c', 'add', '-u', agentId, '--push-model'],
            ...['--tpm_policy', JSON.stringify({ '23': [PCR23_ZERO] })],
          ])
          expect({ code: add.code, err: add.code === 0 ? '' : add.err + add.out }).toEqual({
            code: 0,
            err: '',
          })
          expect((await v.store.agents.getAgent(agentId))?.mode).toBe('push')

          // session (PoP with TPM2_Certify) → capabilities → evidence → PASS
          await statusIs('PASS', 15_000)
          const pass = await status()
          expect(pass.attestation_period).toBe(`${QUOTE_INTERVAL}s`)
          expect(pass.maximum_attestation_interval).toBe(`${QUOTE_INTERVAL * 5}s`)
          const cv = await tenant(['-c', 'cvstatus', '-u', agentId, '--push-model'])
          expect(cv.code).toBe(0)
          expect(cv.out).toContain('PASS')

          // a PCR in tpm_policy changes → FAIL with failure_reason, and a webhook notice
          tpm2(swtpm, ['tpm2_pcrextend', `23:sha256=${'ab'.repeat(32)}`])
          await statusIs('FAIL', 10_000)
          const latest = await v.app.request(`/v3.0/agents/${agentId}/attestations/latest`)
          const doc = (await latest.json()) as { data: { attributes: Record<string, unknown> } }
          expect(doc.data.attributes.evaluation).toBe('fail')
          expect(doc.data.attributes.failure_reason).toBe('policy_violation')
          expect(doc.data.attributes.verification_completed_at).toEqual(expect.any(String))
          await until(() => notices.some((n) => n.msg.includes(agentId)), 5000, 'webhook')

          // the PCR back to its policy value: without auto-recover the agent stays FAIL
          tpm2(swtpm, ['tpm2_pcrreset', '23'])
          const after = await attestationCount()
          await until(async () => (await attestationCount()) >= after + 2, 10_000, 'attesting')
          expect((await status()).attestation_status).toBe('FAIL')
          const react = await tenant(['-c', 'reactivate', '-u', agentId, '--push-model'])
          expect({ code: react.code, err: react.code === 0 ? '' : react.err }).toEqual({
            code: 0,
            err: '',
          })
          await statusIs('PASS', 10_000)

          // a silent agent → TIMEOUT after quote_interval × 5, with a notice; back → PASS
          await agent?.stop()
          agent = undefined
          const silentAt = Date.now()
          await statusIs('TIMEOUT', 12_000)
          expect(Date.now() - silentAt).toBeGreaterThanOrEqual(QUOTE_INTERVAL * 5 * 1000 - 1500)
          await until(
            () => notices.some((n) => n.msg.includes(agentId) && /timeout/i.test(n.msg)),
            5000,
            'timeout notice',
          )
          await startPushAgent()
          await statusIs('PASS', 15_000)

          // the verifier restarts on the same database and KEYLIME_DIR: the token still holds
          const before = sessions()
          await v.stop(200)
          v = await startV()
          const count = await attestationCount()
          const restartedAt = Date.now()
          await until(async () => (await attestationCount()) > count, 4000, 'attesting on')
          expect(Date.now() - restartedAt).toBeLessThan(QUOTE_INTERVAL * 2 * 1000 + 1500)
          expect(sessions()).toBe(before)
          expect((await status()).attestation_status).toBe('PASS')
        }, 90_000)
      },
    )
  }
}
