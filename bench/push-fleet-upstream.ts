/**
 * The push fleet of `bench/push-fleet.ts` against UPSTREAM Keylime 7.14's push verifier, run from
 * a source tree (`KEYLIME_UPSTREAM_SRC`, test/support/upstream-keylime.ts; sqlite, `num_workers
 * = 1`, `[verifier] mode = push`, a per-IP session limit no fleet reaches). RSA AKs only: upstream's proof of
 * possession accepts only RSASSA/SHA-256. Agents are enrolled with `POST /v2.3/agents/{id}` (the
 * tenant's body for `--push-model`, with the admin client certificate); the verifier's CPU is
 * read from /proc (every process of `keylime.cmd.verifier` running in its `KEYLIME_DIR`).
 *
 *   KEYLIME_UPSTREAM_SRC=… bun bench/push-fleet-upstream.ts --count 10 [--duration 30]
 *     [--warmup 10] [--interval 2] [--port 19650]
 *
 * @module
 */
import 'reflect-metadata'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { enrolmentBody } from '../test/support/fleet/enroll-agent.ts'
import { startPushFleet } from '../test/support/fleet/push-fleet.ts'
import { FAULT_PCR } from '../test/support/fleet/sim-agent.ts'
import { startUpstreamKeylime, upstreamMissing } from '../test/support/upstream-keylime.ts'

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '10' },
    interval: { type: 'string', default: '2' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '10' },
    port: { type: 'string', default: '19650' },
  },
})
const missing = upstreamMissing()
if (missing !== undefined) {
  console.error(`cannot run upstream: ${missing}`)
  process.exit(2)
}
const count = Number(values.count)
const intervalS = Number(values.interval)
const base = Number(values.port)
const up = await startUpstreamKeylime({
  ports: { verifier: base, registrar: base + 1, registrarTls: base + 2, zmq: base + 3 },
  verifier: {
    mode: 'push',
    quote_interval: intervalS,
    session_create_rate_limit_per_ip: 1_000_000,
  },
  tpmCertStore: '/tmp',
})

/** utime + stime (s) of every upstream verifier process in this deployment. */
function verifierCpuS(): number {
  let ticks = 0
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      if (!readFileSync(`/proc/${e}/cmdline`, 'utf8').includes('keylime.cmd.verifier')) continue
      if (readlinkSync(`/proc/${e}/cwd`) !== up.keylimeDir) continue
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(f[11]) + Number(f[12])
    } catch {
      // gone
    }
  }
  return ticks / 100
}

const ca = `${up.keylimeDir}/cv_ca`
const tls = {
  ca: readFileSync(`${ca}/cacert.crt`, 'utf8'),
  cert: readFileSync(`${ca}/client-cert.crt`, 'utf8'),
  key: readFileSync(`${ca}/client-private.pem`, 'utf8'),
  checkServerIdentity: () => undefined,
}
const fleet = startPushFleet({
  count,
  keyType: 'rsa',
  verifierUrl: `https://127.0.0.1:${base}`,
  caCertPem: tls.ca,
  intervalS,
})
const a0 = fleet.agents[0]!
const pcr15 = Buffer.from(a0.tpm.readPcr(a0.hashAlg, FAULT_PCR)).toString('hex')
let enrolFailed = 0
let firstError = ''
const t0 = performance.now()
for (const a of fleet.agents) {
  const body = enrolmentBody(
    {
      ip: '127.0.0.1',
      port: 9002,
      akTpm: Buffer.from(a.akTpm2b).toString('base64'),
      mtlsCert: '',
      acceptHashAlgs: ['sha256'],
      tpmPolicy: JSON.stringify({ [String(FAULT_PCR)]: [pcr15], mask: '0x8000' }),
    },
    { mtls_cert: null },
  )
  const res = await fetch(`https://127.0.0.1:${base}/v2.3/agents/${a.uuid}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    tls,
  } as RequestInit)
  if (res.status !== 200) {
    enrolFailed++
    firstError ||= `${res.status} ${(await res.text()).slice(0, 300)}`
  } else await res.text()
}
console.log(
  `enrolled ${JSON.stringify({ ok: count - enrolFailed, failed: enrolFailed, first_error: firstError, s: +((performance.now() - t0) / 1000).toFixed(1) })}`,
)
fleet.start()
await Bun.sleep(Number(values.warmup) * 1000)
fleet.resetWindow()
const acc0 = fleet.accepted
const cpu0 = verifierCpuS()
const w0 = performance.now()
await Bun.sleep(Number(values.duration) * 1000)
const wall = (performance.now() - w0) / 1000
const cpu = verifierCpuS() - cpu0
const accepted = fleet.accepted - acc0
const status = await up.verifierGet(`/v2.3/agents/${a0.uuid}`)
console.log(
  `result ${JSON.stringify({
    upstream: true,
    count,
    key: 'rsa',
    interval_s: intervalS,
    window_s: +wall.toFixed(1),
    attestations_per_s: +(accepted / wall).toFixed(1),
    expected_per_s: +(count / intervalS).toFixed(1),
    lateness_ms: fleet.lateness.summary(),
    verifier_cpu_s: +cpu.toFixed(2),
    verifier_cpu_us_per_attestation: Math.round((cpu * 1e6) / Math.max(1, accepted)),
    errors: Object.fromEntries(fleet.errors),
    agent0_status: (status.body.results as Record<string, unknown> | undefined)?.attestation_status,
    loadavg: loadavg().map((x) => +x.toFixed(2)),
  })}`,
)
fleet.stop()
await up.stop()
process.exit(0)
