/**
 * Push-mode fleet benchmark: the verifier in its own process (`bench/verifier-process.ts --push`,
 * the real `startVerifier`), N simulated push agents (test/support/fleet/push-fleet.ts) in this
 * one, over TLS on loopback. Enrols the agents (the first 100 through the service, the rest as
 * bulk copies of that row), runs the fleet, then reports over a window after the warm-up:
 * accepted attestations/s (a 202; the capabilities POST and the evidence PATCH count as one),
 * lateness p50/p99/max (202 − due, see push-fleet.ts), verifier CPU µs per attestation (process
 * CPU time / 202s in the window), verifier peak RSS, errors by kind, and the database's passes.
 *
 *   bun bench/push-fleet.ts --count 1000 [--interval 2] [--duration 60] [--warmup 20]
 *     [--key ecc|rsa] [--ima-entries 0] [--fault bad-signature:0.01,silent:0.01,...]
 *     [--db postgresql://postgres@127.0.0.1:5432/postgres] [--restart] [--port 19610]
 *     [--cpuprof DIR] [--max-in-flight 2000] [--evidence-index]
 *
 * `--db` postgresql://… creates a fresh database `kl_push_bench_<time>` on that server (dropped
 * at the end). `--restart` then `kill -9`s the verifier, starts a new one on the same database and
 * `KEYLIME_DIR`, and reports from the kill when 50/90/99/100 % of the attesting agents had a 202
 * again (`resumed`).
 *
 * @module
 */
import 'reflect-metadata'
import { type Subprocess, spawn } from 'bun'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { startPushFleet, type PushFaultSpec } from '../test/support/fleet/push-fleet.ts'
import { PUSH_FAULTS, type PushFault } from '../test/support/fleet/push-sim-agent.ts'
import { FAULT_PCR } from '../test/support/fleet/sim-agent.ts'
import { createTestCa } from '../test/support/verifier-harness.ts'
import type { BenchFleetFile } from './verifier-fleet.ts'

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '100' },
    interval: { type: 'string', default: '2' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string' },
    key: { type: 'string', default: 'ecc' },
    'ima-entries': { type: 'string', default: '0' },
    fault: { type: 'string', default: '' },
    db: { type: 'string', default: '' },
    restart: { type: 'boolean', default: false },
    port: { type: 'string', default: '19610' },
    cpuprof: { type: 'string' },
    'max-in-flight': { type: 'string', default: '2000' },
    /** Experiment: index evidence_items on (agent_id, attestation_index) before the start. */
    'evidence-index': { type: 'boolean', default: false },
  },
})

const count = Number(values.count)
const intervalS = Number(values.interval)
const durationS = Number(values.duration)
const warmupS = values.warmup !== undefined ? Number(values.warmup) : 5 + count / 500
const faults: PushFaultSpec[] = (values.fault ?? '')
  .split(',')
  .filter((x) => x.length > 0)
  .map((item) => {
    const [name, frac] = item.split(':')
    if (!PUSH_FAULTS.includes(name as PushFault)) throw new Error(`unknown fault ${name}`)
    return { fault: name as PushFault, fraction: Number(frac ?? '0.01') }
  })

const keylimeDir = mkdtempSync(join(tmpdir(), 'kl-push-bench-'))
let dbUrl = values.db ?? ''
let dropDb: (() => Promise<void>) | undefined
if (dbUrl.startsWith('postgres')) {
  const name = `kl_push_bench_${Date.now()}`
  const admin = postgres(dbUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`CREATE DATABASE ${name}`)
  await admin.end()
  const u = new URL(dbUrl)
  u.pathname = `/${name}`
  dbUrl = u.href
  dropDb = async () => {
    const a = postgres(values.db!, { max: 1, onnotice: () => {} })
    await a.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
    await a.end()
  }
}

