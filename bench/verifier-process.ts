/**
 * One verifier process of the verifier benchmark (`bench/verifier.ts` spawns one or two): opens
 * the database, starts the verifier on a fixed port with a fixed instance id, optionally enrols
 * the agents of a `bench/verifier-fleet.ts` file through the service (what `POST /agents/{id}`
 * does), then answers line commands on stdin:
 *
 * - `mark`: starts a measurement window (CPU, passes, lateness quantiles, peak RSS);
 * - `report`: prints `report {json}` for the window: attestations/s, process CPU per attestation,
 *   schedule lateness p50/p99/max from the verifier's own metrics, RSS, fds and sockets;
 * - `quit`: clean stop (leases released).
 *
 * Everything it measures is this process alone: the simulator runs elsewhere.
 *
 * @module
 */
import 'reflect-metadata'
import { heapStats } from 'bun:jsc'
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { sql } from 'drizzle-orm'
import { openDatabase, verifiermain } from '../src/db/index.ts'
import { setLogLevel } from '../src/log/logger.ts'
import { runningHeapGovernor } from '../src/verifier/ops/heap-governor.ts'
import { stateName } from '../src/protocol/agent-states.ts'
import { enrolmentBody } from '../test/support/fleet/enroll-agent.ts'
import { createTestCa, startTestVerifier } from '../test/support/verifier-harness.ts'
import type { BenchFleetFile } from './verifier-fleet.ts'

/** What the heap governor did since start (`src/verifier/ops/heap-governor.ts`). */
function governorFigures(): Record<string, number> | undefined {
  const g = runningHeapGovernor()
  if (g === undefined) return undefined
  return {
    collections: g.collections,
    last_pause_ms: Math.round(g.pauseMs),
    mark_mib: Math.round(g.mark / 2 ** 20),
  }
}

/**
 * The JavaScript heap by kind (`bun:jsc`), then the same after a full collection: what is live
 * and what was garbage not yet collected (run after the window's figures are taken).
 */
function heapSummary(): Record<string, unknown> {
  const mib = (n: number) => Math.round(n / 2 ** 20)
  const h = heapStats()
  const top = Object.entries(h.objectTypeCounts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8)
  Bun.gc(true)
  const after = heapStats()
  return {
    heap_mib: mib(h.heapSize),
    extra_mib: mib(h.extraMemorySize),
    objects: h.objectCount,
    top_types: Object.fromEntries(top),
    after_full_gc: {
      heap_mib: mib(after.heapSize),
      extra_mib: mib(after.extraMemorySize),
      objects: after.objectCount,
      rss_mib: mib(process.memoryUsage().rss),
    },
  }
}

