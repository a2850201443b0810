/**
 * The whole push chain in one process, every piece real: swtpm, our registrar and verifier sharing
 * one cv_ca (real TLS on 127.0.0.1), our push agent (`startAgent`, `mode = push`) registering
 * without an mTLS certificate, `keylime_tenant` in-process, a webhook receiver for revocation
 * notices, and the log lines of all of them. For test/push-e2e.test.ts and the push mirrors in
 * test/keylime-tests.
 *
 * @module
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAgentConfig } from '../../src/agent/config/load-agent-config.ts'
import { type RunningAgent, startAgent } from '../../src/agent/start-agent.ts'
import { DEFAULT_CA_SETTINGS, ensureCvCa } from '../../src/ca/index.ts'
import { runTenant } from './run-tenant.ts'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import { setLogSink } from '../../src/log/logger.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { controlPlaneEnv } from './control-plane-process.ts'
import { imaNgLine, imaSha256Extends } from './ima-ng-line.ts'
import { startSwtpm, type Swtpm } from './swtpm.ts'
import { startTestRegistrar, type TestRegistrar } from './test-registrar.ts'
import { until } from './until.ts'
import { createTestCa, startTestVerifier, type TestCa } from './verifier-harness.ts'

/** Options of {@link startPushBed}. */
export interface PushBedOptions {
  /** The database (the caller's; closed by `stop`). */
  database: KeylimeDatabase
  /** The verifier's port (fixed, so a restarted verifier is found again). */
  port: number
  /** The agent id (`uuid` of the agent configuration). */
  agentId: string
  /** The agent's AK type (default RSA). */
  alg?: 'rsa' | 'ecc'
  /** `[verifier]` options (`KEYLIME_VERIFIER_*` names without the prefix). */
  verifier?: Record<string, string>
  /** Give the agent an IMA measurement list (`measure` appends to it). */
  ima?: boolean
  /** Options of the agent configuration's `[agent]` section over the bed's (TOML values). */
  agentConfig?: Record<string, string>
}

/** A running bed. */
export interface PushBed {
  swtpm: Swtpm
  ca: TestCa
  registrar: TestRegistrar
  /** The verifier running now. */
  readonly verifier: VerifierHandle
  /** The agent running now, if any. */
  readonly agent: RunningAgent | undefined
  /** Revocation notices the webhook received. */
  notices: { msg: string }[]
  /** Every request the agent sent the verifier and its answer, `METHOD path status`. */
  sent: string[]
  /** Every log line so far. */
  logs: string[]
  /** A work directory removed by `stop`. */
  work: string
  /** Starts the push agent (registers, then attests on its own). */
  startAgent(): Promise<void>
  stopAgent(): Promise<void>
  /** Stops the verifier and starts a new one on the same database and `KEYLIME_DIR`. */
  restartVerifier(): Promise<void>
  /** `keylime_tenant <args>`. */
  tenant(args: string[]): Promise<{ code: number; out: string; err: string }>
  /** `GET /v2.6/agents/:id` over TLS with the admin certificate: the v2 `results`. */
  status(): Promise<Record<string, unknown>>
  /** Waits until `attestation_status` is `want`. */
  statusIs(want: string, ms: number): Promise<void>
  /**
   * A file measured as the kernel does it: its ima-ng line appended to the agent's IMA list, then
   * PCR 10 (SHA-256 bank) extended (needs `ima`).
   */
  measure(path: string, digest: string): void
  /** `POST /v3.0/sessions` the agent sent. */
  sessions(): number
  stop(): Promise<void>
}