await createTestCa(keylimeDir)
const caCertPem = readFileSync(join(keylimeDir, 'cv_ca', 'cacert.crt'), 'utf8')
const port = Number(values.port)
const fleet = startPushFleet({
  count,
  keyType: values.key === 'rsa' ? 'rsa' : 'ecc',
  verifierUrl: `https://127.0.0.1:${port}`,
  caCertPem,
  intervalS,
  imaPerRound: Number(values['ima-entries']),
  imaRounds: Math.ceil((warmupS + durationS + 60) / intervalS) + 10,
  faults,
  maxInFlight: Number(values['max-in-flight']),
})
const a0 = fleet.agents[0]!
const pcr15 = Buffer.from(a0.tpm.readPcr(a0.hashAlg, FAULT_PCR)).toString('hex')
const file: BenchFleetFile = {
  certs: [''],
  agents: fleet.agents.map((a) => ({
    uuid: a.uuid,
    ip: '127.0.0.1',
    port: 9002,
    akTpm: Buffer.from(a.akTpm2b).toString('base64'),
    cert: 0,
  })),
  // PCR15 pinned (the pcr-change fault), PCR10 with the IMA list
  tpmPolicy: JSON.stringify({ [String(FAULT_PCR)]: [pcr15], mask: '0x8000' }),
  runtimePolicy:
    fleet.imaLog === undefined
      ? undefined
      : Buffer.from(fleet.imaLog.runtimePolicy()).toString('base64'),
}
const enrolFile = join(keylimeDir, 'push-agents.json')
writeFileSync(enrolFile, JSON.stringify(file))

/** A verifier child and its stdout lines. */
interface Child {
  proc: Subprocess<'pipe', 'pipe', 'inherit'>
  next(prefix: string, timeoutMs?: number): Promise<string>
  send(cmd: string): void
}

