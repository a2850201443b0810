/**
 * Real crashes: the verifier runs as a CHILD process (`keylime --verifier`), polls a small
 * simulated fleet, and is killed with SIGKILL mid-load.
 *
 * - Restart (PGlite and PostgreSQL): the restarted process (same address, so the same instance
 *   id) takes its leases back at once; every agent is quoted again soon after, its
 *   `attestation_count` continues from the stored value (it does not restart at 0), and agents in
 *   a failed state stay failed and are not polled.
 * - Two processes on one PostgreSQL: both poll a share; after `kill -9` of one, the other claims
 *   its agents when their leases expire and attests them, without operator action.
 *
 * Timing is reported, not asserted: the waits have generous deadlines (CI machines are shared);
 * the benchmark (`bench/verifier.ts`, docs/benchmarks.md) gives the measured figures.
 *
 * @module
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { enrollAgent, simAgentIdentity } from './support/fleet/enroll-agent.ts'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { loadCaDir } from './support/fleet/load-ca-dir.ts'
import { MtlsClient } from '../src/http/mtls-client.ts'
import { AGENT_STATES } from '../src/protocol/agent-states.ts'
import { createTestCa } from './support/verifier-harness.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  freePort,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'
import { databaseTargets, type FreshLocation } from './support/databases.ts'
import { untilValue } from './support/until.ts'

const AGENTS = 12
/** One agent answers with a bad signature: INVALID_QUOTE, must stay so across crashes. */
const FAULTY = 0
const INTERVAL_S = 0.5

const cleanups: (() => Promise<unknown> | unknown)[] = []
afterAll(async () => {
  for (const c of cleanups.reverse()) await Promise.resolve(c()).catch(() => undefined)
})

interface Setup {
  env: Record<string, string>
  dir: string
  fleet: Fleet
  client: MtlsClient
  caPem: string
  tls: Awaited<ReturnType<typeof loadCaDir>>['client']
}

async function setup(db: FreshLocation | undefined): Promise<Setup> {
  const { env, dir } = await controlPlaneEnv()
  await createTestCa(dir)
  Object.assign(env, {
    KEYLIME_VERIFIER_IP: '127.0.0.1',
    KEYLIME_VERIFIER_QUOTE_INTERVAL: String(INTERVAL_S),
    KEYLIME_VERIFIER_RETRY_INTERVAL: '0.2',
    KEYLIME_VERIFIER_MAX_RETRIES: '3',
    KEYLIME_VERIFIER_REQUEST_TIMEOUT: '5',
    KEYLIME_VERIFIER_DATABASE_URL: db?.url ?? 'sqlite',
    KEYLIME_LOGGING_LEVEL: 'WARNING',
  })
  const ca = await loadCaDir(join(dir, 'cv_ca'))
  const fleet = await startFleet({
    count: AGENTS,
    caCertPem: ca.caCertPem,
    listen: 'ports',
    sharedKeys: true,
    keyCachePath: join(tmpdir(), 'keylime-verifier-test-keys.json'),
    seed: `crash-${Math.random()}`,
  })
  const faulty = fleet.agents[FAULTY]
  if (faulty !== undefined) faulty.faults = { badSignature: 1 }
  cleanups.push(() => fleet.stop())
  return {
    env,
    dir,
    fleet,
    caPem: ca.caCertPem,
    tls: ca.client,
    client: new MtlsClient({
      cert: ca.client.cert,
      key: ca.client.key,
      ca: typeof ca.client.ca === 'string' ? [ca.client.ca] : ca.client.ca,
      timeoutMs: 5000,
    }),
  }
}

function startVerifierProcess(s: Setup, port: number): ChildRun {
  const run = spawnCollect([process.execPath, MAIN_TS, '--verifier'], {
    ...s.env,
    KEYLIME_VERIFIER_PORT: String(port),
  })
  cleanups.push(() => run.proc.exitCode === null && run.proc.kill('SIGKILL'))
  return run
}

async function kill9(run: ChildRun): Promise<void> {
  run.proc.kill('SIGKILL')
  expect(await run.proc.exited).not.toBe(0)
}

interface AgentView {
  state: number
  count: number
}

async function statusAll(s: Setup, port: number): Promise<Map<string, AgentView>> {
  const out = new Map<string, AgentView>()
  for (const a of s.fleet.agents) {
    const res = await s.client.request(`https://127.0.0.1:${port}/v2.3/agents/${a.uuid}`)
    if (res.status !== 200) throw new Error(`status ${res.status} for ${a.uuid}`)
    const r = res.results as { operational_state: number; attestation_count: number }
    out.set(a.uuid, { state: r.operational_state, count: r.attestation_count })
  }
  return out
}

async function health(s: Setup, port: number): Promise<{ agents: number }> {
  const res = await s.client.request(`https://127.0.0.1:${port}/health`)
  return res.results as { agents: number }
}

async function enrolAll(s: Setup, port: number): Promise<void> {
  for (const a of s.fleet.agents) {
    await enrollAgent({
      verifierUrl: `https://127.0.0.1:${port}`,
      tls: s.tls,
      ...simAgentIdentity(a),
    })
  }
}