/** Starts swtpm, registrar, verifier and webhook receiver (the agent with `startAgent`). */
export async function startPushBed(o: PushBedOptions): Promise<PushBed> {
  const work = mkdtempSync(join(tmpdir(), 'kl-push-bed-'))
  const keylimeDir = join(work, 'cp')
  const logs: string[] = []
  const previousSink = setLogSink((line) => {
    logs.push(line)
    previousSink(line)
  })
  await ensureCvCa({ keylimeDir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
  const ca = await createTestCa(keylimeDir)
  const file = (n: string) => readFileSync(join(ca.caDir, n), 'utf8')
  const swtpm = await startSwtpm()
  const notices: { msg: string }[] = []
  const webhook = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    fetch: async (req) => {
      notices.push((await req.json()) as { msg: string })
      return new Response('ok')
    },
  })
  const registrar = await startTestRegistrar({ database: o.database, keylimeDir })
  const overrides = {
    port: String(o.port),
    revocations_enabled_revocation_notifications: "['webhook']",
    revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
    ...o.verifier,
  }
  const startV = () => startTestVerifier(o.database, ca, overrides, { checkWorkers: 1 })
  let verifier = await startV()
  let agent: RunningAgent | undefined
  const sent: string[] = []
  const base = await controlPlaneEnv(keylimeDir)
  const tenantEnv = {
    ...base.env,
    KEYLIME_TENANT_VERIFIER_IP: '127.0.0.1',
    KEYLIME_TENANT_VERIFIER_PORT: String(o.port),
    KEYLIME_TENANT_REGISTRAR_IP: '127.0.0.1',
    KEYLIME_TENANT_REGISTRAR_PORT: new URL(registrar.httpsUrl).port,
    KEYLIME_TENANT_REQUIRE_EK_CERT: 'False',
    KEYLIME_TENANT_ACCEPT_TPM_SIGNING_ALGS: "['ecdsa', 'rsassa']",
    KEYLIME_TENANT_RETRY_INTERVAL: '0.2',
    KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
    KEYLIME_TENANT_MAX_RETRIES: '10',
    KEYLIME_TENANT_REQUEST_TIMEOUT: '5',
  }
  const alg = o.alg ?? 'rsa'
  const imaPath = join(work, o.ima ? 'ascii_runtime_measurements' : 'none')
  if (o.ima) writeFileSync(imaPath, '')

  const bed: PushBed = {
    swtpm,
    ca,
    registrar,
    get verifier() {
      return verifier
    },
    get agent() {
      return agent
    },
    notices,
    sent,
    logs,
    work,
    async startAgent() {
      const conf = join(work, 'agent.conf')
      const options: Record<string, string | number> = {
        mode: 'push',
        uuid: o.agentId,
        keylime_dir: join(work, 'kl'),
        registrar_ip: '127.0.0.1',
        registrar_port: Number(new URL(registrar.httpUrl).port),
        verifier_url: `https://127.0.0.1:${o.port}`,
        verifier_tls_ca_cert: join(ca.caDir, 'cacert.crt'),
        attestation_interval_seconds: 1,
        exponential_backoff_initial_delay: 100,
        exponential_backoff_max_retries: 3,
        exponential_backoff_max_delay: 500,
        tpm_encryption_alg: alg,
        tpm_signing_alg: alg === 'rsa' ? 'rsassa' : 'ecdsa',
        ima_ml_path: imaPath,
        measuredboot_ml_path: join(work, 'none'),
        run_as: '',
        ...o.agentConfig,
      }
      const lines = Object.entries(options).map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
      writeFileSync(conf, `[agent]\n${lines.join('\n')}\n`)
      const caPem = file('cacert.crt')
      agent = await startAgent(loadAgentConfig({ file: conf, env: {} }), {
        tcti: { kind: 'swtpm', host: '127.0.0.1', port: swtpm.port },
        // real TLS to the verifier; recorded to count the sessions
        fetch: async (req) => {
          const res = await fetch(req, { tls: { ca: caPem } } as RequestInit)
          sent.push(`${req.method} ${new URL(req.url).pathname} ${res.status}`)
          return res
        },
      })
    },
    async stopAgent() {
      await agent?.stop()
      agent = undefined
    },
    async restartVerifier() {
      await verifier.stop(200)
      verifier = await startV()
    },
    tenant: (args) => runTenant(args, tenantEnv),
    async status() {
      const res = await fetch(`https://127.0.0.1:${o.port}/v2.6/agents/${o.agentId}`, {
        tls: {
          ca: file('cacert.crt'),
          cert: file('client-cert.crt'),
          key: file('client-private.pem'),
        },
      } as RequestInit)
      return ((await res.json()) as { results: Record<string, unknown> }).results
    },
    async statusIs(want, ms) {
      await until(async () => (await bed.status()).attestation_status === want, ms, want)
    },
    measure(path, digest) {
      const line = imaNgLine(path, digest)
      appendFileSync(imaPath, line)
      for (const d of imaSha256Extends(line)) {
        const r = Bun.spawnSync(['tpm2_pcrextend', `10:sha256=${d.toString('hex')}`], {
          env: { ...process.env, TPM2TOOLS_TCTI: swtpm.tcti },
          stderr: 'pipe',
        })
        if (r.exitCode !== 0) throw new Error(`tpm2_pcrextend: ${r.stderr.toString()}`)
      }
    },
    sessions: () => sent.filter((s) => /^POST \/v3(\.0)?\/sessions \d+$/.test(s)).length,
    async stop() {
      await agent?.stop()
      await verifier.stop(200)
      await registrar.stop()
      webhook.stop(true)
      await o.database.close()
      await swtpm.remove()
      setLogSink(previousSink)
      rmSync(work, { recursive: true, force: true })
    },
  }
  return bed
}
