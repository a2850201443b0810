/**
 * Health that tells the truth (issue "Step 2 of 6", item 5), against real listeners:
 *
 * - the registrar's `GET /health` and `GET /metrics` on its admin mTLS port: a registration and
 *   an activation move their counters, failures are counted by reason, latency by route pattern;
 *   neither endpoint is on the plain agent port;
 * - a listener that stops serving makes its role unhealthy (registrar and verifier);
 * - `keylime health` (the binary's sub-command, run as a child process) against a control plane
 *   run as `keylime` with the container's settings (both roles bound to 0.0.0.0): 0 when healthy;
 *   on PostgreSQL behind a TCP proxy, a black-holed database makes both roles' `/health` 503 and
 *   `keylime health` exit 1 naming it, and the recovery brings 0 back without a restart;
 * - `keylime health` with nothing listening exits 1 quickly ("unreachable"), with a peer that
 *   never answers within `--timeout`, and without a client certificate exits 8 naming the file.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_CA_SETTINGS, ensureCvCa } from '../src/ca/index.ts'
import { type KeylimeDatabase, openDatabase } from '../src/db/index.ts'
import type { Envelope } from '../src/http/envelope.ts'
import { makeSoftwareAk, makeSoftwareEk, SoftwareAgent } from './support/software-agent.ts'
import { createTestCa, startTestVerifier } from './support/verifier-harness.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  MAIN_TS,
  type Ports,
  spawnCollect,
} from './support/control-plane-process.ts'
import { databaseTargets, type FreshLocation } from './support/databases.ts'
import { startTcpProxy, type TcpProxy } from './support/tcp-proxy.ts'
import { startTestRegistrar, type TestRegistrar } from './support/test-registrar.ts'
import { until } from './support/until.ts'

/** The outcome of one `keylime health` run. */
interface HealthRun {
  code: number
  stdout: string
  stderr: string
  ms: number
}

/** Runs `keylime health …` (this tree's entry) with `env`. */
async function keylimeHealth(env: Record<string, string>, args: string[] = []): Promise<HealthRun> {
  const started = performance.now()
  const proc = Bun.spawn([process.execPath, MAIN_TS, 'health', ...args], {
    env,
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ])
  return { code, stdout, stderr, ms: performance.now() - started }
}

describe('registrar /health and /metrics (admin mTLS port)', () => {
  let db: KeylimeDatabase
  let registrar: TestRegistrar

  beforeAll(async () => {
    db = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
    registrar = await startTestRegistrar({ database: db })
  })
  afterAll(async () => {
    await registrar?.stop()
    await db?.close()
  })

  const mtls = (path: string) =>
    fetch(`${registrar.httpsUrl}${path}`, {
      tls: { ...registrar.client, checkServerIdentity: () => undefined },
    })
  const metric = async (line: string): Promise<number> => {
    const text = await (await mtls('/metrics')).text()
    const found = text.split('\n').find((l) => l.startsWith(`${line} `))
    if (found === undefined) throw new Error(`no sample ${line} in:\n${text}`)
    return Number(found.slice(line.length + 1))
  }

  test('/health: 200 Success with the database and both listeners serving', async () => {
    const res = await mtls('/health')
    expect(res.status).toBe(200)
    const body = (await res.json()) as Envelope
    expect(body.status).toBe('Success')
    expect(body.results).toMatchObject({
      status: 'ok',
      database: { location: 'memory://', state: 'up' },
      listeners: [
        { name: 'registrar', url: registrar.httpUrl, state: 'serving' },
        { name: 'registrar (tls)', url: registrar.httpsUrl, state: 'serving' },
      ],
    })
  })

  test('/metrics: registration, activation and failures by reason move the counters', async () => {
    const res = await mtls('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4')
    const before = {
      reg: await metric('keylime_registrar_registrations_total'),
      act: await metric('keylime_registrar_activations_total'),
      tag: await metric('keylime_registrar_failures_total{reason="bad_auth_tag"}'),
      bad: await metric('keylime_registrar_failures_total{reason="malformed_request"}'),
      big: await metric('keylime_registrar_failures_total{reason="too_large"}'),
    }
    expect(before).toEqual({ reg: 0, act: 0, tag: 0, bad: 0, big: 0 })

    const id = 'health-metrics-agent'
    const agent = new SoftwareAgent(makeSoftwareEk('ecc'), makeSoftwareAk('ecc'))
    const reg = await registrar.send('POST', `/v2.6/agents/${id}`, agent.body())
    expect(reg.status).toBe(200)
    const blob = reg.json.results.blob as string
    const wrong = await registrar.send('PUT', `/v2.6/agents/${id}`, { auth_tag: '00'.repeat(48) })
    expect(wrong.status).toBe(400)
    const act = await registrar.send('PUT', `/v2.6/agents/${id}`, {
      auth_tag: agent.authTag(id, blob),
    })
    expect(act.status).toBe(200)
    const malformed = await fetch(`${registrar.httpUrl}/v2.6/agents/x`, {
      method: 'POST',
      body: '{not json',
    })
    expect(malformed.status).toBe(400)
    const huge = await fetch(`${registrar.httpUrl}/v2.6/agents/x`, {
      method: 'POST',
      body: 'x'.repeat(2 * 1024 * 1024),
    })
    expect(huge.status).toBe(413)

    expect(await metric('keylime_registrar_registrations_total')).toBe(1)
    expect(await metric('keylime_registrar_activations_total')).toBe(1)
    expect(await metric('keylime_registrar_failures_total{reason="bad_auth_tag"}')).toBe(1)
    expect(await metric('keylime_registrar_failures_total{reason="malformed_request"}')).toBe(1)
    expect(await metric('keylime_registrar_failures_total{reason="too_large"}')).toBe(1)
    const route = 'route="/v2.6/agents/:agent_id"'
    expect(
      await metric(`keylime_registrar_http_request_seconds_count{${route},method="POST"}`),
    ).toBe(3)
    expect(
      await metric(`keylime_registrar_http_request_seconds_count{${route},method="PUT"}`),
    ).toBe(2)
    const text = await (await mtls('/metrics')).text()
    expect(text).not.toContain(id) // route patterns, never raw paths
    expect(await metric('process_resident_memory_bytes')).toBeGreaterThan(0)
  })

  test('neither endpoint is served on the plain agent port', async () => {
    for (const path of ['/health', '/metrics']) {
      expect((await fetch(`${registrar.httpUrl}${path}`)).status, path).toBe(404)
    }
  })

  test('a listener that stops serving makes /health 503 with the reason', async () => {
    const plain = registrar.role.servers[0]!
    await plain.stop(0)
    const res = await mtls('/health')
    expect(res.status).toBe(503)
    const body = (await res.json()) as Envelope<{ status: string; reason: string }>
    expect(body.status).toBe('Unhealthy')
    expect(body.results.status).toBe('unhealthy')
    expect(body.results.reason).toBe(`listener registrar (${registrar.httpUrl}) closed`)
  })
})

