/**
 * Verifier benchmark: a simulated fleet (bench/fleet) and the verifier in one process on loopback,
 * at a fixed quote interval. Reports attestations/s, schedule lateness (sampled every 100 ms),
 * process CPU per attestation (fleet signing included — see docs/benchmarks.md), and RSS.
 *
 *   bun bench/verifier.ts --count 2000 --interval 2 --duration 30 [--key ecc|rsa] [--db postgresql://…]
 *
 * @module
 */
import { parseArgs } from 'node:util'
import { type Fleet, startFleet } from './fleet/fleet.ts'
import { openDatabase } from '../src/db/index.ts'
import { setLogLevel } from '../src/log/logger.ts'
import { createTestCa, startTestVerifier } from '../src/verifier/test-support.ts'
import { loadCaDir } from './fleet/load-ca-dir.ts'

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '2' },
    duration: { type: 'string', default: '30' },
    key: { type: 'string', default: 'ecc' },
    db: { type: 'string', default: '' },
  },
})
const count = Math.min(20_000, Number(values.count))
const duration = Math.min(600, Number(values.duration))
setLogLevel('WARNING')
const ca = await createTestCa()
const kdb = await openDatabase({ url: values.db ?? '', keylimeDir: ca.keylimeDir, shared: false })
const caDir = await loadCaDir(ca.caDir)
const fleet: Fleet = await startFleet({
  count,
  caCertPem: caDir.caCertPem,
  keyType: values.key === 'rsa' ? 'rsa' : 'ecc',
  sharedKeys: true,
  listen: count > 1000 ? 'addresses' : 'ports',
  port: 19002,
  keyCachePath: '/tmp/keylime-bench-keys.json',
})
const v = await startTestVerifier(kdb, ca, {
  quote_interval: values.interval ?? '2',
  request_timeout: '30',
})
const t0 = performance.now()
for (const a of fleet.agents) {
  await v.service.enrol(a.uuid, {
    v: null,
    cloudagent_ip: a.contactIp,
    cloudagent_port: a.contactPort,
    tpm_policy: '{"mask": "0x0"}',
    runtime_policy: '',
    mb_policy: null,
    mb_policy_name: '',
    ima_sign_verification_keys: '',
    metadata: '{}',
    revocation_key: '',
    accept_tpm_hash_algs: ['sha256'],
    accept_tpm_encryption_algs: ['ecc', 'rsa'],
    accept_tpm_signing_algs: ['ecdsa', 'rsassa'],
    ak_tpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
    mtls_cert: a.mtlsCertPem,
  })
}
const enrolS = (performance.now() - t0) / 1000
// warm-up: one interval
await Bun.sleep(Number(values.interval) * 1500)
const attested0 = [...v.loop.records.values()].reduce((s, r) => s + r.attestationCount, 0)
const cpu0 = process.cpuUsage()
const w0 = performance.now()
const lags: number[] = []
let maxRss = 0
const sampler = setInterval(() => {
  lags.push(v.loop.scheduler.currentLag())
  maxRss = Math.max(maxRss, process.memoryUsage().rss)
}, 100)
await Bun.sleep(duration * 1000)
clearInterval(sampler)
const cpu = process.cpuUsage(cpu0)
const wall = (performance.now() - w0) / 1000
const attested =
  [...v.loop.records.values()].reduce((s, r) => s + r.attestationCount, 0) - attested0
const states = new Map<number, number>()
for (const r of v.loop.records.values()) states.set(r.state, (states.get(r.state) ?? 0) + 1)
lags.sort((a, b) => a - b)
const q = (p: number) => lags[Math.min(lags.length - 1, Math.floor(p * lags.length))] ?? 0
console.log(
  JSON.stringify(
    {
      agents: count,
      key: values.key,
      db: kdb.kind,
      interval_s: Number(values.interval),
      enrol_s: +enrolS.toFixed(1),
      attestations_per_s: +(attested / wall).toFixed(0),
      expected_per_s: +(count / Number(values.interval)).toFixed(0),
      lag_ms: { p50: +q(0.5).toFixed(1), p99: +q(0.99).toFixed(1), max: +q(1).toFixed(1) },
      cpu_us_per_attestation_process: +((cpu.user + cpu.system) / Math.max(1, attested)).toFixed(0),
      check_p50_estimate: 'see keylime_verifier_check_seconds',
      rss_mib: Math.round(maxRss / 2 ** 20),
      states: Object.fromEntries(states),
    },
    null,
    1,
  ),
)
await v.stop(2000)
await fleet.stop()
await kdb.close()
process.exit(0)
