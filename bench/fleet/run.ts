/**
 * The fleet simulator CLI: registers N software agents with a Keylime registrar, optionally enrols
 * them with a verifier as the upstream tenant would, serves the agent API until `--duration`, and
 * prints a periodic summary. Works against any Keylime-compatible registrar/verifier.
 *
 * ```
 * bun bench/fleet/run.ts --count 1000 --registrar 127.0.0.1:8890 --verifier 127.0.0.1:8881 \
 *   --ca-dir $KEYLIME_DIR/cv_ca --shared-keys --enroll --ima-entries 50 \
 *   --fault bad-signature:0.01,slow:0.02:3000 --duration 120
 * ```
 *
 * Faults: `bad-signature:F`, `pcr-change:F`, `wrong-nonce:F`, `slow:F:MS`, `dead:F` — F is the
 * fraction of agents that get the fault (every quote they answer is affected).
 *
 * @module
 */
import 'reflect-metadata'
import { parseArgs } from 'node:util'
import { isHashAlg } from '../../src/tpm/constants.ts'
import {
  enrollAgent,
  simAgentIdentity,
  negotiateVerifierVersion,
} from '../../test/support/fleet/enroll-agent.ts'
import { FleetError } from '../../test/support/fleet/errors.ts'
import { type FleetFaultSpec, type ListenMode, startFleet } from '../../test/support/fleet/fleet.ts'
import { loadCaDir } from '../../test/support/fleet/load-ca-dir.ts'
import type { AgentFaults } from '../../test/support/fleet/sim-agent.ts'

const USAGE = `usage: bun bench/fleet/run.ts --count N --registrar HOST:PORT --ca-dir DIR
  [--registrar-tls HOST:PORT] [--verifier HOST:PORT] [--enroll] [--with-keys]
  [--key-type ecc|rsa] [--hash-alg sha256|sha1|sha384] [--shared-keys] [--key-cache FILE]
  [--listen ports|addresses] [--bind ADDR] [--port P] [--base-port P]
  [--ima-entries K] [--fault name:fraction[:ms],...] [--duration S] [--interval S]
  [--concurrency C] [--seed S] [--client-key-password PW]`

/** Parses `--fault` into fleet fault specs. */
export function parseFaults(text: string | undefined): FleetFaultSpec[] {
  if (text === undefined || text.trim() === '') return []
  return text.split(',').map((item) => {
    const [name, fractionText, extra] = item.trim().split(':')
    const fraction = Number(fractionText)
    if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
      throw new FleetError('ERR_FLEET_CONFIG', `--fault ${item}: fraction must be 0..1`)
    }
    let faults: AgentFaults
    switch (name) {
      case 'bad-signature':
        faults = { badSignature: 1 }
        break
      case 'pcr-change':
        faults = { pcrChange: 1 }
        break
      case 'wrong-nonce':
        faults = { wrongNonce: 1 }
        break
      case 'dead':
        faults = { dead: true }
        break
      case 'slow': {
        const ms = Number(extra ?? 2000)
        if (!Number.isFinite(ms) || ms < 0)
          throw new FleetError('ERR_FLEET_CONFIG', `--fault ${item}: bad delay`)
        faults = { slowMs: ms }
        break
      }
      default:
        throw new FleetError('ERR_FLEET_CONFIG', `--fault: unknown fault ${String(name)}`)
    }
    return { fraction, faults }
  })
}

function hostPort(v: string, what: string): string {
  if (!/^[\w.-]+:\d+$|^\[[0-9a-fA-F:]+\]:\d+$/.test(v)) {
    throw new FleetError('ERR_FLEET_CONFIG', `${what} must be HOST:PORT`)
  }
  return v
}

function int(v: string | undefined, def: number, what: string): number {
  if (v === undefined) return def
  const n = Number(v)
  if (!Number.isSafeInteger(n) || n < 0)
    throw new FleetError('ERR_FLEET_CONFIG', `${what} must be a non-negative integer`)
  return n
}

async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
}

