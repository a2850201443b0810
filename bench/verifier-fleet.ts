/**
 * The simulated fleet of the verifier benchmark, in its OWN process so that the verifier's CPU and
 * memory can be measured alone. Starts `startFleet` (test/support/fleet), writes what a tenant would
 * enrol for every agent to `--out` (JSON), prints `fleet ready <n>` and serves until SIGTERM,
 * stdin closing, or `--max-s` seconds. Every 5 s it prints one `fleet {json}` status line.
 *
 *   bun bench/verifier-fleet.ts --count 10000 --ca-cert cv_ca/cacert.crt --out /tmp/agents.json
 *
 * @module
 */
import 'reflect-metadata'
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { startFleet } from '../test/support/fleet/fleet.ts'

/** One agent as the verifier benchmark enrols it. */
export interface BenchAgent {
  uuid: string
  ip: string
  port: number
  /** TPM2B_PUBLIC of the AK, base64. */
  akTpm: string
  /** Index into {@link BenchFleetFile.certs}. */
  cert: number
}

/** The `--out` file. */
export interface BenchFleetFile {
  /** Distinct `mtls_cert` PEMs (one in the `addresses` layout). */
  certs: string[]
  agents: BenchAgent[]
  /** `tpm_policy` to enrol with (default: none pinned). */
  tpmPolicy?: string
  /** Runtime policy to enrol with, base64 (default: none). */
  runtimePolicy?: string
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      count: { type: 'string', default: '1000' },
      key: { type: 'string', default: 'ecc' },
      listen: { type: 'string' },
      port: { type: 'string', default: '19002' },
      'ca-cert': { type: 'string' },
      out: { type: 'string' },
      seed: { type: 'string', default: 'kl-bench' },
      'max-s': { type: 'string', default: '1800' },
    },
  })
  if (values['ca-cert'] === undefined || values.out === undefined) {
    console.error('usage: bun bench/verifier-fleet.ts --count N --ca-cert FILE --out FILE')
    process.exit(2)
  }
  const count = Math.min(60_000, Number(values.count))
  const fleet = await startFleet({
    count,
    caCertPem: readFileSync(values['ca-cert'], 'utf8'),
    keyType: values.key === 'rsa' ? 'rsa' : 'ecc',
    sharedKeys: true,
    listen: values.listen === 'ports' || values.listen === 'addresses' ? values.listen : undefined,
    port: Number(values.port),
    seed: values.seed,
    keyCachePath: `/tmp/keylime-bench-keys-${values.key}.json`,
  })
  const certs: string[] = []
  const certIndex = new Map<string, number>()
  const agents: BenchAgent[] = fleet.agents.map((a) => {
    let i = certIndex.get(a.mtlsCertPem)
    if (i === undefined) {
      i = certs.push(a.mtlsCertPem) - 1
      certIndex.set(a.mtlsCertPem, i)
    }
    return {
      uuid: a.uuid,
      ip: a.contactIp,
      port: a.contactPort,
      akTpm: Buffer.from(a.tpm.akTpm2b).toString('base64'),
      cert: i,
    }
  })
  writeFileSync(values.out, JSON.stringify({ certs, agents } satisfies BenchFleetFile))
  console.log(`fleet ready ${count}`)
  const t0 = process.cpuUsage()
  const status = setInterval(() => {
    const s = fleet.summary()
    const cpu = process.cpuUsage(t0)
    console.log(
      `fleet ${JSON.stringify({
        quotes: s.integrityQuotes,
        errors: s.errors,
        zero: s.perAgent.zero,
        cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(1),
        rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20),
      })}`,
    )
  }, 5000)
  let done = false
  const stop = async () => {
    if (done) return
    done = true
    clearInterval(status)
    await fleet.stop()
    process.exit(0)
  }
  process.on('SIGTERM', () => void stop())
  process.on('SIGINT', () => void stop())
  process.stdin.on('end', () => void stop())
  process.stdin.resume()
  setTimeout(() => void stop(), Number(values['max-s']) * 1000)
}
