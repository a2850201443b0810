/**
 * Issue 17, findings 3 and 4, end to end: a verifier polling simulated agents over mTLS, two of
 * them hostile.
 *
 * - Finding 3: an agent whose integrity answer is larger than `max_agent_response_size` fails at
 *   once — FAILED with `internal.verifier.response_too_large`, asked once, not again — while
 *   the other agents keep being attested.
 * - Finding 4: an agent that sends its NK wrapped in junk (and binds PCR16 to that text, so a
 *   lenient key check would pass) is refused with `qoute_validation.invalid_data`; the junk is
 *   never stored.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { enrollAgent, simAgentIdentity } from '../support/fleet/enroll-agent.ts'
import { type Fleet, startFleet } from '../support/fleet/fleet.ts'
import { loadCaDir } from '../support/fleet/load-ca-dir.ts'
import type { KeylimeDatabase } from '../../src/db/index.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { AGENT_STATES } from '../../src/protocol/agent-states.ts'
import { createTestCa, startTestVerifier } from '../support/verifier-harness.ts'
import { databaseTargets } from '../support/databases.ts'
import { until } from '../support/until.ts'

const ZERO32 = '00'.repeat(32)
const CAP = 1024 * 1024

describe('hostile agent answers', () => {
  let kdb: KeylimeDatabase
  let fleet: Fleet
  let verifier: VerifierHandle

  beforeAll(async () => {
    const ca = await createTestCa()
    kdb = await (databaseTargets()[0] as ReturnType<typeof databaseTargets>[number]).open()
    const caDir = await loadCaDir(ca.caDir)
    fleet = await startFleet({
      count: 3,
      caCertPem: caDir.caCertPem,
      listen: 'ports',
      sharedKeys: true,
      keyCachePath: join(tmpdir(), 'keylime-verifier-test-keys.json'),
      seed: `hostile-${Math.random()}`,
    })
    const [, big, junky] = fleet.agents
    big!.faults.answerPadding = 2 * CAP
    junky!.faults.nkPem = `${'junk '.repeat(40_000)}\n${junky!.tpm.nkPem}${'more junk\n'.repeat(20_000)}`
    verifier = await startTestVerifier(kdb, ca, { max_agent_response_size: String(CAP) })
    const url = verifier.servers[0]!.url
    for (const a of fleet.agents) {
      await enrollAgent({
        verifierUrl: url,
        tls: caDir.client,
        ...simAgentIdentity(a),
        withKeys: false,
        tpmPolicy: JSON.stringify({ '15': [ZERO32], mask: '0x8000' }),
      })
    }
  }, 60_000)

  afterAll(async () => {
    await verifier?.stop(1000)
    await fleet?.stop()
    await kdb?.close()
  })

  const rec = (i: number) => verifier.loop.records.get(fleet.agents[i]!.uuid)

  test('an answer over max_agent_response_size: FAILED at once, not asked again; others attest', async () => {
    const big = fleet.agents[1]!
    await until(() => rec(1)?.state === AGENT_STATES.FAILED, 20_000, 'oversized agent FAILED')
    expect(rec(1)!.lastEventId).toBe('internal.verifier.response_too_large')
    const asked = big.stats.integrityQuotes
    expect(asked).toBe(1)
    const healthy = rec(0)!.attestationCount
    await until(() => rec(0)!.attestationCount >= healthy + 3, 15_000, 'healthy agent attested')
    expect(big.stats.integrityQuotes).toBe(asked) // three quote intervals later: never re-read
    expect(rec(0)!.state).toBe(AGENT_STATES.GET_QUOTE)
    await verifier.loop.flush()
    const row = await verifier.store.getAgent(big.uuid)
    expect(row!.operational_state).toBe(AGENT_STATES.FAILED)
    expect(row!.last_event_id).toBe('internal.verifier.response_too_large')
  }, 40_000)

  test('an NK wrapped in junk is refused with qoute_validation.invalid_data and not stored', async () => {
    const junky = fleet.agents[2]!
    await until(() => rec(2)?.state === AGENT_STATES.INVALID_QUOTE, 20_000, 'junk NK refused')
    expect(rec(2)!.lastEventId).toBe('qoute_validation.invalid_data')
    expect(rec(2)!.publicKey).toBe('')
    await verifier.loop.flush()
    const row = await verifier.store.getAgent(junky.uuid)
    expect(row!.public_key ?? '').toBe('')
    expect(row!.operational_state).toBe(AGENT_STATES.INVALID_QUOTE)
    // the same agent with its real NK would have passed: only the junk was refused
    expect(rec(0)!.publicKey).toBe(fleet.agents[0]!.tpm.nkPem)
  }, 40_000)
})
