/**
 * Wall time of `keylime_tenant -c reglist` (and, for comparison, `keylime --version` and
 * `keylime_tenant --help`) on the compiled binary against a running control plane started here
 * (own KEYLIME_DIR, PGlite). Prints min / median / p90 over N runs, sequentially.
 *
 * ```
 * bash scripts/build.sh && bun bench/tenant-reglist.ts [--runs 30] [--agents 50]
 * ```
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startFleet } from '../test/support/fleet/fleet.ts'
import { controlPlaneEnv, MAIN_TS, spawnCollect } from '../test/support/control-plane-process.ts'

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '30' }, agents: { type: 'string', default: '50' } },
})
const runs = Number(values.runs)
const agents = Number(values.agents)
const dist = resolve(import.meta.dir, '../dist')
if (!existsSync(join(dist, 'keylime'))) {
  console.error('dist/keylime missing: run bash scripts/build.sh first')
  process.exit(2)
}

const { env, ports, dir } = await controlPlaneEnv()
env.KEYLIME_TENANT_REGISTRAR_PORT = String(ports.registrarTls)
env.KEYLIME_TENANT_VERIFIER_PORT = String(ports.verifier)
const cp = spawnCollect([process.execPath, MAIN_TS], env)
await cp.waitFor(/keylime control plane started/, 60_000)
const fleet = await startFleet({
  count: agents,
  caCertPem: readFileSync(join(dir, 'cv_ca', 'cacert.crt'), 'utf8'),
  listen: 'ports',
  seed: `bench-tenant-${process.pid}`,
})
await fleet.registerAll(`http://127.0.0.1:${ports.registrar}`)

async function time(cmd: string[]): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    const p = Bun.spawn(cmd, { env, stdout: 'ignore', stderr: 'ignore' })
    const code = await p.exited
    out.push(performance.now() - t0)
    if (code !== 0) throw new Error(`${cmd.join(' ')} exited ${code}`)
  }
  return out.sort((a, b) => a - b)
}

function summary(name: string, ms: number[]): string {
  const q = (f: number) => ms[Math.min(ms.length - 1, Math.floor(f * ms.length))]!.toFixed(1)
  return `${name.padEnd(40)} min ${ms[0]!.toFixed(1)} ms  median ${q(0.5)} ms  p90 ${q(0.9)} ms`
}

try {
  console.log(
    `${runs} runs each, ${agents} registered agents, ${navigator.hardwareConcurrency} cores`,
  )
  console.log(summary('keylime --version', await time([join(dist, 'keylime'), '--version'])))
  console.log(
    summary('keylime_tenant --help', await time([join(dist, 'keylime_tenant'), '--help'])),
  )
  console.log(
    summary(
      'keylime_tenant -c reglist',
      await time([join(dist, 'keylime_tenant'), '-c', 'reglist']),
    ),
  )
  console.log(
    summary('keylime_tenant -c cvlist', await time([join(dist, 'keylime_tenant'), '-c', 'cvlist'])),
  )
} finally {
  await fleet.stop()
  await cp.stop()
}
