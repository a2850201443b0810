/**
 * The verifier's pull loop against simulated agents (test/support/fleet) over real mTLS on loopback:
 * enrolment, GET_QUOTE steady state with V delivery, and injected faults moving exactly the
 * affected agent (bad signature, wrong nonce, PCR change → INVALID_QUOTE; dead → FAILED after
 * retries), with signed revocation notices to a webhook and to the other agents. Runs on PGlite
 * and, with TEST_DATABASE_URL, PostgreSQL.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { constants, generateKeyPairSync, verify } from 'node:crypto'
import { enrollAgent, simAgentIdentity } from './support/fleet/enroll-agent.ts'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import type { KeylimeDatabase } from '../src/db/index.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import type { VerifierHandle } from '../src/verifier/start-verifier.ts'
import { createTestCa, startTestVerifier, type TestCa } from './support/verifier-harness.ts'
import { databaseTargets } from './support/databases.ts'
import { until } from './support/until.ts'

const ZERO32 = '00'.repeat(32)

for (const target of databaseTargets()) {
  describe(`verifier pipeline (${target.name})`, () => {
    let ca: TestCa
    let kdb: KeylimeDatabase
    let fleet: Fleet
    let verifier: VerifierHandle
    let webhook: ReturnType<typeof Bun.serve>
    const notices: { msg: string; signature: string }[] = []
    const revKeys = generateKeyPairSync('rsa', { modulusLength: 2048 })
    const revPem = revKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()

    beforeAll(async () => {
      ca = await createTestCa()
      kdb = await target.open()
      webhook = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        fetch: async (req) => {
          notices.push((await req.json()) as { msg: string; signature: string })
          return new Response('ok')
        },
      })
      const caDir = await loadCaDir(ca.caDir)
      fleet = await startFleet({
        count: 6,
        caCertPem: caDir.caCertPem,
        listen: 'ports',
        seed: `vp-${target.name}`,
      })
      verifier = await startTestVerifier(kdb, ca, {
        revocations_enabled_revocation_notifications: "['agent','webhook']",
        revocations_webhook_url: `http://127.0.0.1:${webhook.port}/hook`,
      })
      const url = verifier.servers[0]!.url
      for (const [i, a] of fleet.agents.entries()) {
        await enrollAgent({
          verifierUrl: url,
          tls: caDir.client,
          ...simAgentIdentity(a),
          withKeys: i === 0,
          tpmPolicy: JSON.stringify({ '15': [ZERO32], mask: '0x8000' }),
        })
      }
      // agent 1 gets a revocation key: enrolled above without one, so set it in the database
      await verifier.store.updateAgent(fleet.agents[1]!.uuid, { revocation_key: revPem })
      verifier.loop.drop(fleet.agents[1]!.uuid)
      verifier.loop.adopt((await verifier.store.getAgent(fleet.agents[1]!.uuid))!)
    }, 60_000)

    afterAll(async () => {
      await verifier?.stop(1000)
      await fleet?.stop()
      webhook?.stop(true)
      await kdb?.close()
    })

    test('enrolled agents reach GET_QUOTE, attest repeatedly, and V is delivered', async () => {
      await until(
        () =>
          fleet.agents.every(
            (a) => (verifier.loop.records.get(a.uuid)?.attestationCount ?? 0) >= 2,
          ),
        15_000,
        'two attestations per agent',
      )
      for (const a of fleet.agents) {
        const st = await verifier.service.agents.status(a.uuid)
        expect(st.operational_state).toBe(AGENT_STATES.GET_QUOTE)
        expect(st.attestation_status).toBe('PASS')
      }
      expect(fleet.agents[0]!.hasKey).toBe(true)
      const before = verifier.loop.records.get(fleet.agents[5]!.uuid)!.attestationCount
      await until(
        () => verifier.loop.records.get(fleet.agents[5]!.uuid)!.attestationCount > before,
        5_000,
        'count rising',
      )
      await verifier.loop.flush()
      const row = await verifier.store.getAgent(fleet.agents[5]!.uuid)
      expect(row!.attestation_count).toBeGreaterThan(0)
      expect(row!.public_key).toContain('BEGIN PUBLIC KEY')
    }, 30_000)

    test('each fault moves exactly the affected agent', async () => {
      const [, bad, pcr, dead, nonce, healthy] = fleet.agents as [never, ...typeof fleet.agents]
      bad!.faults.badSignature = 1
      pcr!.faults.pcrChange = 1
      dead!.faults.dead = true
      nonce!.faults.wrongNonce = 1
      const state = (a: { uuid: string }) => verifier.loop.records.get(a.uuid)?.state
      await until(
        () =>
          state(bad!) === AGENT_STATES.INVALID_QUOTE &&
          state(pcr!) === AGENT_STATES.INVALID_QUOTE &&
          state(nonce!) === AGENT_STATES.INVALID_QUOTE &&
          state(dead!) === AGENT_STATES.FAILED,
        20_000,
        () => `fault states ${[bad, pcr, dead, nonce].map((a) => state(a!)).join(',')}`,
      )
      expect(verifier.loop.records.get(bad!.uuid)!.lastEventId).toBe(
        'qoute_validation.quote_validation',
      )
      expect(verifier.loop.records.get(nonce!.uuid)!.lastEventId).toBe(
        'qoute_validation.quote_validation',
      )
      expect(verifier.loop.records.get(pcr!.uuid)!.lastEventId).toBe(
        'pcr_validation.invalid_pcr_15',
      )
      expect(verifier.loop.records.get(dead!.uuid)!.lastEventId).toBe(
        'internal.verifier.not_reachable',
      )
      // these agents had steady-state (hot-column) writes before; the failure's event id and
      // severity, which only a whole-snapshot write carries, must reach the database too
      await verifier.loop.flush()
      const pcrRow = await verifier.store.getAgent(pcr!.uuid)
      expect(pcrRow!.operational_state).toBe(AGENT_STATES.INVALID_QUOTE)
      expect(pcrRow!.last_event_id).toBe('pcr_validation.invalid_pcr_15')
      expect(pcrRow!.severity_level).not.toBeNull()
      expect(state(healthy!)).toBe(AGENT_STATES.GET_QUOTE)
      expect(state(fleet.agents[0]!)).toBe(AGENT_STATES.GET_QUOTE)
      const st = await verifier.service.agents.status(bad!.uuid)
      expect(st.attestation_status).toBe('FAIL')
      expect(st.severity_level).toBe(6)

      // the webhook got a signed revocation for agent 1 that verifies with its key
      await until(() => notices.some((n) => n.msg.includes(bad!.uuid)), 10_000, 'webhook notice')
      const n = notices.find((x) => x.msg.includes(bad!.uuid) && x.msg.includes('"revocation"'))!
      const msg = JSON.parse(n.msg)
      expect(msg.type).toBe('revocation')
      expect(msg.event_id).toBe('qoute_validation.quote_validation')
      expect(msg.severity_label).toBe('emergency')
      const ok = verify(
        'sha256',
        Buffer.from(n.msg),
        {
          key: revKeys.publicKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_AUTO,
        },
        Buffer.from(n.signature, 'base64'),
      )
      expect(ok).toBe(true)
      // comm_error for the dead (previously attested) agent
      await until(
        () => notices.some((x) => x.msg.includes(dead!.uuid) && x.msg.includes('comm_error')),
        10_000,
        'comm_error',
      )
      // other agents were notified too
      await until(() => healthy!.revocations.length > 0, 10_000, 'agent notices')
    }, 40_000)

    test('stop, reactivate and delete', async () => {
      const a = fleet.agents[5]!
      await verifier.service.agents.stop(a.uuid)
      expect((await verifier.service.agents.status(a.uuid)).operational_state).toBe(
        AGENT_STATES.TENANT_FAILED,
      )
      await verifier.service.agents.reactivate(a.uuid)
      await until(
        () => (verifier.loop.records.get(a.uuid)?.state ?? 0) === AGENT_STATES.GET_QUOTE,
        10_000,
        'resume',
      )
      const code = await verifier.service.agents.remove(a.uuid)
      expect([200, 202]).toContain(code)
      await until(
        async () => (await verifier.store.getAgent(a.uuid)) === undefined,
        10_000,
        'deletion',
      )
      expect(await verifier.store.getAllowlist(a.uuid)).toBeUndefined()
    }, 30_000)
  })
}