/** Open file descriptors and, among them, sockets of this process. */
export function countFds(): { fds: number; sockets: number } {
  let fds = 0
  let sockets = 0
  for (const f of readdirSync('/proc/self/fd')) {
    fds++
    try {
      if (readlinkSync(`/proc/self/fd/${f}`).startsWith('socket:')) sockets++
    } catch {
      // closed meanwhile
    }
  }
  return { fds, sockets }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      'keylime-dir': { type: 'string' },
      db: { type: 'string', default: '' },
      port: { type: 'string', default: '0' },
      instance: { type: 'string', default: 'bench-A' },
      interval: { type: 'string', default: '2' },
      enrol: { type: 'string' },
      'lease-ms': { type: 'string' },
      'max-in-flight': { type: 'string' },
      'check-workers': { type: 'string' },
      'flush-ms': { type: 'string' },
      'connects-per-second': { type: 'string' },
      'enrol-concurrency': { type: 'string', default: '16' },
      /** Enrol the first agents through the service, the rest as bulk inserts of the same row. */
      'enrol-api': { type: 'string', default: '100' },
      /** Enrol push agents (no `v`, no `mtls_cert`; bench/push-fleet.ts). */
      push: { type: 'boolean', default: false },
      /** More `[verifier]` options, `key=value` (repeatable). */
      set: { type: 'string', multiple: true },
      /** SQL run once the database is open (an experiment, e.g. an index; repeatable). */
      sql: { type: 'string', multiple: true },
    },
  })
  const keylimeDir = values['keylime-dir']
  if (keylimeDir === undefined) {
    console.error(
      'usage: bun bench/verifier-process.ts --keylime-dir DIR [--db URL] [--enrol FILE]',
    )
    process.exit(2)
  }
  setLogLevel('WARNING')
  const ca = await createTestCa(keylimeDir)
  const kdb = await openDatabase({ url: values.db ?? '', keylimeDir, shared: false })
  for (const stmt of values.sql ?? []) await kdb.db.execute(sql.raw(stmt))
  const v = await startTestVerifier(
    kdb,
    ca,
    {
      quote_interval: values.interval ?? '2',
      request_timeout: '30',
      port: values.port ?? '0',
      ...Object.fromEntries((values.set ?? []).map((kv) => kv.split('=', 2) as [string, string])),
    },
    {
      instanceId: values.instance,
      leaseMs: values['lease-ms'] ? Number(values['lease-ms']) : undefined,
      maxInFlight: values['max-in-flight'] ? Number(values['max-in-flight']) : undefined,
      checkWorkers: values['check-workers'] ? Number(values['check-workers']) : undefined,
      flushMs: values['flush-ms'] ? Number(values['flush-ms']) : undefined,
      connectsPerSecond: values['connects-per-second']
        ? Number(values['connects-per-second'])
        : undefined,
    },
  )
  console.log(`ready ${JSON.stringify({ url: v.servers[0]?.url, held: v.loop.records.size })}`)

  if (values.enrol !== undefined) {
    const file = JSON.parse(readFileSync(values.enrol, 'utf8')) as BenchFleetFile
    const t0 = performance.now()
    const viaApi = Math.min(file.agents.length, Number(values['enrol-api']))
    let next = 0
    let failed = 0
    let firstError = ''
    const worker = async () => {
      while (next < viaApi) {
        const a = file.agents[next++]
        if (a === undefined) break
        try {
          const mtlsCert = file.certs[a.cert] as string
          await v.service.agents.enrol(
            a.uuid,
            enrolmentBody(
              {
                ...a,
                mtlsCert,
                acceptHashAlgs: ['sha256'],
                tpmPolicy: file.tpmPolicy,
                runtimePolicy: file.runtimePolicy,
              },
              // a push agent: neither `v` nor `mtls_cert` (docs/push-mode.md)
              values.push ? { mtls_cert: null } : {},
            ),
          )
        } catch (err) {
          failed++
          firstError ||= String(err)
        }
      }
    }
    await Promise.all(Array.from({ length: Number(values['enrol-concurrency']) }, worker))
    // The rest: the same row as the first agent (its empty runtime and MB policies included)
    // with each agent's id, address and AK, unleased; the lease ticks claim and schedule them.
    const template = file.agents[0] ? await v.store.getAgent(file.agents[0].uuid) : undefined
    if (template !== undefined) {
      const rest = file.agents.slice(viaApi)
      for (let i = 0; i < rest.length; i += 500) {
        await kdb.db.insert(verifiermain).values(
          rest.slice(i, i + 500).map((a) => ({
            ...template,
            agent_id: a.uuid,
            ip: a.ip,
            port: a.port,
            ak_tpm: a.akTpm,
            mtls_cert: values.push ? null : (file.certs[a.cert] ?? null),
            // fresh poll-loop columns: not the template's clock, count or state
            operational_state: 1,
            attestation_count: 0,
            last_received_quote: 0,
            last_successful_attestation: 0,
            tpm_clockinfo: null,
            severity_level: null,
            last_event_id: null,
            lease_owner: null,
            lease_expires: null,
          })),
        )
      }
    }
    console.log(
      `enrolled ${JSON.stringify({
        ok: file.agents.length - failed,
        failed,
        first_error: firstError,
        s: +((performance.now() - t0) / 1000).toFixed(1),
      })}`,
    )
  }

  let cpu0 = process.cpuUsage()
  let w0 = performance.now()
  let pass0 = 0
  let opened0 = 0
  let maxRss = 0
  const passes = () => v.metrics.results.get('pass') ?? 0
  const rssTimer = setInterval(() => {
    maxRss = Math.max(maxRss, process.memoryUsage().rss)
  }, 250)
  const mark = () => {
    cpu0 = process.cpuUsage()
    w0 = performance.now()
    pass0 = passes()
    opened0 = v.agents.opened
    maxRss = process.memoryUsage().rss
    v.metrics.scheduleLag.resetQuantiles()
  }
  const report = () => {
    const cpu = process.cpuUsage(cpu0)
    const wall = (performance.now() - w0) / 1000
    const n = passes() - pass0
    const lag = v.metrics.scheduleLag
    const states: Record<string, number> = {}
    for (const r of v.loop.records.values()) {
      const s = stateName(r.state)
      states[s] = (states[s] ?? 0) + 1
    }
    return {
      instance: v.instanceId,
      db: kdb.kind,
      wall_s: +wall.toFixed(1),
      attestations: n,
      per_s: +(n / wall).toFixed(1),
      cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(2),
      cpu_us_per_attestation: Math.round((cpu.user + cpu.system) / Math.max(1, n)),
      cpu_user_sys_us_per_attestation: [
        Math.round(cpu.user / Math.max(1, n)),
        Math.round(cpu.system / Math.max(1, n)),
      ],
      lag_ms: { p50: lag.quantile(0.5), p99: lag.quantile(0.99), max: +lag.quantile(1).toFixed(0) },
      rounds: lag.quantileCount,
      results: Object.fromEntries(v.metrics.results),
      rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20),
      rss_max_mib: Math.round(maxRss / 2 ** 20),
      memory_mib: Object.fromEntries(
        Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round(v / 2 ** 20)]),
      ),
      governor: governorFigures(),
      heap: heapSummary(),
      held: v.loop.records.size,
      connections: {
        open: v.agents.open,
        opened_in_window: v.agents.opened - opened0,
        resumed_since_start: v.agents.resumed,
      },
      check_us_avg: Math.round(
        (v.metrics.checkLatency.sum / Math.max(1, v.metrics.checkLatency.count)) * 1000,
      ),
      in_flight: v.loop.scheduler.inFlight,
      ...countFds(),
      states,
      loadavg: loadavg().map((x) => +x.toFixed(2)),
    }
  }
  mark()
  // Resume watch (bench --crash): each record's attestation count when this process took it;
  // a record has resumed once its count rose. Records taken before this line are seen at once,
  // before any of their rounds could have finished.
  const countAtAdopt = new Map<string, number>()
  const adopt = v.loop.adopt.bind(v.loop)
  v.loop.adopt = (row, delayMs) => {
    const r = adopt(row, delayMs)
    countAtAdopt.set(r.id, r.attestationCount)
    return r
  }
  for (const r of v.loop.records.values()) countAtAdopt.set(r.id, r.attestationCount)
  const watch = (total: number): void => {
    const reached: Record<string, number> = {}
    const opened0 = v.agents.opened
    const resumed0 = v.agents.resumed
    // only records not yet resumed are looked at, so the watch costs the verifier little
    const seen = new Set<string>()
    const pending = new Map<string, number>()
    let done = 0
    const timer = setInterval(() => {
      if (reached.held === undefined && v.loop.records.size >= total) reached.held = Date.now()
      if (v.loop.records.size > seen.size) {
        for (const r of v.loop.records.values()) {
          if (seen.has(r.id)) continue
          seen.add(r.id)
          const c0 = countAtAdopt.get(r.id)
          if (c0 === undefined) countAtAdopt.set(r.id, r.attestationCount)
          pending.set(r.id, c0 ?? r.attestationCount)
        }
      }
      for (const [id, c0] of pending) {
        if ((v.loop.records.get(id)?.attestationCount ?? 0) > c0) {
          pending.delete(id)
          done++
        }
      }
      for (const f of [0.5, 0.9, 0.99, 1]) {
        const k = f === 1 ? 'all' : `p${Math.round(f * 100)}`
        if (reached[k] === undefined && done >= f * total) reached[k] = Date.now()
      }
      if (reached.all !== undefined) {
        clearInterval(timer)
        const connections = {
          opened: v.agents.opened - opened0,
          resumed: v.agents.resumed - resumed0,
        }
        console.log(`resumed ${JSON.stringify({ ...reached, connections })}`)
      }
    }, 20)
  }
  let buf = ''
  const dec = new TextDecoder()
  for await (const chunk of Bun.stdin.stream()) {
    buf += dec.decode(chunk)
    let nl = buf.indexOf('\n')
    while (nl >= 0) {
      const cmd = buf.slice(0, nl).trim()
      buf = buf.slice(nl + 1)
      nl = buf.indexOf('\n')
      if (cmd === 'mark') {
        mark()
        console.log('marked')
      } else if (cmd.startsWith('watch ')) {
        watch(Number(cmd.slice(6)))
      } else if (cmd === 'counts') {
        // push agents: passes and failing agents as the database has them
        const rows = await kdb.db
          .select({
            passes: sql<string>`coalesce(sum(${verifiermain.attestation_count}), 0)`,
            failing: sql<string>`count(*) filter (where ${verifiermain.consecutive_attestation_failures} > 0)`,
          })
          .from(verifiermain)
        // PostgreSQL: transactions and rows of this database (statements per attestation)
        const pg =
          kdb.kind === 'postgres'
            ? (
                (await kdb.db.execute(
                  sql`select xact_commit + xact_rollback as xacts, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted from pg_stat_database where datname = current_database()`,
                )) as unknown as Record<string, unknown>[]
              )[0]
            : undefined
        const tables =
          kdb.kind === 'postgres'
            ? await kdb.db.execute(
                sql`select relname, seq_scan, seq_tup_read, idx_scan, idx_tup_fetch from pg_stat_user_tables where seq_tup_read > 0 or idx_scan > 0`,
              )
            : undefined
        console.log(
          `counts ${JSON.stringify({ pg, tables, passes: Number(rows[0]?.passes), failing: Number(rows[0]?.failing), cpu_s: +((process.cpuUsage().user + process.cpuUsage().system) / 1e6).toFixed(3), rss_mib: Math.round(process.memoryUsage().rss / 2 ** 20) })}`,
        )
      } else if (cmd === 'report') {
        console.log(`report ${JSON.stringify(report())}`)
      } else if (cmd === 'quit') {
        clearInterval(rssTimer)
        await v.stop(2000)
        await kdb.close()
        console.log('stopped')
        process.exit(0)
      }
    }
  }
  // stdin closed without quit: stop cleanly
  clearInterval(rssTimer)
  await v.stop(2000)
  await kdb.close()
  process.exit(0)
}
