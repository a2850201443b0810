/**
 * The registrar's plain port under oversized uploads (issue 17, finding 6): a `keylime --registrar`
 * child process is sent C bodies of S MB at once (half declared by Content-Length, half chunked)
 * while `GET /version` is probed every 20 ms. Reports per run: the process's RSS before, its peak
 * (sampled every 10 ms) and VmHWM, the registrar CPU time spent, how long until every upload was
 * refused, and the /version latency (p50, p99, max).
 *
 *   bun bench/registrar-upload-flood.ts [--clients 16] [--mb 99] [--runs 3] [--db pglite|postgresql]
 *
 * `--db postgresql` uses `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` (a scratch database is made
 * and dropped); PGlite alone keeps the registrar at ~315 MB RSS.
 */
import 'reflect-metadata'
import { readFileSync } from 'node:fs'
import type { Socket } from 'node:net'
import { parseArgs } from 'node:util'
import { scratchPostgres } from '../test/support/databases.ts'
import { MiB, upload, vm } from '../test/support/hostile-upload.ts'
import { startRegistrarProcess } from '../test/support/registrar-process.ts'

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '16' },
    mb: { type: 'string', default: '99' },
    runs: { type: 'string', default: '3' },
    db: { type: 'string', default: 'pglite' },
  },
})
const clients = Number(args.clients)
const size = Number(args.mb) * MiB

/** utime + stime of `pid` in ms (/proc/<pid>/stat, clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))] ?? 0
const mb = (n: number) => (n / MiB).toFixed(0)

async function once(databaseUrl: string): Promise<Record<string, number>> {
  const { run, ports, url } = await startRegistrarProcess(databaseUrl)
  try {
    const pid = run.proc.pid
    const before = vm(pid, 'VmRSS')
    const cpu0 = cpuMs(pid)
    let peak = before
    let done = false
    const sampler = setInterval(() => {
      peak = Math.max(peak, vm(pid, 'VmRSS'))
    }, 10)
    const latencies: number[] = []
    const prober = (async () => {
      while (!done) {
        const t0 = performance.now()
        await (await fetch(`${url}/version`)).arrayBuffer()
        latencies.push(performance.now() - t0)
        await Bun.sleep(20)
      }
    })()
    const t0 = performance.now()
    const sockets = new Set<Socket>()
    const answers = await Promise.all(
      Array.from({ length: clients }, (_, i) =>
        upload(ports.registrar, i % 2 === 1, size, sockets),
      ),
    )
    const refusedMs = performance.now() - t0
    await Bun.sleep(200)
    done = true
    await prober
    clearInterval(sampler)
    return {
      rssBefore: before,
      rssPeak: Math.max(peak, vm(pid, 'VmRSS')),
      hwm: vm(pid, 'VmHWM'),
      cpuMs: cpuMs(pid) - cpu0,
      refusedMs,
      sentMax: Math.max(...answers.map((a) => a.sent)),
      p50: pct(latencies, 50),
      p99: pct(latencies, 99),
      max: Math.max(...latencies),
    }
  } finally {
    await run.stop()
  }
}

const base = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL
const results: Record<string, number>[] = []
for (let i = 0; i < Number(args.runs); i++) {
  const location = args.db === 'postgresql' && base ? await scratchPostgres(base) : undefined
  try {
    const r = await once(location?.url ?? '')
    results.push(r)
    console.log(
      `run ${i + 1}: RSS ${mb(r.rssBefore!)} → peak ${mb(r.rssPeak!)} MB (VmHWM ${mb(r.hwm!)} MB); ` +
        `registrar CPU ${r.cpuMs} ms; all ${clients} uploads refused in ${r.refusedMs!.toFixed(0)} ms ` +
        `(at most ${mb(r.sentMax!)} MB written by one client); /version p50 ${r.p50!.toFixed(1)} ms, ` +
        `p99 ${r.p99!.toFixed(1)} ms, max ${r.max!.toFixed(1)} ms`,
    )
  } finally {
    await location?.drop()
  }
}
const median = (k: string) =>
  pct(
    results.map((r) => r[k]!),
    50,
  )
console.log(
  `db=${location()} clients=${clients} size=${args.mb} MB: median peak RSS growth ${mb(median('rssPeak') - median('rssBefore'))} MB, ` +
    `registrar CPU ${median('cpuMs')} ms, refused in ${median('refusedMs').toFixed(0)} ms, /version max ${median('max').toFixed(1)} ms`,
)

function location(): string {
  return args.db === 'postgresql' && base ? 'postgresql' : 'pglite'
}
