/**
 * Registrar throughput: registrations + activations per second against the in-process registrar
 * (`startRegistrar`, real HTTP on 127.0.0.1) with software agents (`test/support/software-agent.ts`).
 *
 * The load generator runs in a second Bun process (so the agents' ActivateCredential work does not
 * share the registrar's event loop): C concurrent agents, each `POST /v2.6/agents/{id}` → software
 * TPM2_ActivateCredential → `PUT /v2.6/agents/{id}` with the auth_tag. Every answer must be 200.
 *
 *   bun bench/registrar.ts [--db pglite|postgresql] [--agents 2000] [--concurrency 32] [--runs 5] [--ek ecc|rsa]
 *     [--client-prof DIR] [--max-rows 64] [--max-in-flight 4]
 *
 * `--client-prof DIR` writes a CPU profile of each load-generator run to DIR (profile the registrar
 * side with `bun --cpu-prof bench/registrar.ts …`).
 *
 * `--db postgresql` uses `BENCH_DATABASE_URL` or `TEST_DATABASE_URL` (a server where the user may
 * CREATE DATABASE); a throwaway database is created and dropped.
 */
import 'reflect-metadata'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import postgres from 'postgres'

const { values: args } = parseArgs({
  options: {
    db: { type: 'string', default: 'pglite' },
    agents: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '32' },
    runs: { type: 'string', default: '5' },
    ek: { type: 'string', default: 'ecc' },
    client: { type: 'boolean', default: false },
    url: { type: 'string' },
    prefix: { type: 'string', default: 'bench' },
    'client-prof': { type: 'string' },
    'max-rows': { type: 'string' },
    'max-in-flight': { type: 'string' },
  },
})
const agents = Number(args.agents)
const concurrency = Number(args.concurrency)
const ekType = args.ek === 'rsa' ? 'rsa' : 'ecc'

