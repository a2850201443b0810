/**
 * Issue 17, finding 13: during a PostgreSQL outage admin reads answered 500 or hung past 5 s, and
 * the verifier's `/health` said ok while its writes failed.
 *
 * A verifier polling two simulated agents and a registrar run on PostgreSQL through a TCP proxy
 * this test controls (the shared server is never touched). Two outages are staged: a black hole
 * (nothing answers, nothing is reset: a partition or a dead host) and refused connections (a
 * stopped server). During each, admin reads of both roles answer 503 in the envelope within
 * `database_timeout` plus a margin, `/health` answers non-200 naming the database, the outage is
 * logged once (not once per failed flush), and the agents keep being attested in memory. After
 * the proxy heals, `/health` is 200 again and reads work without a restart, and the snapshots the
 * verifier could not write during the outage land. With the database up but the snapshot writes
 * failing (a constraint), `/health` is not 200 either and the failure is logged once, not once
 * per flush.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { sql } from 'drizzle-orm'
import { enrollAgent, simAgentIdentity } from '../support/fleet/enroll-agent.ts'
import { type Fleet, startFleet } from '../support/fleet/fleet.ts'
import { loadCaDir } from '../support/fleet/load-ca-dir.ts'
import { type KeylimeDatabase, openDatabase } from '../../src/db/index.ts'
import type { KeylimeApp } from '../../src/http/create-app.ts'
import { setLogSink } from '../../src/log/logger.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from '../support/software-agent.ts'
import { AGENT_STATES } from '../../src/protocol/agent-states.ts'
import type { VerifierHandle } from '../../src/verifier/start-verifier.ts'
import { createTestCa, startTestVerifier } from '../support/verifier-harness.ts'
import { databaseTargets, type FreshLocation } from '../support/databases.ts'
import { registrarApps } from '../support/registrar-apps.ts'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts'
import { until } from '../support/until.ts'

/** `database_timeout` of the processes under test (the default is 5 s). */
const TIMEOUT_MS = 1000
/** What a 503 may take beyond the timeout (a loaded CI machine). */
const MARGIN_MS = 1500

const postgresql = databaseTargets().find((t) => t.name === 'postgresql')

/** Enrols every agent of `fleet` with `verifier` over mTLS, as the tenant does. */
async function enrolFleet(
  verifier: VerifierHandle,
  caDir: Awaited<ReturnType<typeof loadCaDir>>,
  fleet: Fleet,
): Promise<void> {
  for (const a of fleet.agents) {
    await enrollAgent({
      verifierUrl: verifier.servers[0]!.url,
      tls: caDir.client,
      ...simAgentIdentity(a),
    })
  }
}

