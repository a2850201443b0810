/**
 * Verifier benchmark. The fleet simulator (`bench/verifier-fleet.ts`) and each verifier
 * (`bench/verifier-process.ts`) run in their OWN processes on loopback, mTLS both ways, so the
 * figures are the verifier's alone: attestations/s, process CPU per attestation, schedule
 * lateness p50/p99/max from the verifier's own metrics, RSS, open sockets.
 *
 *   bun bench/verifier.ts --count 10000 --interval 2 --duration 30 [--key ecc|rsa]
 *     [--db postgresql://postgres@127.0.0.1:5432/postgres] [--processes 2] [--crash]
 *
 * With `--db` a scratch database is created on that server and dropped at the end;
 * without it the verifier uses PGlite in a temporary KEYLIME_DIR (one process only).
 *
 * @module
 */
import 'reflect-metadata'
import { generateKeyPairSync, sign, verify } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import postgres from 'postgres'
import { createTestCa } from '../test/support/verifier-harness.ts'
import { scratchPostgres } from '../test/support/databases.ts'

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    interval: { type: 'string', default: '2' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string' },
    key: { type: 'string', default: 'ecc' },
    db: { type: 'string', default: '' },
    processes: { type: 'string', default: '1' },
    listen: { type: 'string' },
    'max-in-flight': { type: 'string' },
    'check-workers': { type: 'string' },
    'flush-ms': { type: 'string' },
    'connects-per-second': { type: 'string' },
    cpuprof: { type: 'boolean', default: false },
    smol: { type: 'boolean', default: false },
    crash: { type: 'boolean', default: false },
  },
})
const count = Math.min(20_000, Number(values.count))
const duration = Math.min(600, Number(values.duration))
const interval = Number(values.interval)
const processes = Math.max(1, Math.min(2, Number(values.processes)))
const warmup = Number(
  values.warmup ?? (processes > 1 ? 16 : Math.max(6, 3 * interval)) + (10 * count) / 1000,
)
if (processes > 1 && !values.db) throw new Error('--processes 2 needs --db (PGlite is one process)')
if (values.crash && !values.db)
  throw new Error('--crash reads progress from the database: needs --db')

/**
 * Machine speed right now: CPU µs of one ECDSA P-256 verification (the verifier's largest
 * per-quote cost). The cores are shared, so every figure is reported next to it.
 */
function calibrate(): number {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const data = Buffer.alloc(150, 7)
  const sig = sign('sha256', data, privateKey)
  const c0 = process.cpuUsage()
  for (let i = 0; i < 2000; i++) verify('sha256', data, publicKey, sig)
  const c = process.cpuUsage(c0)
  return +((c.user + c.system) / 2000).toFixed(1)
}

/**
 * CPU seconds (user + system) a process has used so far, from /proc: all its threads, or with
 * `mainThread` its main (event-loop) thread only.
 */
