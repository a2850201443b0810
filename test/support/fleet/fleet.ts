/**
 * Many simulated agents in one process, each reachable at its own contact `ip:port` over mTLS.
 *
 * Two listener layouts (measured on Bun 1.4.5, 2 cores, `ulimit -n` 20000):
 *
 * - `ports`: one `Bun.serve` TLS listener per agent on `127.0.0.1` (port picked by the kernel or
 *   `basePort + i`). ~23 KiB RSS and one file descriptor per listener, ~0.1 ms to open. Allows a
 *   per-agent server certificate and a truly refused connection. Good up to a few thousand agents;
 *   at 10,000 the listeners plus the verifier's kept-alive connections approach the fd limit.
 * - `addresses` (default above 1,000 agents): ONE `Bun.serve` listener on `bindAddress:port`
 *   (default `0.0.0.0:9002`); agent `i` gets its own loopback address `127.1.x.y` (Linux routes the
 *   whole 127.0.0.0/8 to `lo`) and requests are routed by the `Host` header the client sends
 *   (`ip:port` for an IP URL — Python tornado and Bun fetch both do). One fd plus one per
 *   connection, no per-agent listener cost. The one shared server certificate is registered as
 *   every agent's `mtls_cert`; clients pin it and skip host-name checks (keylime-api.md §1.6),
 *   so that is accepted by upstream and by us. A `0.0.0.0` bind is reachable from the network,
 *   but only by clients holding a certificate from the trusted CA.
 *
 * In both layouts clients must present a certificate issued by the configured CA (cv_ca
 * `cacert.crt`), as rust-keylime requires (`VERIFY_PEER | FAIL_IF_NO_PEER_CERT`), TLS ≥ 1.2.
 *
 * @module
 */

import { constants, createHash } from 'node:crypto'
import type { HashAlg } from '../../../src/tpm/constants.ts'
import { type AgentCert, createAgentCert } from './agent-cert.ts'
import { FleetError } from './errors.ts'
import { ImaLog } from './ima-log.ts'
import { KeyCache } from './key-cache.ts'
import { type AgentFaults, SimAgent } from './sim-agent.ts'
import { type SoftKeyType, SoftTpm } from './soft-tpm.ts'

export { enrollAgent, type EnrollAgentOptions } from './enroll-agent.ts'

/** Listener layout (see the module header). */
export type ListenMode = 'ports' | 'addresses'

/** Faults for a fraction of the fleet: `fraction` of agents get `faults`. */
export interface FleetFaultSpec {
  /** Fraction of agents, 0…1. */
  fraction: number
  /** What those agents do. */
  faults: AgentFaults
}

/** Options of {@link startFleet}. */
export interface FleetOptions {
  /** Number of agents. */
  count: number
  /** Trusted CA certificate(s) for client certificates (cv_ca `cacert.crt`), PEM. */
  caCertPem: string | string[]
  /** EK and AK algorithm (default `ecc`: fast keygen and signatures). */
  keyType?: SoftKeyType
  /** One EK and one NK for all agents; AKs stay per agent (default false). */
  sharedKeys?: boolean
  /** Key cache file (keeps RSA keys across runs); none = generate every run. */
  keyCachePath?: string
  /** `tpm_hash_alg` (default sha256). */
  hashAlg?: HashAlg
  /** Extra PCR banks each soft TPM keeps besides `hashAlg` (e.g. `['sha1']` for real UEFI logs). */
  banks?: readonly HashAlg[]
  /** Listener layout (default `ports` up to 1,000 agents, `addresses` above). */
  listen?: ListenMode
  /** `ports`: bind host (default 127.0.0.1). */
  host?: string
  /** `ports`: first port (agent i gets basePort + i); 0 = kernel-chosen (default). */
  basePort?: number
  /** `addresses`: bind address (default 0.0.0.0). */
  bindAddress?: string
  /** `addresses`: the shared port (default 9002). */
  port?: number
  /** `ports` only: a certificate per agent (CN = uuid) instead of one shared (default false). */
  perAgentCerts?: boolean
  /** Synthetic IMA entries per agent (0 = none). */
  imaEntries?: number
  /** Fault assignment. */
  faults?: readonly FleetFaultSpec[]
  /** Seed of the deterministic agent UUIDs (default `keylime-fleet`). */
  seed?: string
  /** Agent `i`'s enabled API versions (default all of `AGENT_API_VERSIONS`). */
  apiVersions?: (i: number) => readonly string[] | undefined
}