/** The load generator (child process): prints `{"seconds":…,"ok":…,"errors":…,"cpuMs":…}`. */
async function client(): Promise<void> {
  const { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } =
    await import('../test/support/software-agent.ts')
  const url = args.url!
  // A small pool of key pairs, reused across agent ids (key generation is not what we measure).
  const pool = Array.from(
    { length: 16 },
    () => new SoftwareAgent(makeSoftwareEk(ekType), makeSoftwareAk('ecc')),
  )
  const bodies = pool.map((a) => JSON.stringify(a.body()))
  const headers = { 'content-type': 'application/json' }
  let next = 0
  let ok = 0
  let errors = 0
  const worker = async () => {
    for (;;) {
      const i = next++
      if (i >= agents) return
      const id = `${args.prefix}-${i}`
      const k = i % pool.length
      const reg = await fetch(`${url}/v2.6/agents/${id}`, {
        method: 'POST',
        headers,
        body: bodies[k],
      })
      const regJson = (await reg.json()) as { results: { blob?: string } }
      if (reg.status !== 200 || !regJson.results.blob) {
        errors++
        continue
      }
      const tag = pool[k]!.authTag(id, regJson.results.blob)
      const act = await fetch(`${url}/v2.6/agents/${id}`, {
        method: 'PUT',
        headers,
        body: JSON.stringify({ auth_tag: tag }),
      })
      await act.arrayBuffer()
      if (act.status === 200) ok++
      else errors++
    }
  }
  const t0 = performance.now()
  const cpu0 = process.cpuUsage()
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  console.log(JSON.stringify({ seconds, ok, errors, cpuMs: (cpu.user + cpu.system) / 1000 }))
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

async function main(): Promise<void> {
  const { DEFAULT_CA_SETTINGS, ensureCvCa, loadTlsMaterial, resolveTlsFiles } =
    await import('../src/ca/index.ts')
  const { loadRegistrarConfig } = await import('../src/config/index.ts')
  const { openDatabase } = await import('../src/db/index.ts')
  const { getLogger, setLogLevel } = await import('../src/log/logger.ts')
  const { startRegistrar } = await import('../src/registrar/start-registrar.ts')
  setLogLevel('ERROR')
  const dir = mkdtempSync(join(tmpdir(), 'keylime-bench-reg-'))
  let dropDb: (() => Promise<void>) | undefined
  try {
    let url = ''
    if (args.db === 'postgresql') {
      const base = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL
      if (!base) throw new Error('--db postgresql needs BENCH_DATABASE_URL or TEST_DATABASE_URL')
      const name = `kl_bench_${process.pid}`
      const admin = postgres(base, { max: 1, onnotice: () => {} })
      await admin.unsafe(`CREATE DATABASE "${name}"`)
      await admin.end()
      const u = new URL(base)
      u.pathname = `/${name}`
      url = u.toString()
      dropDb = async () => {
        const a = postgres(base, { max: 1, onnotice: () => {} })
        await a.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)
        await a.end()
      }
    }
    const database = await openDatabase({ url, keylimeDir: dir })
    await ensureCvCa({ keylimeDir: dir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
    const base = loadRegistrarConfig({
      etcDir: join(dir, 'none'),
      usrEtcDir: join(dir, 'none'),
      env: {},
      warn: () => {},
    })
    const config = { ...base, registrar: { ...base.registrar, port: 0, tls_port: 0 } }
    const r = config.registrar
    const tls = await loadTlsMaterial(
      resolveTlsFiles({
        keylimeDir: dir,
        tlsDir: 'default',
        component: 'registrar',
        serverKey: r.server_key,
        serverCert: r.server_cert,
        trustedCa: r.trusted_client_ca,
      }),
      { server: true, client: false },
    )
    const role = await startRegistrar(
      { config, keylimeDir: dir, database, tls, log: getLogger('registrar') },
      {
        certStore: { get: () => new Error('no tpm_cert_store in the benchmark') },
        batching: {
          maxRows: args['max-rows'] ? Number(args['max-rows']) : undefined,
          maxInFlight: args['max-in-flight'] ? Number(args['max-in-flight']) : undefined,
        },
      },
    )
    const httpUrl = role.servers[0]!.url
    const rates: number[] = []
    for (let run = 0; run < Number(args.runs) + 1; run++) {
      const child = Bun.spawn(
        [
          'bun',
          ...(args['client-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${args['client-prof']}`] : []),
          import.meta.path,
          '--client',
          '--url',
          httpUrl,
          '--agents',
          String(agents),
          '--concurrency',
          String(concurrency),
          '--ek',
          ekType,
          '--prefix',
          `r${run}`,
        ],
        { stdout: 'pipe', stderr: 'inherit' },
      )
      const cpu0 = process.cpuUsage()
      const out = await new Response(child.stdout).text()
      const cpu = process.cpuUsage(cpu0)
      await child.exited
      const res = JSON.parse(out.trim().split('\n').pop()!) as {
        seconds: number
        ok: number
        errors: number
        cpuMs: number
      }
      if (res.errors > 0) throw new Error(`run ${run}: ${res.errors} failed requests`)
      const rate = res.ok / res.seconds
      console.log(
        `${run === 0 ? 'warm-up' : `run ${run}`}: ${res.ok} agents in ${res.seconds.toFixed(2)} s = ${rate.toFixed(0)} registrations+activations/s; CPU per agent: registrar ${((cpu.user + cpu.system) / 1000 / res.ok).toFixed(2)} ms, load generator ${(res.cpuMs / res.ok).toFixed(2)} ms`,
      )
      if (run > 0) rates.push(rate)
    }
    console.log(
      `db=${args.db} ek=${ekType} max-rows=${args['max-rows'] ?? 'default'} max-in-flight=${args['max-in-flight'] ?? 'default'} agents=${agents} concurrency=${concurrency}: median ${median(rates).toFixed(0)} agents/s (register + activate), ${(2 * median(rates)).toFixed(0)} requests/s`,
    )
    await role.stop(1000)
    await database.close()
  } finally {
    await dropDb?.()
    rmSync(dir, { recursive: true, force: true })
  }
}

if (args.client) await client()
else await main()