function startChild(enrol: boolean): Child {
  const args = [
    ...(values.cpuprof ? ['--cpu-prof', `--cpu-prof-dir=${values.cpuprof}`] : []),
    'bench/verifier-process.ts',
    '--keylime-dir',
    keylimeDir,
    '--db',
    dbUrl,
    '--port',
    String(port),
    '--interval',
    String(intervalS),
    '--push',
    '--set',
    'session_create_rate_limit_per_ip=0',
    ...(enrol ? ['--enrol', enrolFile] : []),
    ...(values['evidence-index']
      ? [
          '--sql',
          'CREATE INDEX IF NOT EXISTS ix_bench_evidence_items_attestation ON evidence_items (agent_id, attestation_index)',
        ]
      : []),
  ]
  const proc = spawn([process.execPath, ...args], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'inherit',
  })
  const lines: string[] = []
  const waiters: { prefix: string; resolve: (l: string) => void }[] = []
  void (async () => {
    let buf = ''
    const dec = new TextDecoder()
    for await (const chunk of proc.stdout) {
      buf += dec.decode(chunk)
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        nl = buf.indexOf('\n')
        const w = waiters.findIndex((x) => line.startsWith(x.prefix))
        if (w >= 0) waiters.splice(w, 1)[0]!.resolve(line)
        else lines.push(line)
      }
    }
  })()
  return {
    proc,
    next(prefix, timeoutMs = 600_000) {
      const i = lines.findIndex((l) => l.startsWith(prefix))
      if (i >= 0) return Promise.resolve(lines.splice(i, 1)[0]!)
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no "${prefix}" line`)), timeoutMs)
        waiters.push({
          prefix,
          resolve: (l) => {
            clearTimeout(t)
            resolve(l)
          },
        })
      })
    },
    send(cmd) {
      proc.stdin.write(`${cmd}\n`)
      proc.stdin.flush()
    },
  }
}

const json = (line: string) => JSON.parse(line.slice(line.indexOf(' ') + 1))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let child = startChild(true)
console.log(await child.next('ready'))
console.log(await child.next('enrolled'))
fleet.start()
await sleep(warmupS * 1000)

// the window
child.send('counts')
const c0 = json(await child.next('counts'))
child.send('mark')
await child.next('marked')
fleet.resetWindow()
const acc0 = fleet.accepted
const w0 = performance.now()
const simCpu0 = process.cpuUsage()
await sleep(durationS * 1000)
child.send('counts')
const c1 = json(await child.next('counts'))
child.send('report')
const rep = json(await child.next('report'))
const wall = (performance.now() - w0) / 1000
const accepted = fleet.accepted - acc0
const simCpu = process.cpuUsage(simCpu0)
const attesting =
  count - Math.round(count * (faults.find((f) => f.fault === 'silent')?.fraction ?? 0))
const result = {
  count,
  key: values.key,
  db: rep.db,
  interval_s: intervalS,
  ima_entries: Number(values['ima-entries']),
  faults: values.fault || undefined,
  window_s: +wall.toFixed(1),
  attestations_per_s: +(accepted / wall).toFixed(1),
  expected_per_s: +(attesting / intervalS).toFixed(1),
  lateness_ms: fleet.lateness.summary(),
  verifier_cpu_us_per_attestation: Math.round((rep.cpu_s * 1e6) / Math.max(1, accepted)),
  verifier_cpu_s: rep.cpu_s,
  verifier_rss_mib: rep.rss_mib,
  verifier_rss_max_mib: rep.rss_max_mib,
  db_passes_in_window: c1.passes - c0.passes,
  db_failing_agents: c1.failing,
  pg_per_attestation:
    c1.pg === undefined
      ? undefined
      : Object.fromEntries(
          Object.keys(c1.pg).map((k) => [
            k,
            +((Number(c1.pg[k]) - Number(c0.pg[k])) / Math.max(1, accepted)).toFixed(1),
          ]),
        ),
  pg_tables_per_attestation:
    c1.tables === undefined
      ? undefined
      : Object.fromEntries(
          (c1.tables as Record<string, string>[]).map((t) => [
            t.relname,
            Object.fromEntries(
              ['seq_scan', 'seq_tup_read', 'idx_scan'].map((k) => {
                const before = (c0.tables as Record<string, string>[]).find(
                  (x) => x.relname === t.relname,
                )
                return [
                  k,
                  +((Number(t[k]) - Number(before?.[k] ?? 0)) / Math.max(1, accepted)).toFixed(2),
                ]
              }),
            ),
          ]),
        ),
  errors: Object.fromEntries(fleet.errors),
  simulator_cpu_s: +((simCpu.user + simCpu.system) / 1e6).toFixed(1),
  loadavg: loadavg().map((x) => +x.toFixed(2)),
}
console.log(`result ${JSON.stringify(result)}`)

if (values.restart) {
  const tKill = Date.now()
  child.proc.kill('SIGKILL')
  await child.proc.exited
  child = startChild(false)
  const ready = await child.next('ready')
  const tReady = Date.now()
  const reached: Record<string, number> = {}
  const indices = fleet.agents.flatMap((a, i) => (a.fault === 'silent' ? [] : [i]))
  for (;;) {
    let back = 0
    for (const i of indices) if (fleet.lastAccepted[i]! > tKill) back++
    for (const f of [0.5, 0.9, 0.99, 1]) {
      const k = f === 1 ? 'all' : `p${f * 100}`
      if (reached[k] === undefined && back >= f * indices.length) reached[k] = Date.now() - tKill
    }
    if (reached.all !== undefined || Date.now() - tKill > 20 * intervalS * 1000) break
    await sleep(20)
  }
  child.send('counts')
  const c2 = json(await child.next('counts'))
  console.log(
    `resumed ${JSON.stringify({
      ready_ms: tReady - tKill,
      ready,
      from_kill_ms: reached,
      intervals_to_all:
        reached.all === undefined ? null : +(reached.all / 1000 / intervalS).toFixed(2),
      verifier_cpu_s_since_start: c2.cpu_s,
      errors: Object.fromEntries(fleet.errors),
    })}`,
  )
}

fleet.stop()
child.send('quit')
await Promise.race([child.proc.exited, sleep(10_000)])
child.proc.kill('SIGKILL')
await dropDb?.()
rmSync(keylimeDir, { recursive: true, force: true })
process.exit(0)
