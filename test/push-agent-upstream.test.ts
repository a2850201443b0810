/**
 * Our push agent against UPSTREAM Keylime 7.14's push-mode verifier (the interoperability half
 * "our push agent → upstream verifier"). Upstream runs from a source tree
 * (`KEYLIME_UPSTREAM_SRC`, test/support/upstream-keylime.ts) with `[verifier] mode = push` and
 * sqlite; our agent (`mode = push`, RSA AK — upstream accepts only RSASSA/SHA-256 proofs of
 * possession) runs on swtpm:
 *
 * 1. registers and activates at upstream's registrar (no mTLS certificate);
 * 2. is enrolled with upstream's tenant: `-c add --push-model --tpm_policy {"23": [zeros]}`;
 * 3. authenticates (TPM2_Certify), negotiates, sends evidence, until upstream's
 *    `GET /v2.6/agents/:id` says `attestation_status: PASS`;
 * 4. with a runtime (IMA) policy, a list that grows while it attests is sent from upstream's
 *    `starting_offset` (PCR 10 extended per entry on swtpm as the kernel would) and stays PASS;
 * 5. with 8-second tokens that attestations do not extend, it renews its token before
 *    `token_expires_at`, with no 401 and no failed cycle;
 * 6. `tpm2_pcrextend 23` on the TPM: the next evidence fails the policy → `FAIL`.
 *
 * Skips with the reason printed when the source tree, Debian's python3 modules, swtpm or
 * tpm2-tools are missing (CI cannot fetch upstream). The commands and output of a recorded run
 * are in docs/agent.md ("Push mode against upstream's verifier").
 *
 * @module
 */
import 'reflect-metadata'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadAgentConfig } from '../src/agent/config/load-agent-config.ts'
import { type RunningAgent, startAgent } from '../src/agent/start-agent.ts'
import { setLogSink } from '../src/log/logger.ts'
import { ImaLog } from './support/fleet/ima-log.ts'
import { missingSwtpmTools, startSwtpm, type Swtpm } from './support/swtpm.ts'
import {
  startUpstreamKeylime,
  type UpstreamKeylime,
  upstreamMissing,
} from './support/upstream-keylime.ts'
import { untilValue } from './support/until.ts'

const tools = missingSwtpmTools(['tpm2_pcrextend'])
const skip = upstreamMissing() ?? (tools.length > 0 ? `missing ${tools.join(', ')}` : undefined)
if (skip !== undefined) console.log(`skipping push agent ↔ upstream verifier: ${skip}`)

/** Our port range (19300–19399): upstream verifier, registrar (HTTP, TLS), revocation ZeroMQ. */
const PORTS = { verifier: 19301, registrar: 19310, registrarTls: 19311, zmq: 19320 }
const AGENT_ID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'
const ZEROS = '0'.repeat(64)

/** Extends PCR 10 with an `ima-ng` line's template in both banks, as the kernel does. */
function extendImaLine(tcti: string, line: string): void {
  const m = /^10 [0-9a-f]{40} ima-ng sha256:([0-9a-f]{64}) (.+)\n?$/.exec(line)
  if (m === null) throw new Error(`not an ima-ng line: ${line}`)
  const u32 = (n: number) => Buffer.from([n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24])
  const d = Buffer.concat([Buffer.from('sha256:\0', 'latin1'), Buffer.from(m[1]!, 'hex')])
  const n = Buffer.concat([Buffer.from(m[2]!, 'utf8'), Buffer.from([0])])
  const t = Buffer.concat([u32(d.byteLength), d, u32(n.byteLength), n])
  const h = (alg: string) => createHash(alg).update(t).digest('hex')
  const r = Bun.spawnSync([
    'tpm2_pcrextend',
    '-T',
    tcti,
    `10:sha1=${h('sha1')},sha256=${h('sha256')}`,
  ])
  if (r.exitCode !== 0) throw new Error(`tpm2_pcrextend 10 failed: ${r.stderr}`)
}

