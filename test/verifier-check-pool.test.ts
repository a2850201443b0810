/**
 * The check worker pool: rounds with an IMA list run `checkQuoteAnswer` in a Bun Worker and come
 * back with the same verdicts as inline checks (pass with incremental IMA state; a changed digest
 * fails with the upstream event id); plain rounds stay inline; an unloadable worker entry leaves
 * the pool empty and every check inline; a check that throws (a worker answering `error`) fails
 * only its agent, FAILED with `internal.verifier.exception`, counted and logged once, while the
 * other agents keep attesting (issue 17, finding 1).
 *
 * @module
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { enrollAgent, simAgentIdentity } from './support/fleet/enroll-agent.ts'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import { openDatabase } from '../src/db/index.ts'
import { getLogger, setLogSink } from '../src/log/logger.ts'
import { CheckPool } from '../src/verifier/checks/check-pool.ts'
import { SeverityRules } from '../src/verifier/checks/failure.ts'
import type { StartVerifierOptions, VerifierHandle } from '../src/verifier/start-verifier.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { createTestCa, startTestVerifier } from './support/verifier-harness.ts'
import { until } from './support/until.ts'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const cleanups: (() => Promise<unknown>)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined)
})

/**
 * A verifier (quote interval 0.2 s) and `count` simulated IMA agents; `enrol(i, policies)` enrols
 * agent `i` with a `tpm_policy` (and runtime policy) of its own.
 */
async function startSetup(count: number, seed: string, options: StartVerifierOptions) {
  const ca = await createTestCa()
  const kdb = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  const caDir = await loadCaDir(ca.caDir)
  const fleet = await startFleet({
    count,
    caCertPem: caDir.caCertPem,
    listen: 'ports',
    sharedKeys: true,
    keyCachePath: join(tmpdir(), 'keylime-verifier-test-keys.json'),
    imaEntries: 40,
    seed,
  })
  const v = await startTestVerifier(kdb, ca, { quote_interval: '0.2' }, options)
  cleanups.push(async () => {
    await v.stop(200)
    await fleet.stop()
    await kdb.close()
  })
  const enrol = (i: number, p: { tpmPolicy: string; runtimePolicy?: string }) => {
    const a = fleet.agents[i] as Fleet['agents'][number]
    return enrollAgent({
      verifierUrl: v.servers[0]?.url as string,
      tls: caDir.client,
      ...simAgentIdentity(a),
      ...p,
    })
  }
  return { v, fleet, enrol }
}

/** Runs 3 IMA agents (the last with one changed digest) through a verifier; returns it. */
async function runFleet(checkWorkers: number): Promise<{ v: VerifierHandle; fleet: Fleet }> {
  const { v, fleet, enrol } = await startSetup(3, `pool-${checkWorkers}`, { checkWorkers })
  const policy = JSON.parse(fleet.imaLog?.runtimePolicy() ?? '{}') as {
    meta: { generator: number }
    digests: Record<string, string[]>
  }
  policy.meta.generator = 3 // an enforced runtime policy
  const changed = structuredClone(policy)
  const first = Object.keys(changed.digests)[0] as string
  changed.digests[first] = ['00'.repeat(32)]
  for (let i = 0; i < 3; i++) {
    await enrol(i, {
      tpmPolicy: JSON.stringify({ mask: '0x400' }),
      runtimePolicy: Buffer.from(JSON.stringify(i === 2 ? changed : policy)).toString('base64'),
    })
  }
  const rec = (i: number) => v.loop.records.get(fleet.agents[i]?.uuid as string)
  await until(
    () => {
      const ok = [0, 1].every((i) => (rec(i)?.attestationCount ?? 0) >= 3)
      return ok && rec(2)?.state === AGENT_STATES.INVALID_QUOTE
    },
    20_000,
    'two good agents attested 3 times and the changed one failed',
  )
  return { v, fleet }
}

