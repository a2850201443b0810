/**
 * A verifier on a fresh PGlite database with simulated agents (test/support/fleet) over real mTLS, for
 * the security suites: start it, install any per-agent hooks on `fleet.agents`, then `enrol`
 * each agent as the tenant would.
 *
 * @module
 */
import { type EnrollAgentOptions, enrollAgent, simAgentIdentity } from './fleet/enroll-agent.ts'
import { type Fleet, startFleet } from './fleet/fleet.ts'
import { type CaDirMaterial, loadCaDir } from './fleet/load-ca-dir.ts'
import type { SimAgent } from './fleet/sim-agent.ts'
import { type KeylimeDatabase, openDatabase } from '../../src/db/index.ts'
import { MtlsClient } from '../../src/http/mtls-client.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { createTestCa, startTestVerifier } from './verifier-harness.ts'

/** The running set-up. */
export interface AttestedFleet {
  caDir: CaDirMaterial
  kdb: KeylimeDatabase
  fleet: Fleet
  verifier: VerifierHandle
  /** Enrols `agent` with the verifier (`extra` overrides the enrolment options). */
  enrol(agent: SimAgent, extra?: Partial<EnrollAgentOptions>): Promise<void>
  /** `GET /v2.5/agents/:id` through the verifier's mTLS API: the `results` object. */
  status(uuid: string): Promise<Record<string, unknown>>
  stop(): Promise<void>
}

/** Starts a verifier (with `KEYLIME_VERIFIER_*` overrides) and `count` simulated agents. */
export async function startAttestedFleet(o: {
  count: number
  seed: string
  verifier?: Record<string, string>
}): Promise<AttestedFleet> {
  const ca = await createTestCa()
  const caDir = await loadCaDir(ca.caDir)
  const kdb = await openDatabase({ url: 'memory://', keylimeDir: ca.keylimeDir })
  const fleet = await startFleet({
    count: o.count,
    caCertPem: caDir.caCertPem,
    listen: 'ports',
    seed: o.seed,
  })
  const verifier = await startTestVerifier(kdb, ca, o.verifier)
  const url = verifier.servers[0]!.url
  const client = new MtlsClient({ ...caDir.client, ca: [caDir.caCertPem], timeoutMs: 5000 })
  return {
    caDir,
    kdb,
    fleet,
    verifier,
    async enrol(agent, extra = {}) {
      await enrollAgent({
        verifierUrl: url,
        tls: caDir.client,
        ...simAgentIdentity(agent),
        ...extra,
      })
    },
    async status(uuid) {
      const res = await client.request(`${url}/v2.5/agents/${uuid}`)
      if (res.status !== 200) throw new Error(`GET /v2.5/agents/${uuid}: ${res.status}`)
      return res.results as Record<string, unknown>
    },
    async stop() {
      await verifier.stop(1000)
      await fleet.stop()
      await kdb.close()
    },
  }
}