function cpuSecondsOf(pid: number, mainThread = false): number {
  try {
    const f = readFileSync(
      mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`,
      'utf8',
    )
    const after = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(after[11]) + Number(after[12])) / 100 // utime, stime at 100 ticks/s
  } catch {
    return Number.NaN
  }
}

/** A child process with line-oriented stdout. */
class Child {
  readonly proc: ReturnType<typeof Bun.spawn>
  readonly lines: string[] = []
  readonly name: string
  #waiters: (() => void)[] = []

  constructor(name: string, cmd: string[]) {
    this.name = name
    this.proc = Bun.spawn(cmd, { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' })
    void this.#pump(this.proc.stdout as ReadableStream<Uint8Array>, false)
    void this.#pump(this.proc.stderr as ReadableStream<Uint8Array>, true)
  }

  async #pump(s: ReadableStream<Uint8Array>, err: boolean): Promise<void> {
    let buf = ''
    const dec = new TextDecoder()
    for await (const c of s) {
      buf += dec.decode(c)
      let nl = buf.indexOf('\n')
      while (nl >= 0) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        nl = buf.indexOf('\n')
        if (err) console.error(`[${this.name}] ${line}`)
        else this.lines.push(line)
        for (const w of this.#waiters.splice(0)) w()
      }
    }
  }

  /** Waits for (and consumes) the first line starting with `prefix`; returns the rest. */
  async next(prefix: string, timeoutMs: number): Promise<string> {
    const end = Date.now() + timeoutMs
    for (;;) {
      const i = this.lines.findIndex((l) => l.startsWith(prefix))
      if (i >= 0) return (this.lines.splice(0, i + 1).pop() as string).slice(prefix.length).trim()
      if (this.proc.exitCode !== null)
        throw new Error(`${this.name} exited (${this.proc.exitCode})`)
      if (Date.now() > end) throw new Error(`${this.name}: no '${prefix}' in ${timeoutMs} ms`)
      await new Promise<void>((r) => {
        this.#waiters.push(r)
        setTimeout(r, 500)
      })
    }
  }

  send(cmd: string): void {
    const sink = this.proc.stdin as import('bun').FileSink
    sink.write(`${cmd}\n`)
    sink.flush()
  }
}

const bun = process.execPath
const keylimeDir = mkdtempSync(join(tmpdir(), 'kl-bench-verifier-'))
const ca = await createTestCa(keylimeDir)
const scratch = values.db ? await scratchPostgres(values.db) : undefined
const dbUrl = scratch?.url ?? ''
const agentsFile = join(keylimeDir, 'agents.json')
const children: Child[] = []
try {
  const fleet = new Child('fleet', [
    bun,
    join(import.meta.dir, 'verifier-fleet.ts'),
    '--count',
    String(count),
    '--key',
    values.key ?? 'ecc',
    '--ca-cert',
    join(ca.caDir, 'cacert.crt'),
    '--out',
    agentsFile,
    ...(values.listen ? ['--listen', values.listen] : []),
  ])
  children.push(fleet)
  const tf = performance.now()
  await fleet.next('fleet ready', 600_000)
  const fleetStartS = (performance.now() - tf) / 1000
  const verifiers: Child[] = []
  const startVerifier = (i: number, enrol: boolean): Child => {
    const c = new Child(`verifier-${i}`, [
      bun,
      ...(values.cpuprof ? ['--cpu-prof', `--cpu-prof-dir=${join(tmpdir(), 'kl-prof')}`] : []),
      ...(values.smol ? ['--smol'] : []),
      join(import.meta.dir, 'verifier-process.ts'),
      '--keylime-dir',
      keylimeDir,
      '--db',
      dbUrl,
      '--interval',
      String(interval),
      '--instance',
      `bench-${i}`,
      ...(values['max-in-flight'] ? ['--max-in-flight', values['max-in-flight']] : []),
      ...(values['check-workers'] ? ['--check-workers', values['check-workers']] : []),
      ...(values['flush-ms'] ? ['--flush-ms', values['flush-ms']] : []),
      ...(values['connects-per-second']
        ? ['--connects-per-second', values['connects-per-second']]
        : []),
      ...(enrol ? ['--enrol', agentsFile] : []),
    ])
    children.push(c)
    return c
  }
  for (let i = 0; i < processes; i++) {
    const c = startVerifier(i, i === 0)
    verifiers.push(c)
    await c.next('ready', 120_000)
    if (i === 0) console.error(`enrolled: ${await c.next('enrolled', 900_000)}`)
  }
  await Bun.sleep(warmup * 1000)
  for (const c of verifiers) c.send('mark')
  for (const c of verifiers) await c.next('marked', 30_000)
  const load0 = loadavg()
  const cal0 = calibrate()
  await Bun.sleep(duration * 1000)
  const cal1 = calibrate()
  for (const c of verifiers) c.send('report')
  const reports = []
  for (const c of verifiers) reports.push(JSON.parse(await c.next('report', 30_000)))
  const fleetStatus = fleet.lines.filter((l) => l.startsWith('fleet ')).pop()
  const total = reports.reduce((s, r) => s + r.per_s, 0)
  console.log(
    JSON.stringify(
      {
        agents: count,
        key: values.key,
        db: values.db ? 'postgresql' : 'pglite',
        processes,
        interval_s: interval,
        fleet_start_s: +fleetStartS.toFixed(1),
        attestations_per_s: +total.toFixed(0),
        expected_per_s: +(count / interval).toFixed(0),
        ecdsa_verify_us: [cal0, cal1],
        loadavg_before: load0.map((x) => +x.toFixed(2)),
        loadavg_after: loadavg().map((x) => +x.toFixed(2)),
        verifiers: reports,
        fleet: fleetStatus?.slice(6),
      },
      null,
      1,
    ),
  )
  if (values.crash) console.log(JSON.stringify({ crash: await crash() }, null, 1))
  for (const c of verifiers) if (c.proc.exitCode === null) c.send('quit')
  await Promise.all(verifiers.map((c) => Promise.race([c.proc.exited, Bun.sleep(10_000)])))

  /**
   * `kill -9` of the last verifier under load. One process: it is started again (same instance
   * id, so it takes its leases back at once). Two: the survivor takes its agents over when their
   * leases expire. Measures, from the kill, how long until every agent has a successful
   * attestation again (the surviving or restarted process watches its records' counts every
   * 20 ms), and checks the database agrees; and the CPU seconds the verifier (all threads, and its
   * event-loop thread alone) and the simulator spent from the moment it was ready until then.
   */
  async function crash(): Promise<Record<string, number>> {
    const victim = verifiers[verifiers.length - 1] as Child
    const sql = postgres(dbUrl, { max: 1, onnotice: () => {} })
    try {
      const killedAt = Date.now()
      let fleetCpuReady = cpuSecondsOf(fleet.proc.pid)
      victim.proc.kill('SIGKILL')
      await victim.proc.exited
      let readyS = 0
      const survivor =
        processes === 1 ? startVerifier(verifiers.length - 1, false) : (verifiers[0] as Child)
      if (processes === 1) {
        verifiers[verifiers.length - 1] = survivor
        await survivor.next('ready', 300_000)
        readyS = (Date.now() - killedAt) / 1000
        fleetCpuReady = cpuSecondsOf(fleet.proc.pid)
      }
      const survivorCpuReady = cpuSecondsOf(survivor.proc.pid)
      const survivorMainReady = cpuSecondsOf(survivor.proc.pid, true)
      survivor.send(`watch ${count}`)
      const at = JSON.parse(await survivor.next('resumed', 600_000)) as Record<string, number> & {
        connections: { opened: number; resumed: number }
      }
      const survivorCpu = cpuSecondsOf(survivor.proc.pid) - survivorCpuReady
      const survivorMain = cpuSecondsOf(survivor.proc.pid, true) - survivorMainReady
      const fleetCpu = cpuSecondsOf(fleet.proc.pid) - fleetCpuReady
      const since = (k: string) => +(((at[k] as number) - killedAt) / 1000).toFixed(2)
      const [r] = await sql<{ done: number }[]>`
        SELECT count(*)::int AS done FROM verifiermain
        WHERE last_successful_attestation > ${Math.floor(killedAt / 1000)}`
      return {
        ready_s: +readyS.toFixed(2),
        held_all_s: since('held'),
        p50_resumed_s: since('p50'),
        p90_resumed_s: since('p90'),
        p99_resumed_s: since('p99'),
        all_resumed_s: since('all'),
        db_rows_attested_since_kill: r?.done ?? 0,
        connections_opened: at.connections.opened,
        verifier_cpu_s_from_ready: +survivorCpu.toFixed(2),
        verifier_main_thread_cpu_s_from_ready: +survivorMain.toFixed(2),
        fleet_cpu_s_from_ready: +fleetCpu.toFixed(2),
        of_which_resumed_sessions: at.connections.resumed,
      }
    } finally {
      await sql.end()
    }
  }
} finally {
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGTERM')
  await Promise.all(children.map((c) => Promise.race([c.proc.exited, Bun.sleep(5000)])))
  for (const c of children) if (c.proc.exitCode === null) c.proc.kill('SIGKILL')
  await scratch?.drop()
  rmSync(keylimeDir, { recursive: true, force: true })
}
process.exit(0)