describe('check worker pool', () => {
  for (const workers of [1, 0]) {
    test(`IMA rounds: same verdicts with ${workers} worker(s)`, async () => {
      const { v, fleet } = await runFleet(workers)
      const rec = (i: number) => v.loop.records.get(fleet.agents[i]?.uuid as string)
      for (const i of [0, 1]) {
        expect(rec(i)?.state).toBe(AGENT_STATES.GET_QUOTE)
        expect(rec(i)?.ima.nextEntry).toBe(40) // incremental state came back from the worker
      }
      expect(rec(2)?.lastEventId).toBe('ima.validation.ima-ng.runtime_policy_hash')
      expect(v.checks.size).toBe(workers)
      // the first round of each agent carries the list (heavy); later ones ask from entry 40 and
      // get no new lines, so they stay on the main thread
      if (workers > 0) {
        expect(v.checks.offloaded).toBeGreaterThanOrEqual(3)
        expect(v.checks.inline).toBe(0)
      } else {
        expect(v.checks.offloaded).toBe(0)
        expect(v.checks.inline).toBeGreaterThanOrEqual(3)
      }
    }, 30_000)
  }

  test('an unloadable worker entry leaves the pool empty (checks run inline)', async () => {
    const pool = await CheckPool.start({
      size: 1,
      entry: new URL('./no-such-check-worker.ts', import.meta.url).href,
      check: {
        rules: new SeverityRules(),
        mbPolicyName: 'example',
        mbEvaluate: 'once',
        ignoreTomtouErrors: false,
      },
      labels: [],
      severityPolicy: [],
      log: getLogger('verifier'),
    })
    expect(pool.size).toBe(0)
    pool.close()
  })

  test('a check that throws fails only its agent: FAILED, internal.verifier.exception, logged once', async () => {
    const lines: string[] = []
    const previous = setLogSink((l) => lines.push(l))
    cleanups.push(async () => setLogSink(previous))
    const { v, fleet, enrol } = await startSetup(2, 'pool-throws', {
      checkWorkers: 1,
      checkWorkerEntry: new URL('./support/misbehaving-check-worker.ts', import.meta.url).href,
    })
    // agent 0 asks for PCR 10, so its answers carry the IMA list and go to the (failing) worker;
    // agent 1's rounds are light and checked on the main thread
    await enrol(0, { tpmPolicy: JSON.stringify({ mask: '0x400' }) })
    await enrol(1, { tpmPolicy: JSON.stringify({ mask: '0x0' }) })
    const rec = (i: number) => v.loop.records.get(fleet.agents[i]?.uuid as string)
    await until(
      () => rec(0)?.state === AGENT_STATES.FAILED && (rec(1)?.attestationCount ?? 0) >= 3,
      20_000,
      'the agent whose check throws failed and the other attested 3 times',
    )
    const failedAt = rec(1)?.attestationCount ?? 0
    const quotedAt = fleet.agents[0]?.stats.integrityQuotes
    await until(() => (rec(1)?.attestationCount ?? 0) >= failedAt + 3, 20_000, 'more rounds')
    expect(rec(0)?.lastEventId).toBe('internal.verifier.exception')
    expect(rec(1)?.state).toBe(AGENT_STATES.GET_QUOTE)
    expect(fleet.agents[0]?.stats.integrityQuotes).toBe(quotedAt as number) // not polled again
    expect(v.checks.inline).toBe(0) // the error answer was not re-run on the main thread
    const metrics = await (await v.app.request('/metrics')).text()
    expect(metrics).toContain(
      'keylime_verifier_failure_events_total{event_id="internal.verifier.exception"} 1',
    )
    expect(metrics).toContain('keylime_verifier_attestations_total{result="error"} 1')
    const id = fleet.agents[0]?.uuid as string
    expect(
      lines.filter((l) => l.includes('attestation round threw') && l.includes(id)),
    ).toHaveLength(1)
  }, 30_000)
})
