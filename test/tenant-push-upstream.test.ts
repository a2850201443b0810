/**
 * Our `keylime_tenant --push-model` against UPSTREAM Keylime's verifier in push mode
 * (`[verifier] mode = push`, sqlite) and upstream's registrar, both run from a source tree as
 * /work/shared/reference/run-upstream.md describes (Debian's python3 and packages). A simulated
 * agent (test/support/fleet) registers and activates with upstream's registrar; the tenant then
 * enrols it (`add`), reads it (`cvstatus` → `attestation_status: PENDING`), reactivates it
 * (upstream answers 500 to `PATCH /v3.0/agents/:id`, so the tenant falls back to the v2 PUT) and
 * deletes it.
 *
 * Needs `KEYLIME_UPSTREAM_SRC` = a keylime checkout (7.14.x, e.g. from the `keylime/keylime`
 * snapshot) and `/usr/bin/python3` with tornado, sqlalchemy, alembic, …; skips with the reason
 * otherwise (CI cannot fetch upstream). Ports 19431–19434.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runTenant } from './support/run-tenant.ts'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { until } from './support/until.ts'

const PY = '/usr/bin/python3'
const SRC = process.env.KEYLIME_UPSTREAM_SRC ?? ''
const PORTS = { verifier: 19431, registrar: 19432, registrarTls: 19433, zmq: 19434 }

function skipReason(): string | undefined {
  if (SRC === '') return 'KEYLIME_UPSTREAM_SRC is not set (a keylime 7.14 source tree)'
  if (!existsSync(join(SRC, 'keylime/cmd/verifier.py')))
    return `${SRC} is not a keylime source tree (no keylime/cmd/verifier.py)`
  const probe = spawnSync(PY, ['-c', 'import tornado, sqlalchemy, alembic, lark, zmq, psutil'], {
    encoding: 'utf8',
  })
  if (probe.status !== 0)
    return `${PY} lacks upstream's dependencies (apt-get install python3-tornado python3-sqlalchemy …): ${probe.stderr?.trim().split('\n').pop()}`
  return undefined
}

const skip = skipReason()
if (skip !== undefined) console.log(`skipping tenant push tests against upstream: ${skip}`)

let dir = ''
let pyEnv: Record<string, string> = {}
let tenantEnv: Record<string, string> = {}
const services: ChildProcess[] = []
let fleet: Fleet | undefined

/** Sets `key = value` lines of an upstream config file. */
function edit(file: string, values: Record<string, string | number>): void {
  let text = readFileSync(file, 'utf8')
  for (const [k, v] of Object.entries(values)) {
    const re = new RegExp(`^${k} = .*$`, 'gm')
    if (!re.test(text)) throw new Error(`${file} has no option ${k}`)
    text = text.replace(re, `${k} = ${v}`)
  }
  writeFileSync(file, text)
}

/** Starts `python3 -m keylime.cmd.<name>` in its own process group; resolves once it listens. */
async function startService(name: 'verifier' | 'registrar'): Promise<void> {
  const log = join(dir, `${name}.log`)
  const child = spawn(PY, ['-m', `keylime.cmd.${name}`], {
    cwd: join(dir, 'work'),
    env: pyEnv,
    detached: true,
    stdio: ['ignore', openSync(log, 'a'), openSync(log, 'a')],
  })
  services.push(child)
  await until(
    () =>
      /Listening on 127\.0\.0\.1:\d+/.test(readFileSync(log, 'utf8')) || child.exitCode !== null,
    30_000,
    `upstream ${name} to listen`,
  )
  if (child.exitCode !== null)
    throw new Error(`upstream ${name} exited: ${readFileSync(log, 'utf8').slice(-2000)}`)
}

/** Upstream's main process ignores SIGTERM; its workers drain on it. The group is ours alone. */
async function stopService(child: ChildProcess): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null) return
  const group = -child.pid
  try {
    process.kill(group, 'SIGTERM')
    await until(() => child.exitCode !== null, 8_000, 'upstream to stop').catch(() =>
      process.kill(group, 'SIGKILL'),
    )
  } catch {
    // already gone
  }
}