/** Quotes answered per agent now. */
function quotes(s: Setup): number[] {
  return s.fleet.agents.map((a) => a.stats.integrityQuotes)
}

/** Resolves when every healthy agent answered more quotes than in `before`. */
async function allQuotedAgain(s: Setup, before: number[], ms: number): Promise<number> {
  const t0 = performance.now()
  await untilValue(
    () =>
      s.fleet.agents.every((a, i) => i === FAULTY || a.stats.integrityQuotes > (before[i] ?? 0))
        ? true
        : undefined,
    ms,
    'every agent to be quoted again',
  )
  return performance.now() - t0
}

const targets = databaseTargets()

describe('verifier crash (kill -9 of a child process)', () => {
  for (const target of targets) {
    test(`restart resumes every agent with its state (${target.name})`, async () => {
      const db = target.name === 'postgresql' ? await target.freshLocation() : undefined
      if (db) cleanups.push(() => db.drop())
      const s = await setup(db)
      const port = await freePort()
      const first = startVerifierProcess(s, port)
      await first.waitFor(/keylime control plane started/, 30_000)
      await enrolAll(s, port)
      // under load: every healthy agent attested a few times, the faulty one is INVALID_QUOTE
      const before = await untilValue(
        async () => {
          const st = await statusAll(s, port)
          const ok = [...st.values()].every((v, i) =>
            i === FAULTY ? v.state === AGENT_STATES.INVALID_QUOTE : v.count >= 3,
          )
          return ok ? st : undefined
        },
        20_000,
        'agents attested under load',
      )
      await Bun.sleep(300) // let a batched write land, then crash mid-load
      await kill9(first)
      const quotedAtKill = quotes(s)

      const second = startVerifierProcess(s, port)
      await second.waitFor(/keylime control plane started/, 30_000)
      const resumeMs = await allQuotedAgain(s, quotedAtKill, 15_000)
      console.log(
        `[${target.name}] after kill -9 and restart every agent was quoted again within ${resumeMs.toFixed(0)} ms of start-up (interval ${INTERVAL_S * 1000} ms)`,
      )
      const after = await untilValue(
        async () => {
          const st = await statusAll(s, port)
          const ok = [...st.entries()].every(([id, v], i) => {
            const b = before.get(id) as AgentView
            return i === FAULTY ? true : v.count > b.count && v.state === AGENT_STATES.GET_QUOTE
          })
          return ok ? st : undefined
        },
        15_000,
        'attestation counts to pass the pre-crash values',
      )
      const faultyId = s.fleet.agents[FAULTY]?.uuid as string
      expect(after.get(faultyId)?.state).toBe(AGENT_STATES.INVALID_QUOTE)
      // the failed agent is not polled again after the restart
      expect(s.fleet.agents[FAULTY]?.stats.integrityQuotes).toBe(quotedAtKill[FAULTY])
      for (const [id, v] of after) {
        if (id === faultyId) continue
        expect(v.count).toBeGreaterThan((before.get(id) as AgentView).count)
      }
      expect(await second.stop()).toBe(0)
    }, 60_000)
  }

  const pg = targets.find((t) => t.name === 'postgresql')
  test.skipIf(pg === undefined)(
    'two verifiers on one PostgreSQL: kill -9 of one moves its agents to the other',
    async () => {
      const db = await (pg as (typeof targets)[number]).freshLocation()
      cleanups.push(() => db.drop())
      const s = await setup(db)
      const portA = await freePort()
      const portB = await freePort()
      const a = startVerifierProcess(s, portA)
      await a.waitFor(/keylime control plane started/, 30_000)
      await enrolAll(s, portA)
      const b = startVerifierProcess(s, portB)
      await b.waitFor(/keylime control plane started/, 30_000)
      const polled = AGENTS - 1
      const shares = await untilValue(
        async () => {
          const ha = (await health(s, portA)).agents
          const hb = (await health(s, portB)).agents
          return ha > 0 && hb > 0 && ha + hb >= polled ? { ha, hb } : undefined
        },
        20_000,
        'both verifiers to hold a share',
      )
      console.log(`[postgresql] shares before the crash: A ${shares.ha}, B ${shares.hb}`)
      await kill9(a)
      const t0 = performance.now()
      const quotedAtKill = quotes(s)
      await untilValue(
        async () => ((await health(s, portB)).agents === polled ? true : undefined),
        20_000,
        'B to hold every polled agent',
      )
      const resumeMs = await allQuotedAgain(s, quotedAtKill, 20_000)
      console.log(
        `[postgresql] B took over A's agents; all quoted again ${(performance.now() - t0).toFixed(0)} ms after kill -9 (lease 6 s; last agent ${resumeMs.toFixed(0)} ms after take-over began)`,
      )
      const st = await statusAll(s, portB)
      for (const [i, ag] of s.fleet.agents.entries()) {
        const v = st.get(ag.uuid) as AgentView
        if (i === FAULTY) expect(v.state).toBe(AGENT_STATES.INVALID_QUOTE)
        else expect(v.state).toBe(AGENT_STATES.GET_QUOTE)
      }
      expect(await b.stop()).toBe(0)
    },
    60_000,
  )
})