describe.skipIf(postgresql === undefined)('database outage (PostgreSQL behind a proxy)', () => {
  let location: FreshLocation
  let proxy: TcpProxy
  let kdb: KeylimeDatabase
  let fleet: Fleet
  let verifier: VerifierHandle
  let registrarHttp: KeylimeApp
  let registrarAdmin: KeylimeApp
  const lines: string[] = []
  let restore: ReturnType<typeof setLogSink>
  const registered = 'outage-registered'

  beforeAll(async () => {
    restore = setLogSink((l) => lines.push(l), false)
    location = await (postgresql as NonNullable<typeof postgresql>).freshLocation()
    const u = new URL(location.url)
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) })
    kdb = await openDatabase({
      url: proxy.url(location.url),
      keylimeDir: location.keylimeDir,
      shared: false,
      timeoutMs: TIMEOUT_MS,
      probeMs: 250,
    })
    const ca = await createTestCa()
    const caDir = await loadCaDir(ca.caDir)
    fleet = await startFleet({
      count: 2,
      caCertPem: caDir.caCertPem,
      listen: 'ports',
      seed: 'db-outage',
    })
    verifier = await startTestVerifier(kdb, ca, { quote_interval: '0.2' }, { flushMs: 100 })
    await enrolFleet(verifier, caDir, fleet)
    const registrar = registrarApps(kdb)
    registrarHttp = registrar.http
    registrarAdmin = registrar.admin
    const agent = new SoftwareAgent(makeSoftwareEk('ecc'), makeSoftwareAk('ecc'))
    const reg = await call(registrarHttp, 'POST', `/v2.6/agents/${registered}`, agent.body())
    expect(reg.status).toBe(200)
    const blob = (reg.body.results as { blob: string }).blob
    const act = await call(registrarHttp, 'PUT', `/v2.6/agents/${registered}`, {
      auth_tag: agent.authTag(registered, blob),
    })
    expect(act.status).toBe(200)
  }, 60_000)

  afterAll(async () => {
    setLogSink(restore)
    await proxy?.heal()
    await verifier?.stop(500)
    await fleet?.stop()
    await kdb?.close()
    await proxy?.close()
    await location?.drop()
  }, 30_000)

  async function call(app: KeylimeApp, method: string, path: string, body?: unknown) {
    const started = performance.now()
    const res = await app.request(path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    const json = (await res.json()) as { code: number; status: string; results: unknown }
    return { status: res.status, body: json, ms: performance.now() - started, res }
  }

  /** The admin reads of both roles, as an operator's tenant makes them. */
  const adminReads = (): [string, KeylimeApp, string][] => [
    ['verifier GET /agents/:id', verifier.app, `/v2.6/agents/${fleet.agents[0]!.uuid}`],
    ['verifier GET /agents', verifier.app, '/v2.6/agents'],
    ['registrar GET /agents/:id', registrarAdmin, `/v2.6/agents/${registered}`],
    ['registrar GET /agents', registrarAdmin, '/v2.6/agents'],
  ]

  /** Attestations each agent has in memory and in its stored row. */
  async function counts(): Promise<{ memory: number; stored: number }[]> {
    return Promise.all(
      fleet.agents.map(async (a) => ({
        memory: verifier.loop.records.get(a.uuid)?.attestationCount ?? 0,
        stored: (await verifier.store.getAgent(a.uuid))?.attestation_count ?? 0,
      })),
    )
  }

  async function outage(kind: 'black hole' | 'refused', start: () => Promise<void> | void) {
    await until(
      async () => (await counts()).every((c) => c.stored >= 2),
      20_000,
      'agents attested and stored before the outage',
    )
    lines.length = 0
    await start()

    // admin reads: 503 in the envelope within the bound, every time
    for (let round = 0; round < 2; round++) {
      for (const [what, app, path] of adminReads()) {
        const r = await call(app, 'GET', path)
        expect(r.status, `${kind}: ${what}`).toBe(503)
        expect(r.body).toEqual({
          code: 503,
          status: 'Service Unavailable: database unavailable',
          results: {},
        })
        expect(r.res.headers.get('retry-after')).toBe('5')
        expect(r.ms, `${kind}: ${what} took ${Math.round(r.ms)} ms`).toBeLessThan(
          TIMEOUT_MS + MARGIN_MS,
        )
      }
    }

    // /health: not 200, and it says why
    await until(
      async () => (await call(verifier.app, 'GET', '/health')).status === 503,
      TIMEOUT_MS + MARGIN_MS,
      `${kind}: /health reporting the outage`,
    )
    const health = await call(verifier.app, 'GET', '/health')
    const h = health.body.results as { status: string; reason: string; database: { state: string } }
    expect(h.status).toBe('unhealthy')
    expect(h.reason).toStartWith('database unavailable')
    expect(h.database.state).toBe('down')

    // attestation goes on in memory while the snapshot writes fail and are retried
    const during = await Promise.all(
      fleet.agents.map((a) => verifier.loop.records.get(a.uuid)?.attestationCount ?? 0),
    )
    await until(
      () =>
        fleet.agents.every(
          (a, i) =>
            (verifier.loop.records.get(a.uuid)?.attestationCount ?? 0) > (during[i] ?? 0) + 2,
        ),
      10_000,
      `${kind}: attestation continuing during the outage`,
    )
    // a round that must read its policies from the database meanwhile waits for it; the agent
    // is not failed for the database's outage
    expect(fleet.agents.every((a) => verifier.loop.records.get(a.uuid)?.imaPolicyId != null)).toBe(
      true,
    )
    verifier.loop.invalidatePolicies()
    await Bun.sleep(1500)
    const failed = fleet.agents.filter(
      (a) => verifier.loop.records.get(a.uuid)?.state === AGENT_STATES.FAILED,
    )
    expect(
      failed.map((a) => a.uuid),
      `${kind}: agents failed for the outage`,
    ).toEqual([])
    const flushes = lines.filter((l) => l.includes('batched state write failed')).length
    const leaseTicks = lines.filter((l) => l.includes('lease maintenance failed')).length
    const down = lines.filter((l) => / ERROR - database unavailable /.test(l)).length

    await proxy.heal()
    const healedAt = fleet.agents.map(
      (a) => verifier.loop.records.get(a.uuid)?.attestationCount ?? 0,
    )
    await until(
      async () => (await call(verifier.app, 'GET', '/health')).status === 200,
      10_000,
      `${kind}: /health recovering after the outage`,
    )
    for (const [what, app, path] of adminReads()) {
      expect((await call(app, 'GET', path)).status, `${kind} healed: ${what}`).toBe(200)
    }
    // the snapshots the outage held back are written
    await until(
      async () => (await counts()).every((c, i) => c.stored >= (healedAt[i] ?? 0)),
      10_000,
      () => `${kind}: snapshots held back during the outage written`,
    )
    await until(
      () =>
        fleet.agents.every(
          (a, i) => (verifier.loop.records.get(a.uuid)?.attestationCount ?? 0) > (healedAt[i] ?? 0),
        ),
      10_000,
      `${kind}: attestation resumed with policies read again`,
    )
    const up = lines.filter((l) => l.includes('INFO - database available again')).length

    // one ERROR line for the outage, one INFO for its end; failed flushes not at ERROR each time
    expect(down, lines.filter((l) => l.includes('ERROR')).join('\n')).toBe(1)
    expect(up).toBeGreaterThanOrEqual(1)
    expect(flushes + leaseTicks).toBe(0) // outages are logged by the database health, not per write
    expect(lines.filter((l) => l.includes(' - ERROR - ')).length).toBeLessThanOrEqual(2)
  }

  test('a black hole: reads 503 within database_timeout, /health down, recovery, writes land', async () => {
    await outage('black hole', () => proxy.blackhole())
  }, 60_000)

  test('refused connections: the same', async () => {
    await outage('refused', () => proxy.refuse())
  }, 60_000)
})