beforeAll(async () => {
  if (skip !== undefined) return
  dir = mkdtempSync(join(tmpdir(), 'kl-upstream-push-'))
  const etc = join(dir, 'etc')
  mkdirSync(etc)
  mkdirSync(join(dir, 'work'))
  pyEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/root',
    PYTHONPATH: SRC,
    KEYLIME_DIR: join(dir, 'work'),
  }
  for (const c of ['verifier', 'registrar', 'tenant', 'ca', 'logging'])
    pyEnv[`KEYLIME_${c.toUpperCase()}_CONFIG`] = join(etc, `${c}.conf`)
  const conv = spawnSync(
    PY,
    [
      '-m',
      'keylime.cmd.convert_config',
      '--defaults',
      '--out',
      etc,
      '--templates',
      join(SRC, 'templates'),
    ],
    { cwd: SRC, env: pyEnv, encoding: 'utf8' },
  )
  if (conv.status !== 0) throw new Error(`convert_config failed: ${conv.stderr}`)
  edit(join(etc, 'verifier.conf'), {
    port: PORTS.verifier,
    registrar_port: PORTS.registrarTls,
    mode: 'push',
    zmq_port: PORTS.zmq,
  })
  edit(join(etc, 'registrar.conf'), { port: PORTS.registrar, tls_port: PORTS.registrarTls })
  await startService('verifier') // creates cv_ca, which the registrar and the tenant use
  await startService('registrar')
  fleet = await startFleet({
    count: 1,
    caCertPem: readFileSync(join(dir, 'work/cv_ca/cacert.crt'), 'utf8'),
    listen: 'ports',
    seed: `upstream-push-${process.pid}`,
  })
  const reg = await fleet.registerAll(`http://127.0.0.1:${PORTS.registrar}`)
  if (reg.ok !== 1)
    throw new Error(`registration with upstream's registrar failed: ${reg.firstError}`)
  const tenantConf = join(dir, 'tenant.conf')
  writeFileSync(tenantConf, '[tenant]\n')
  tenantEnv = {
    PATH: pyEnv.PATH!,
    HOME: pyEnv.HOME!,
    KEYLIME_DIR: join(dir, 'work'),
    KEYLIME_TENANT_CONFIG: tenantConf,
    KEYLIME_TENANT_VERIFIER_PORT: String(PORTS.verifier),
    KEYLIME_TENANT_REGISTRAR_PORT: String(PORTS.registrarTls),
    KEYLIME_TENANT_REQUIRE_EK_CERT: 'False',
    KEYLIME_TENANT_RETRY_INTERVAL: '0.2',
    KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
  }
}, 90_000)

afterAll(async () => {
  await fleet?.stop()
  for (const s of services.reverse()) await stopService(s)
})

async function tenant(args: string[]) {
  const { code, out, err } = await runTenant(args, tenantEnv)
  return { code, out, err, doc: () => JSON.parse(out) as { results: Record<string, unknown> } }
}

describe.skipIf(skip !== undefined)(
  'tenant --push-model against upstream 7.14 (push verifier)',
  () => {
    test('add, cvstatus (PENDING), reactivate, delete', async () => {
      const uuid = fleet!.agents[0]!.uuid
      const add = await tenant(['-c', 'add', '-u', uuid, '--push-model', '--json'])
      expect({ code: add.code, err: add.code === 0 ? '' : add.err }).toEqual({ code: 0, err: '' })
      expect(add.doc().results).toMatchObject({ push_model: true, attestation_status: 'PENDING' })

      const st = await tenant(['-c', 'cvstatus', '-u', uuid, '--push-model', '--json'])
      expect(st.code).toBe(0)
      const status = st.doc().results[uuid] as Record<string, unknown>
      expect(status).not.toHaveProperty('operational_state')
      expect(status).toMatchObject({
        v: null,
        ip: null,
        port: null,
        attestation_status: 'PENDING',
        attestation_period: '2s',
        maximum_attestation_interval: '10s',
      })

      // Upstream 7.14 answers 500 to PATCH /v3.0/agents/:id; its v2 PUT /reactivate re-enables a
      // push agent (accept_attestations = true).
      const re = await tenant(['-c', 'reactivate', '-u', uuid, '--json'])
      expect({ code: re.code, err: re.code === 0 ? '' : re.err }).toMatchObject({ code: 0 })
      expect(re.doc().results).toMatchObject({ push_model: true })
      expect(String(re.doc().results.request)).toStartWith('PUT /v2.')
      expect(re.err).toContain('using PUT /reactivate')

      const list = await tenant(['-c', 'cvlist', '--json'])
      expect(JSON.stringify(list.doc().results)).toContain(uuid)

      const del = await tenant(['-c', 'delete', '-u', uuid])
      expect(del.code).toBe(0)
      expect((await tenant(['-c', 'cvstatus', '-u', uuid])).code).toBe(4)
    }, 60_000)
  },
)