/** Server-side latency reservoir and counters. */
export interface FleetSummary {
  /** Agents. */
  agents: number
  /** Integrity quotes answered since start. */
  integrityQuotes: number
  /** Identity quotes answered since start. */
  identityQuotes: number
  /** 4xx answers. */
  errors: number
  /** Per-agent integrity quotes: min / median / max, and agents with none. */
  perAgent: { min: number; median: number; max: number; zero: number }
  /** Handling latency of quote requests in ms (recent window). */
  latencyMs: { p50: number; p99: number; max: number }
  /** Agents holding a derived K (U/V exchange done). */
  withKey: number
  /** Revocation notices received in total. */
  revocations: number
}

/** A running fleet. */
export interface Fleet {
  /** The agents, index order. */
  readonly agents: SimAgent[]
  /** The shared server certificate (or the first agent's when per-agent). */
  readonly serverCert: AgentCert
  /** The shared IMA list, if any. */
  readonly imaLog: ImaLog | undefined
  /** Base URL of an agent, `https://ip:port`. */
  urlOf(agent: SimAgent): string
  /** Registers (and activates) every agent with the registrar, `concurrency` at a time. */
  registerAll(
    registrarUrl: string,
    concurrency?: number,
  ): Promise<{ ok: number; failed: number; ms: number; firstError?: string }>
  /** Counters and latencies. */
  summary(): FleetSummary
  /** Closes every listener. */
  stop(): Promise<void>
}

/** Disables SSLv3, TLS 1.0 and 1.1. */
const TLS_MIN_1_2 =
  constants.SSL_OP_NO_SSLv3 | constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1
const LATENCY_WINDOW = 4096

