/**
 * Several verifier instances on one database share the fleet through leases: a second instance
 * takes about half of the agents, and when one instance dies without releasing anything (what a
 * `kill -9` leaves behind) the other claims its agents within one lease period and they keep
 * attesting. A restarted instance with the same instance id resumes its own agents at once.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { enrollAgent, simAgentIdentity } from './support/fleet/enroll-agent.ts'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'
import { until } from './support/until.ts'

const LEASE_MS = 1500

for (const target of databaseTargets()) {
  describe(`verifier leases (${target.name})`, () => {
    let ca: TestCa
    let kdb: KeylimeDatabase
    let fleet: Fleet
    const verifiers: VerifierHandle[] = []

    beforeAll(async () => {
      ca = await createTestCa()
      kdb = await target.open()
      const caDir = await loadCaDir(ca.caDir)
      fleet = await startFleet({
        count: 8,
        caCertPem: caDir.caCertPem,
        listen: 'ports',
        seed: `vl-${target.name}`,
      })
      const a = await startTestVerifier(
        kdb,
        ca,
        { quote_interval: '0.3' },
        { instanceId: 'A', leaseMs: LEASE_MS },
      )
      verifiers.push(a)
      for (const ag of fleet.agents) {
        await enrollAgent({
          verifierUrl: a.servers[0]!.url,
          tls: caDir.client,
          ...simAgentIdentity(ag),
        })
      }
    }, 60_000)

    /** "kill -9" of instance B (after its last write) and a new process with the same id. */
    async function restartB(old: VerifierHandle, leaseMs: number): Promise<VerifierHandle> {
      await old.loop.flush()
      await old.loop.halt()
      const b = await startTestVerifier(
        kdb,
        ca,
        { quote_interval: '0.3' },
        { instanceId: 'B', leaseMs },
      )
      verifiers.push(b)
      return b
    }

    afterAll(async () => {
      for (const v of verifiers) await v.stop(500).catch(() => undefined)
      await fleet?.stop()
      await kdb?.close()
    })

    test('a second instance takes a fair share; a dead one is taken over', async () => {
      const a = verifiers[0]!
      await until(
        () => a.loop.records.size === 8,
        5_000,
        () => `A holds ${a.loop.records.size}`,
      )
      const b = await startTestVerifier(
        kdb,
        ca,
        { quote_interval: '0.3' },
        { instanceId: 'B', leaseMs: LEASE_MS },
      )
      verifiers.push(b)
      await until(
        () => a.loop.records.size === 4 && b.loop.records.size === 4,
        10_000,
        () => `A ${a.loop.records.size} B ${b.loop.records.size}`,
      )
      // "kill -9" A: nothing is released or written
      await a.loop.halt()
      const t0 = Date.now()
      const missing = async () => {
        const rows = await b.store.listAgents()
        return rows
          .filter((r) => !b.loop.records.has(r.agent_id))
          .map(
            (r) => `${r.operational_state}/${r.lease_owner}/${(r.lease_expires ?? 0) - Date.now()}`,
          )
          .join(' ')
      }
      let info = ''
      await until(
        async () => {
          info = await missing()
          return b.loop.records.size === 8
        },
        4 * LEASE_MS + 2000,
        () => `B holds ${b.loop.records.size}: ${info}`,
      )
      expect(Date.now() - t0).toBeLessThan(4 * LEASE_MS + 2000)
      const counts = new Map(
        fleet.agents.map((g) => [g.uuid, b.loop.records.get(g.uuid)?.attestationCount ?? 0]),
      )
      await until(
        () =>
          fleet.agents.every(
            (g) => (b.loop.records.get(g.uuid)?.attestationCount ?? 0) > (counts.get(g.uuid) ?? 0),
          ),
        5_000,
        () => 'every agent attesting under B',
      )
      for (const g of fleet.agents)
        expect(b.loop.records.get(g.uuid)!.state).toBe(AGENT_STATES.GET_QUOTE)
    }, 40_000)

    test('a restarted instance with the same id resumes its agents without waiting for the lease', async () => {
      const b2 = await restartB(verifiers[1]!, 60_000)
      expect(b2.loop.records.size).toBe(8)
      for (const r of b2.loop.records.values()) {
        expect(r.state).toBe(AGENT_STATES.GET_QUOTE) // resumed, not reset to START: V was delivered
        expect(r.attestationCount).toBeGreaterThan(0)
      }
      const before = new Map([...b2.loop.records].map(([id, r]) => [id, r.attestationCount]))
      await until(
        () => [...b2.loop.records].every(([id, r]) => r.attestationCount > (before.get(id) ?? 0)),
        3_000,
        () => 'resume within an interval',
      )
    }, 30_000)

    test('steady-state lease ticks renew only rows no snapshot write extended; a row taken away is dropped', async () => {
      const b = await restartB(verifiers[2]!, LEASE_MS)
      // count the rows each lease tick renews (the loop calls this store object)
      const renewed: number[] = []
      const renew = b.store.renewLeases.bind(b.store)
      b.store.renewLeases = async (...args: Parameters<typeof renew>) => {
        const held = await renew(...args)
        renewed.push(held.size)
        return held
      }
      await until(
        () => renewed.length >= 7,
        10_000,
        () => `${renewed.length} lease ticks`,
      )
      expect(b.loop.records.size).toBe(8)
      // every agent is polled every 0.3 s, so its writes keep its lease fresh: the ticks renew
      // few rows (renewing every held row would be 8 per tick)
      const later = renewed.slice(1)
      expect(later.reduce((a, n) => a + n, 0)).toBeLessThan(later.length * 2)
      for (const r of await b.store.listAgents()) {
        expect(r.lease_owner).toBe('B')
        expect(r.lease_expires ?? 0).toBeGreaterThan(Date.now())
      }
      // an operator hands one agent to another instance: B lets it go
      const moved = fleet.agents[0]!.uuid
      await b.store.updateAgent(moved, { lease_owner: 'Z', lease_expires: Date.now() + 60_000 })
      await until(
        () => !b.loop.records.has(moved),
        3 * LEASE_MS,
        () => 'B still polls the agent handed to Z',
      )
      expect(b.loop.records.size).toBe(7)
    }, 30_000)
  })
}