test('verifier /health: 503 once its listener is closed', async () => {
  const db = await openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
  const verifier = await startTestVerifier(db, await createTestCa())
  try {
    expect((await verifier.app.request('/health')).status).toBe(200)
    const url = verifier.servers[0]!.url
    await verifier.servers[0]!.stop(0)
    const res = await verifier.app.request('/health')
    expect(res.status).toBe(503)
    const body = (await res.json()) as Envelope<{ reason: string }>
    expect(body.results.reason).toBe(`listener verifier (${url}) closed`)
  } finally {
    await verifier.stop(0)
    await db.close()
  }
})

describe('keylime health without a control plane', () => {
  let env: Record<string, string>
  let dir: string
  let silent: Server

  beforeAll(async () => {
    const base = await controlPlaneEnv()
    env = base.env
    dir = base.dir
    silent = createServer(() => {}) // accepts, never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  })
  afterAll(() => {
    silent?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  test('no client certificate: exit 8 naming the file', async () => {
    const r = await keylimeHealth(env)
    expect(r.code).toBe(8)
    expect(r.stderr).toContain(join(dir, 'cv_ca', 'client-cert.crt'))
    expect(r.stdout).toBe('')
  })

  test('nothing listening: exit 1 at once, each role "unreachable"', async () => {
    await ensureCvCa({ keylimeDir: dir, settings: { ...DEFAULT_CA_SETTINGS }, ip: '127.0.0.1' })
    const r = await keylimeHealth(env)
    expect(r.code).toBe(1)
    const lines = r.stdout.trim().split('\n')
    expect(lines).toHaveLength(2)
    expect(lines[0]).toStartWith(`verifier: unreachable: cannot reach https://127.0.0.1:`)
    expect(lines[1]).toStartWith(`registrar: unreachable: cannot reach https://127.0.0.1:`)
    expect(r.ms).toBeLessThan(4000) // refused at once, not the 5 s timeout
    const one = await keylimeHealth(env, ['--registrar'])
    expect(one.stdout).toStartWith('registrar: unreachable')
    expect(one.stdout).not.toContain('verifier')
  })

  test('a peer that never answers: exit 1 within --timeout', async () => {
    const port = (silent.address() as { port: number }).port
    const r = await keylimeHealth({ ...env, KEYLIME_VERIFIER_PORT: String(port) }, [
      '--verifier',
      '--timeout',
      '1',
    ])
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(/^verifier: unreachable: .*(timed out|no answer within 1 s)/)
    expect(r.ms).toBeLessThan(3500)
  })
})

/** A `keylime` control plane (both roles) as the container image runs it: bound to 0.0.0.0. */
async function startControlPlane(
  extra: Record<string, string> = {},
): Promise<{ run: ChildRun; env: Record<string, string>; ports: Ports; dir: string }> {
  const { env: base, ports, dir } = await controlPlaneEnv()
  const env = {
    ...base,
    KEYLIME_VERIFIER_IP: '0.0.0.0',
    KEYLIME_REGISTRAR_IP: '0.0.0.0',
    ...extra,
  }
  const run = spawnCollect([process.execPath, MAIN_TS], env)
  await run.waitFor(/keylime control plane started/, 60_000).catch((err) => {
    if (run.proc.exitCode === null) run.proc.kill('SIGKILL')
    throw err
  })
  return { run, env, ports, dir }
}

describe('keylime health against a running control plane (embedded database)', () => {
  let plane: Awaited<ReturnType<typeof startControlPlane>>

  beforeAll(async () => {
    plane = await startControlPlane()
  }, 90_000)
  afterAll(async () => {
    await plane?.run.stop()
    if (plane) rmSync(plane.dir, { recursive: true, force: true })
  })

  test('exit 0, one "ok" line a role', async () => {
    const r = await keylimeHealth(plane.env)
    expect(r.stderr).toBe('')
    expect(r.stdout).toBe('verifier: ok\nregistrar: ok\n')
    expect(r.code).toBe(0)
    expect((await keylimeHealth(plane.env, ['--verifier'])).stdout).toBe('verifier: ok\n')
  })
})

const postgresql = databaseTargets().find((t) => t.name === 'postgresql')
if (postgresql === undefined) {
  console.log('skip: health through a PostgreSQL outage (set TEST_DATABASE_URL)')
}

describe.skipIf(postgresql === undefined)('health through a PostgreSQL outage', () => {
  let location: FreshLocation
  let proxy: TcpProxy
  let plane: Awaited<ReturnType<typeof startControlPlane>>
  let scratch: string

  beforeAll(async () => {
    location = await (postgresql as NonNullable<typeof postgresql>).freshLocation()
    const u = new URL(location.url)
    proxy = await startTcpProxy({ host: u.hostname, port: Number(u.port || 5432) })
    const url = proxy.url(location.url)
    plane = await startControlPlane({
      KEYLIME_VERIFIER_DATABASE_URL: url,
      KEYLIME_REGISTRAR_DATABASE_URL: url,
      KEYLIME_VERIFIER_DATABASE_TIMEOUT: '1',
      KEYLIME_REGISTRAR_DATABASE_TIMEOUT: '1',
    })
    scratch = mkdtempSync(join(tmpdir(), 'kl-health-'))
  }, 90_000)
  afterAll(async () => {
    await proxy?.heal()
    await plane?.run.stop()
    await proxy?.close()
    await location?.drop()
    if (plane) rmSync(plane.dir, { recursive: true, force: true })
    if (scratch) rmSync(scratch, { recursive: true, force: true })
  }, 30_000)

  /** Both roles' `/health` over mTLS with the cv_ca client certificate. */
  async function roleHealth(): Promise<{ status: number; reason?: string }[]> {
    const ca = join(plane.dir, 'cv_ca')
    const tls = {
      cert: Bun.file(join(ca, 'client-cert.crt')),
      key: Bun.file(join(ca, 'client-private.pem')),
      ca: Bun.file(join(ca, 'cacert.crt')),
      checkServerIdentity: () => undefined,
    }
    return Promise.all(
      [plane.ports.verifier, plane.ports.registrarTls].map(async (port) => {
        const res = await fetch(`https://127.0.0.1:${port}/health`, { tls } as RequestInit)
        const body = (await res.json()) as Envelope<{ reason?: string }>
        return { status: res.status, reason: body.results.reason }
      }),
    )
  }

  test('database black-holed: both /health 503 and exit 1; healed: 200 and exit 0', async () => {
    expect((await keylimeHealth(plane.env)).code).toBe(0)
    expect((await roleHealth()).map((h) => h.status)).toEqual([200, 200])

    proxy.blackhole()
    let down: HealthRun | undefined
    await until(
      async () => {
        down = await keylimeHealth(plane.env, ['--timeout', '2'])
        return down.code === 1 && !down.stdout.includes(': ok')
      },
      20_000,
      () => `keylime health reporting the outage; last:\n${down?.stdout}${down?.stderr}`,
    )
    const lines = (down as HealthRun).stdout.trim().split('\n')
    expect(lines[0]).toStartWith('verifier: unhealthy: database unavailable: ')
    expect(lines[1]).toStartWith('registrar: unhealthy: database unavailable: ')
    const during = await roleHealth()
    expect(during.map((h) => h.status)).toEqual([503, 503])
    for (const h of during) expect(h.reason).toStartWith('database unavailable: ')

    await proxy.heal()
    let up: HealthRun | undefined
    await until(
      async () => {
        up = await keylimeHealth(plane.env, ['--timeout', '2'])
        return up.code === 0
      },
      20_000,
      () => `keylime health reporting the recovery; last:\n${up?.stdout}${up?.stderr}`,
    )
    expect((up as HealthRun).stdout).toBe('verifier: ok\nregistrar: ok\n')
    expect((await roleHealth()).map((h) => h.status)).toEqual([200, 200])
  }, 60_000)
})