/** A stable UUID (v4 layout) for agent `i` of `seed`. */
export function agentUuid(seed: string, i: number): string {
  const h = createHash('sha256').update(`${seed}/${i}`).digest('hex')
  const v = ((Number.parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16)
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${v}${h.slice(17, 20)}-${h.slice(20, 32)}`
}

/** The loopback address of agent `i` in `addresses` mode: 127.1.0.1, …, skipping .0 and .255. */
export function agentAddress(i: number): string {
  const last = 1 + (i % 254)
  const mid = Math.floor(i / 254) % 256
  const second = 1 + Math.floor(i / (254 * 256))
  if (second > 254) throw new FleetError('ERR_FLEET_CONFIG', 'too many agents for 127.0.0.0/8')
  return `127.${second}.${mid}.${last}`
}

/** True if `fraction` of a population selects member `i` for `name` (stable per seed). */
function selected(seed: string, name: string, i: number, fraction: number): boolean {
  if (fraction <= 0) return false
  if (fraction >= 1) return true
  const h = createHash('sha256').update(`${seed}/${name}/${i}`).digest()
  return h.readUInt32BE(0) / 0x1_0000_0000 < fraction
}

/** Median of a sorted array. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!
}

/**
 * Creates the agents and their listeners. Nothing is registered yet: call
 * {@link Fleet.registerAll} (or {@link SimAgent.register} per agent).
 *
 * @throws {FleetError} `ERR_FLEET_CONFIG` for bad options, `ERR_FLEET_LISTEN` if a port is taken.
 */
export async function startFleet(opts: FleetOptions): Promise<Fleet> {
  const count = opts.count
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new FleetError('ERR_FLEET_CONFIG', '--count must be a positive integer')
  }
  const mode: ListenMode = opts.listen ?? (count > 1000 ? 'addresses' : 'ports')
  if (opts.perAgentCerts && mode !== 'ports') {
    throw new FleetError('ERR_FLEET_CONFIG', 'per-agent certificates need the ports layout')
  }
  const keyType = opts.keyType ?? 'ecc'
  const hashAlg = opts.hashAlg ?? 'sha256'
  const seed = opts.seed ?? 'keylime-fleet'
  const ca = Array.isArray(opts.caCertPem) ? opts.caCertPem : [opts.caCertPem]
  const cache = await KeyCache.open(opts.keyCachePath)
  const imaLog =
    opts.imaEntries !== undefined && opts.imaEntries > 0
      ? new ImaLog(opts.imaEntries, [hashAlg])
      : undefined
  const shared = await createAgentCert('keylime-fleet')
  const bootTime = Math.floor(Date.now() / 1000)
  const host = opts.host ?? '127.0.0.1'

  const agents: SimAgent[] = []
  const certs: AgentCert[] = []
  for (let i = 0; i < count; i++) {
    const uuid = agentUuid(seed, i)
    const ek = opts.sharedKeys
      ? cache.get(`ek-${keyType}-shared`, keyType)
      : cache.get(`ek-${keyType}-${seed}-${i}`, keyType)
    const nk = opts.sharedKeys ? cache.get('nk-shared', 'rsa') : cache.get(`nk-${seed}-${i}`, 'rsa')
    const ak = cache.get(`ak-${keyType}-${seed}-${i}`, keyType)
    const tpm = new SoftTpm({ keys: { ek, ak, nk }, hashAlg, banks: opts.banks })
    const contactIp = mode === 'ports' ? host : agentAddress(i)
    const cert = opts.perAgentCerts ? await createAgentCert(uuid, [contactIp]) : shared
    certs.push(cert)
    const faults: AgentFaults = {}
    for (const [k, spec] of (opts.faults ?? []).entries()) {
      if (selected(seed, `fault${k}`, i, spec.fraction)) Object.assign(faults, spec.faults)
    }
    agents.push(
      new SimAgent({
        uuid,
        tpm,
        contactIp,
        mtlsCertPem: cert.certPem,
        imaLog,
        faults,
        bootTime,
        apiVersions: opts.apiVersions?.(i),
      }),
    )
  }
  await cache.save()

  const latencies = new Float64Array(LATENCY_WINDOW)
  let latencyCount = 0
  const timed = async (agent: SimAgent, req: Request): Promise<Response> => {
    const t0 = performance.now()
    const res = await agent.handle(req)
    latencies[latencyCount++ % LATENCY_WINDOW] = performance.now() - t0
    return res
  }
  const tlsFor = (cert: AgentCert) => ({
    key: cert.keyPem,
    cert: cert.certPem,
    ca,
    requestCert: true,
    rejectUnauthorized: true,
    secureOptions: TLS_MIN_1_2,
  })

  const servers: ReturnType<typeof Bun.serve>[] = []
  try {
    if (mode === 'ports') {
      for (const [i, agent] of agents.entries()) {
        const port = opts.basePort ? opts.basePort + i : 0
        const server = Bun.serve({
          hostname: host,
          port,
          tls: tlsFor(certs[i]!),
          fetch: (req) => timed(agent, req),
        })
        servers.push(server)
        agent.contactPort = server.port ?? port
      }
    } else {
      const byAddress = new Map(agents.map((a) => [a.contactIp, a]))
      const port = opts.port ?? 9002
      const server = Bun.serve({
        hostname: opts.bindAddress ?? '0.0.0.0',
        port,
        tls: tlsFor(shared),
        fetch: (req) => {
          const hostHeader = req.headers.get('host') ?? ''
          const agent = byAddress.get(hostHeader.replace(/:\d+$/, ''))
          if (agent === undefined) {
            return Response.json(
              { code: 400, status: `no simulated agent at ${hostHeader}`, results: {} },
              { status: 400 },
            )
          }
          return timed(agent, req)
        },
      })
      servers.push(server)
      for (const a of agents) a.contactPort = server.port ?? port
    }
  } catch (cause) {
    for (const s of servers) s.stop(true)
    throw new FleetError('ERR_FLEET_LISTEN', `cannot start the fleet listeners: ${String(cause)}`, {
      cause,
    })
  }

  return {
    agents,
    serverCert: certs[0] ?? shared,
    imaLog,
    urlOf: (agent) => `https://${agent.contactIp}:${agent.contactPort}`,
    async registerAll(registrarUrl, concurrency = 16) {
      const t0 = performance.now()
      let next = 0
      let ok = 0
      let failed = 0
      let firstError: string | undefined
      const worker = async () => {
        while (next < agents.length) {
          const agent = agents[next++]!
          try {
            await agent.register(registrarUrl)
            ok++
          } catch (err) {
            failed++
            firstError ??= err instanceof Error ? err.message : String(err)
          }
        }
      }
      await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker))
      return { ok, failed, ms: performance.now() - t0, firstError }
    },
    summary() {
      const counts = agents.map((a) => a.stats.integrityQuotes).sort((a, b) => a - b)
      const n = Math.min(latencyCount, LATENCY_WINDOW)
      const lat = Array.from(latencies.subarray(0, n)).sort((a, b) => a - b)
      return {
        agents: agents.length,
        integrityQuotes: counts.reduce((s, c) => s + c, 0),
        identityQuotes: agents.reduce((s, a) => s + a.stats.identityQuotes, 0),
        errors: agents.reduce((s, a) => s + a.stats.errors, 0),
        perAgent: {
          min: counts[0] ?? 0,
          median: quantile(counts, 0.5),
          max: counts[counts.length - 1] ?? 0,
          zero: counts.filter((c) => c === 0).length,
        },
        latencyMs: {
          p50: quantile(lat, 0.5),
          p99: quantile(lat, 0.99),
          max: lat[lat.length - 1] ?? 0,
        },
        withKey: agents.filter((a) => a.hasKey).length,
        revocations: agents.reduce((s, a) => s + a.revocations.length, 0),
      }
    },
    async stop() {
      await Promise.all(servers.map((s) => s.stop(true)))
    },
  }
}