describe.skipIf(skip !== undefined)('push agent → upstream push verifier', () => {
  let swtpm: Swtpm
  let work: string
  let upstream: UpstreamKeylime | undefined
  let agent: RunningAgent | undefined

  beforeAll(async () => {
    swtpm = await startSwtpm({ banks: 'sha1,sha256' })
    work = mkdtempSync(join(tmpdir(), 'kl-push-upstream-'))
    // the tenant checks the EK certificate: upstream's store plus swtpm's local CA
    const store = join(work, 'certstore')
    mkdirSync(store)
    const upstreamStore = join(process.env.KEYLIME_UPSTREAM_SRC!, 'tpm_cert_store')
    for (const f of readdirSync(upstreamStore)) copyFileSync(join(upstreamStore, f), join(store, f))
    writeFileSync(join(store, 'swtpm-root.pem'), swtpm.rootCaPem)
    writeFileSync(join(store, 'swtpm-issuer.pem'), swtpm.intermediatePem)
    upstream = await startUpstreamKeylime({
      ports: PORTS,
      // short tokens that attestations do not extend: the agent must renew them on time
      verifier: {
        mode: 'push',
        quote_interval: 2,
        session_lifetime: 8,
        extend_token_on_attestation: 'False',
      },
      tpmCertStore: store,
    })
  }, 120_000)

  afterAll(async () => {
    await agent?.stop()
    await upstream?.stop(process.env.KEYLIME_UPSTREAM_KEEP === '1')
    await swtpm?.remove()
    if (work) rmSync(work, { recursive: true, force: true })
  }, 60_000)

  const status = async () => {
    const r = await upstream!.verifierGet(`/v2.6/agents/${AGENT_ID}`)
    return r.body.results as Record<string, unknown> | undefined
  }

  test('registers, is enrolled with --push-model, attests to PASS; a PCR extend makes it FAIL', async () => {
    const file = join(work, 'agent.conf')
    writeFileSync(
      file,
      `[agent]
mode = "push"
uuid = "${AGENT_ID}"
keylime_dir = "${join(work, 'agent')}"
registrar_ip = "127.0.0.1"
registrar_port = ${PORTS.registrar}
verifier_url = "https://127.0.0.1:${PORTS.verifier}"
verifier_tls_ca_cert = "${join(upstream!.keylimeDir, 'cv_ca', 'cacert.crt')}"
attestation_interval_seconds = 2
exponential_backoff_initial_delay = 500
exponential_backoff_max_retries = 3
exponential_backoff_max_delay = 2000
tpm_hash_alg = "sha256"
tpm_encryption_alg = "rsa"
tpm_signing_alg = "rsassa"
ima_ml_path = "${join(work, 'ima')}"
measuredboot_ml_path = "${join(work, 'no-uefi')}"
run_as = ""
`,
    )
    // a list of 4 entries now, 3 more later; PCR 10 follows the list
    const ima = new ImaLog(7, ['sha1', 'sha256'])
    writeFileSync(join(work, 'ima'), ima.lines.slice(0, 4).join(''))
    for (const l of ima.lines.slice(0, 4)) extendImaLine(swtpm.tcti, l)
    const policy = JSON.parse(ima.runtimePolicy()) as { meta: { generator: number } }
    policy.meta.generator = 2 // CompatibleAllowList: upstream asks for the IMA log above 1
    writeFileSync(join(work, 'policy.json'), JSON.stringify(policy))

    const lines: string[] = []
    const previousSink = setLogSink((line) => {
      lines.push(line)
      previousSink(line)
    })
    agent = await startAgent(loadAgentConfig({ file, env: {} }), {
      tcti: { kind: 'swtpm', host: '127.0.0.1', port: swtpm.port },
    })
    expect(agent.server).toBeUndefined()

    const add = await upstream!.tenant([
      '-c',
      'add',
      '--push-model',
      '-u',
      AGENT_ID,
      '--tpm_policy',
      JSON.stringify({ '23': [ZEROS] }),
      '--runtime-policy',
      join(work, 'policy.json'),
    ])
    console.log(
      add.out
        .split('\n')
        .filter((l) => /added to Verifier|ERROR/.test(l))
        .join('\n'),
    )
    expect(add.code).toBe(0)

    const passed = await untilValue(
      async () => {
        const s = await status()
        return s?.attestation_status === 'PASS' && (s.attestation_count as number) >= 6 && s
      },
      90_000,
      'attestation_status PASS',
      500,
    )
    console.log('upstream after attesting:', {
      attestation_status: passed.attestation_status,
      attestation_count: passed.attestation_count,
    })

    // the list grows: upstream asks from its offset, replays the new entries onto PCR 10
    const before = passed.attestation_count as number
    for (const l of ima.lines.slice(4)) {
      extendImaLine(swtpm.tcti, l)
      appendFileSync(join(work, 'ima'), l)
    }
    const grown = await untilValue(
      async () => {
        const s = await status()
        if (s?.attestation_status !== 'PASS') throw new Error(`status ${s?.attestation_status}`)
        return (s.attestation_count as number) >= before + 3 && s
      },
      30_000,
      'three more attestations after the IMA list grew',
      500,
    )
    console.log('upstream after the IMA list grew:', {
      attestation_status: grown.attestation_status,
      attestation_count: grown.attestation_count,
    })

    // ≥ 12 s of attesting with 8-s tokens: renewed ahead of expiry, never refused
    const sinceEnrolled = lines.slice(lines.findIndex((l) => l.includes('authenticated')))
    const auths = sinceEnrolled.filter((l) => l.includes('push_agent - INFO - authenticated'))
    console.log(`sessions opened while attesting: ${auths.length}`)
    expect(auths.length).toBeGreaterThanOrEqual(2)
    expect(sinceEnrolled.filter((l) => /401|attestation failed/.test(l))).toEqual([])

    const digest = new Bun.CryptoHasher('sha256').update('tamper').digest('hex')
    const extend = Bun.spawnSync(['tpm2_pcrextend', '-T', swtpm.tcti, `23:sha256=${digest}`], {
      stderr: 'pipe',
    })
    expect(extend.exitCode).toBe(0)
    const failed = await untilValue(
      async () => {
        const s = await status()
        return s?.attestation_status === 'FAIL' && s
      },
      30_000,
      'attestation_status FAIL',
      500,
    )
    console.log('upstream after tpm2_pcrextend 23:', {
      attestation_status: failed.attestation_status,
    })
    setLogSink(previousSink)
    expect(upstream!.log('verifier')).toMatch(/PCR #23: [0-9a-f]{64} from quote .* does not match/)
  }, 180_000)
})