const mib = (n: number) => (n / 1048576).toFixed(0)

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      count: { type: 'string' },
      registrar: { type: 'string' },
      'registrar-tls': { type: 'string' },
      verifier: { type: 'string' },
      'ca-dir': { type: 'string' },
      'client-key-password': { type: 'string' },
      'key-type': { type: 'string', default: 'ecc' },
      'hash-alg': { type: 'string', default: 'sha256' },
      'shared-keys': { type: 'boolean', default: false },
      'key-cache': { type: 'string' },
      enroll: { type: 'boolean', default: false },
      'with-keys': { type: 'boolean', default: false },
      listen: { type: 'string' },
      bind: { type: 'string' },
      port: { type: 'string' },
      'base-port': { type: 'string' },
      'ima-entries': { type: 'string' },
      fault: { type: 'string' },
      duration: { type: 'string', default: '60' },
      interval: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '16' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  if (
    values.count === undefined ||
    values.registrar === undefined ||
    values['ca-dir'] === undefined
  ) {
    console.error(USAGE)
    return 2
  }
  const keyType = values['key-type']
  if (keyType !== 'ecc' && keyType !== 'rsa')
    throw new FleetError('ERR_FLEET_CONFIG', '--key-type is ecc or rsa')
  const hashAlg = values['hash-alg']
  if (!isHashAlg(hashAlg))
    throw new FleetError('ERR_FLEET_CONFIG', '--hash-alg is sha1, sha256, sha384 or sha512')
  const listen = values.listen as ListenMode | undefined
  if (listen !== undefined && listen !== 'ports' && listen !== 'addresses') {
    throw new FleetError('ERR_FLEET_CONFIG', '--listen is ports or addresses')
  }
  if (values.enroll && values.verifier === undefined) {
    throw new FleetError('ERR_FLEET_CONFIG', '--enroll needs --verifier')
  }
  const registrarUrl = `http://${hostPort(values.registrar, '--registrar')}`
  const count = int(values.count, 0, '--count')
  const durationS = int(values.duration, 60, '--duration')
  const intervalS = Math.max(1, int(values.interval, 5, '--interval'))
  const concurrency = Math.max(1, int(values.concurrency, 16, '--concurrency'))
  const ca = await loadCaDir(values['ca-dir'], values['client-key-password'])

  const rss0 = process.memoryUsage().rss
  const t0 = performance.now()
  const fleet = await startFleet({
    count,
    caCertPem: ca.caCertPem,
    keyType,
    hashAlg,
    sharedKeys: values['shared-keys'],
    keyCachePath: values['key-cache'],
    listen,
    bindAddress: values.bind,
    port: values.port === undefined ? undefined : int(values.port, 9002, '--port'),
    basePort:
      values['base-port'] === undefined ? undefined : int(values['base-port'], 0, '--base-port'),
    imaEntries: int(values['ima-entries'], 0, '--ima-entries'),
    faults: parseFaults(values.fault),
    seed: values.seed,
  })
  Bun.gc(true)
  const rss1 = process.memoryUsage().rss
  console.log(
    `fleet: ${count} agents up in ${(performance.now() - t0).toFixed(0)} ms, RSS ${mib(rss1)} MiB ` +
      `(${((rss1 - rss0) / count / 1024).toFixed(1)} KiB/agent)`,
  )

  let stopping = false
  const stop = () => {
    stopping = true
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  try {
    const reg = await fleet.registerAll(registrarUrl, concurrency)
    console.log(
      `registered ${reg.ok}/${count} in ${reg.ms.toFixed(0)} ms (${((reg.ok * 1000) / Math.max(1, reg.ms)).toFixed(0)}/s)` +
        (reg.failed > 0 ? `; ${reg.failed} failed, first: ${reg.firstError}` : ''),
    )
    if (values['registrar-tls'] !== undefined) {
      const url = `https://${hostPort(values['registrar-tls'], '--registrar-tls')}`
      const v = fleet.agents[0]?.registrarApiVersion ?? '2.6'
      const res = await fetch(`${url}/v${v}/agents/`, {
        tls: {
          ca: ca.client.ca,
          cert: ca.client.cert,
          key: ca.client.key,
          checkServerIdentity: () => undefined,
        },
      } as RequestInit)
      const body = (await res.json()) as { results?: { uuids?: unknown[] } }
      console.log(
        `registrar lists ${body.results?.uuids?.length ?? '?'} agents (HTTP ${res.status})`,
      )
    }
    if (values.enroll && values.verifier !== undefined) {
      const verifierUrl = `https://${hostPort(values.verifier, '--verifier')}`
      const verifierApiVersion = await negotiateVerifierVersion(verifierUrl, ca.client)
      const runtimePolicy = fleet.imaLog
        ? Buffer.from(fleet.imaLog.runtimePolicy()).toString('base64')
        : ''
      const te = performance.now()
      let ok = 0
      let failed = 0
      let firstError: string | undefined
      await pool(fleet.agents, concurrency, async (agent) => {
        if (stopping) return
        const pcr15 = Buffer.from(agent.tpm.readPcr(hashAlg, 15)).toString('hex')
        const tpmPolicy = JSON.stringify({
          '15': [pcr15],
          mask: fleet.imaLog ? '0x8400' : '0x8000',
        })
        try {
          await enrollAgent({
            verifierUrl,
            verifierApiVersion,
            tls: ca.client,
            ...simAgentIdentity(agent),
            tpmPolicy,
            runtimePolicy,
            withKeys: values['with-keys'],
          })
          ok++
        } catch (err) {
          failed++
          firstError ??= err instanceof Error ? err.message : String(err)
        }
      })
      console.log(
        `enrolled ${ok}/${count} with v${verifierApiVersion} in ${(performance.now() - te).toFixed(0)} ms` +
          (failed > 0 ? `; ${failed} failed, first: ${firstError}` : ''),
      )
    }

    const end = performance.now() + durationS * 1000
    let lastQuotes = fleet.summary().integrityQuotes
    let lastT = performance.now()
    while (!stopping && performance.now() < end) {
      await Bun.sleep(Math.min(intervalS * 1000, Math.max(0, end - performance.now())))
      const s = fleet.summary()
      const now = performance.now()
      const rate = ((s.integrityQuotes - lastQuotes) * 1000) / Math.max(1, now - lastT)
      lastQuotes = s.integrityQuotes
      lastT = now
      console.log(
        `[${((now - t0) / 1000).toFixed(0)}s] quotes ${s.integrityQuotes} (${rate.toFixed(1)}/s) ` +
          `identity ${s.identityQuotes} errors ${s.errors} | per agent min/med/max ` +
          `${s.perAgent.min}/${s.perAgent.median}/${s.perAgent.max}, never ${s.perAgent.zero} | ` +
          `latency p50 ${s.latencyMs.p50.toFixed(1)} p99 ${s.latencyMs.p99.toFixed(1)} ms | ` +
          `K ${s.withKey} revocations ${s.revocations} | RSS ${mib(process.memoryUsage().rss)} MiB`,
      )
    }
  } finally {
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    await fleet.stop()
  }
  console.log('fleet stopped')
  return 0
}

if (import.meta.main) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(
        err instanceof Error
          ? `${(err as { code?: string }).code ?? 'error'}: ${err.message}`
          : err,
      )
      process.exit(1)
    },
  )
}
