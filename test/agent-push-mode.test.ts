/**
 * `keylime-agent` in push mode, started as `main.ts` starts it (startAgent with a configuration
 * file): on swtpm it registers with our registrar **without** an mTLS certificate (rust-keylime's
 * push agent sends none), activates, opens **no listening port**, and attests on its own to a
 * fake push verifier (test/support/fake-push-verifier.ts, built from the protocol document while
 * the real push routes are written in parallel; the upstream interop test is
 * test/push-agent-upstream.test.ts), which checks the TPM2_Certify proof and every quote.
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAgentConfig } from '../src/agent/config/load-agent-config.ts'
import { type RunningAgent, startAgent } from '../src/agent/start-agent.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { setLogSink } from '../src/log/logger.ts'
import { databaseTargets } from './support/databases.ts'
import { FakePushVerifier } from './support/fake-push-verifier.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'
import { startTestRegistrar, type TestRegistrar } from './support/test-registrar.ts'

const missing = missingSwtpmTools()
if (missing.length > 0) console.log(`skipping agent push-mode test: missing ${missing.join(', ')}`)

/** The pull API port this test would listen on, were push mode to listen (our range). */
const PULL_PORT = 19351

async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

describe.skipIf(missing.length > 0)('keylime-agent, mode = push', () => {
  let swtpm: Swtpm
  let work: string
  let db: KeylimeDatabase
  let registrar: TestRegistrar
  let agent: RunningAgent | undefined

  beforeAll(async () => {
    swtpm = await startSwtpm()
    work = mkdtempSync(join(tmpdir(), 'kl-agent-push-'))
    db = await databaseTargets()[0]!.open()
    registrar = await startTestRegistrar({ database: db })
  }, 60_000)

  afterAll(async () => {
    await agent?.stop()
    await registrar?.stop()
    await db?.close()
    await swtpm?.remove()
    if (work) rmSync(work, { recursive: true, force: true })
  })

  test('registers without an mTLS certificate, listens nowhere, attests to verifier_url', async () => {
    const reg = new URL(registrar.httpUrl)
    const file = join(work, 'agent.conf')
    writeFileSync(
      file,
      `[agent]
mode = "push"
uuid = "hash_ek"
keylime_dir = "${join(work, 'kl')}"
port = ${PULL_PORT}
registrar_ip = "127.0.0.1"
registrar_port = ${reg.port}
verifier_url = "https://verifier.test:8881"
attestation_interval_seconds = 5
exponential_backoff_initial_delay = 50
exponential_backoff_max_retries = 20
exponential_backoff_max_delay = 200
ima_ml_path = "${join(work, 'none')}"
measuredboot_ml_path = "${join(work, 'none')}"
run_as = ""
`,
    )
    const config = loadAgentConfig({ file, env: {} })
    const lines: string[] = []
    const previousSink = setLogSink((line) => {
      lines.push(line)
      previousSink(line)
    })
    // the fake verifier needs the AK, known once the agent is up: answer 503 until then
    let verifier: FakePushVerifier | undefined
    agent = await startAgent(config, {
      tcti: { kind: 'swtpm', host: '127.0.0.1', port: swtpm.port },
      fetch: (req) =>
        verifier === undefined
          ? Promise.resolve(new Response(null, { status: 503 }))
          : verifier.fetch(req),
    })
    verifier = new FakePushVerifier({
      agentId: agent.uuid,
      akTpm2b: agent.tpm.akTpm2b,
      meta: { seconds_to_next_attestation: 1 },
    })
    expect(agent.uuid).toMatch(/^[0-9a-f]{64}$/)
    expect(agent.server).toBeUndefined()
    expect(await listening(PULL_PORT)).toBe(false)

    const row = await registrar.admin('GET', `/v2.6/agents/${agent.uuid}`)
    expect(row.status).toBe(200)
    expect(row.json.results.mtls_cert).toBeNull()
    expect(row.json.results.aik_tpm).toBe(Buffer.from(agent.tpm.akTpm2b).toString('base64'))

    const until = Date.now() + 15_000
    while (verifier.accepted.length < 2 && Date.now() < until) await Bun.sleep(100)
    expect(verifier.accepted.length).toBeGreaterThanOrEqual(2)
    expect(verifier.sessionsCreated).toBe(1)
    await agent.stop()
    agent = undefined
    setLogSink(previousSink)
    // the bearer token (and its secret half) never reaches a log line
    expect(lines.some((l) => l.includes('evidence accepted'))).toBe(true)
    for (const token of verifier.issued) {
      expect(lines.filter((l) => l.includes(token.split('.')[1]!))).toEqual([])
    }
    expect(lines.filter((l) => /bearer/i.test(l))).toEqual([])
  }, 60_000)

  test('registrar_tls_enabled: registers over HTTPS, checking the registrar with registrar_tls_ca_cert', async () => {
    const tlsUrl = new URL(registrar.httpsUrl)
    const ca = join(work, 'registrar-ca.crt')
    writeFileSync(ca, registrar.client.ca)
    const file = join(work, 'agent-tls.conf')
    writeFileSync(
      file,
      `[agent]
mode = "push"
uuid = "push-over-tls"
keylime_dir = "${join(work, 'kl-tls')}"
registrar_ip = "127.0.0.1"
registrar_port = 1
registrar_tls_enabled = true
registrar_tls_port = ${tlsUrl.port}
registrar_tls_ca_cert = "${ca}"
verifier_url = "https://verifier.test:8881"
exponential_backoff_initial_delay = 50
exponential_backoff_max_retries = 1
exponential_backoff_max_delay = 100
run_as = ""
`,
    )
    const tlsAgent = await startAgent(loadAgentConfig({ file, env: {} }), {
      tcti: { kind: 'swtpm', host: '127.0.0.1', port: swtpm.port },
      fetch: async () => new Response(null, { status: 404 }),
    })
    try {
      const row = await registrar.admin('GET', '/v2.6/agents/push-over-tls')
      expect(row.status).toBe(200)
      expect(row.json.results.aik_tpm).toBe(Buffer.from(tlsAgent.tpm.akTpm2b).toString('base64'))
    } finally {
      await tlsAgent.stop()
    }
  }, 60_000)
})