for (const target of databaseTargets()) {
  describe(`state writes failing with the database up (${target.name})`, () => {
    let kdb: KeylimeDatabase
    let fleet: Fleet
    let verifier: VerifierHandle
    const lines: string[] = []
    let restore: ReturnType<typeof setLogSink>

    beforeAll(async () => {
      restore = setLogSink((l) => lines.push(l), false)
      kdb = await target.open()
      const ca = await createTestCa()
      const caDir = await loadCaDir(ca.caDir)
      fleet = await startFleet({
        count: 1,
        caCertPem: caDir.caCertPem,
        listen: 'ports',
        seed: `db-frozen-${target.name}`,
      })
      verifier = await startTestVerifier(kdb, ca, { quote_interval: '0.1' }, { flushMs: 50 })
      await enrolFleet(verifier, caDir, fleet)
    }, 60_000)
    afterAll(async () => {
      setLogSink(restore)
      await verifier?.stop(500)
      await fleet?.stop()
      await kdb?.close()
    }, 30_000)

    test('/health not 200 while they fail, one ERROR line, nothing lost', async () => {
      const id = fleet.agents[0]!.uuid
      const stored = async () => (await verifier.store.getAgent(id))?.attestation_count ?? 0
      await until(async () => (await stored()) >= 2, 20_000, 'agent attested and stored')
      lines.length = 0
      await kdb.db.execute(
        sql.raw(
          'ALTER TABLE verifiermain ADD CONSTRAINT kl_test_frozen CHECK (attestation_count < 0) NOT VALID',
        ),
      )
      const frozen = await stored()
      await until(
        async () => (await verifier.app.request('/health')).status === 503,
        5000,
        '/health reporting the failing writes',
      )
      const h = (await (await verifier.app.request('/health')).json()) as {
        results: { status: string; reason: string; database: { state: string } }
      }
      expect(h.results.status).toBe('unhealthy')
      expect(h.results.reason).toContain('batched state write failed')
      expect(h.results.reason).toContain('23514')
      expect(h.results.database.state).toBe('up')
      await Bun.sleep(1000) // about 20 more flushes, each failing
      expect(await stored()).toBe(frozen)
      const logged = lines.filter((l) => l.includes('batched state write failed'))
      expect(logged).toHaveLength(1)
      expect(logged[0]).toContain(' - ERROR - ')
      await kdb.db.execute(sql.raw('ALTER TABLE verifiermain DROP CONSTRAINT kl_test_frozen'))
      const memory = verifier.loop.records.get(id)?.attestationCount ?? 0
      await until(async () => (await stored()) >= memory, 5000, 'held-back snapshots written')
      await until(
        async () => (await verifier.app.request('/health')).status === 200,
        5000,
        '/health back to 200',
      )
    }, 60_000)
  })
}
