/**
 * `keylime_tenant` end to end: the real control plane in a child process (own KEYLIME_DIR, cv_ca,
 * PGlite), simulated agents from test/support/fleet registered with its registrar and serving the agent
 * API over mTLS, and the tenant run in-process through `main()` (as `keylime_tenant`), plus the
 * same command lines against the compiled binary when `dist/keylime` exists.
 *
 * Independent checks: the agent's own record of what it decrypted (the payload bytes, the cert zip
 * verified with `openssl verify` against the CA), its identity-quote counter (push model), and the
 * verifier's answers read back by other commands.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash, createPublicKey, X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { unzipSync } from 'fflate'
import { type Fleet, startFleet } from './support/fleet/fleet.ts'
import { main } from '../src/cli/main.ts'
import { runTenant } from './support/run-tenant.ts'
import { emptyRuntimePolicy } from '../src/ima/runtime-policy.ts'
import {
  type ChildRun,
  controlPlaneEnv,
  freePort,
  MAIN_TS,
  spawnCollect,
} from './support/control-plane-process.ts'

const ZERO32 = '00'.repeat(32)
const DIST = resolve(import.meta.dir, '../dist/keylime_tenant')

let cp: ChildRun
let fleet: Fleet
let env: Record<string, string>
let work: string
let keylimeDir: string
let closedPort: number

interface Run {
  code: number
  out: string
  err: string
  /** The parsed stdout (for --json runs). */
  json: () => Record<string, unknown>
}

async function tenant(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const r = await runTenant(args, { ...env, ...extraEnv })
  return { ...r, json: () => JSON.parse(r.out) as Record<string, unknown> }
}

beforeAll(async () => {
  const cpEnv = await controlPlaneEnv()
  keylimeDir = cpEnv.dir
  work = mkdtempSync(join(tmpdir(), 'kl-tenant-'))
  closedPort = await freePort()
  const script = join(work, 'ek-check.sh')
  writeFileSync(
    script,
    '#!/bin/sh\n[ -n "$AGENT_UUID" ] && [ -n "$EK_TPM" ] && [ -n "$TPM_CERT_STORE" ] || exit 3\necho "$EK" | grep -q "BEGIN PUBLIC KEY" || exit 4\nexit 0\n',
  )
  chmodSync(script, 0o755)
  writeFileSync(join(work, 'ek-reject.sh'), '#!/bin/sh\necho rejected >&2\nexit 1\n')
  chmodSync(join(work, 'ek-reject.sh'), 0o755)
  env = {
    ...cpEnv.env,
    KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.5',
    KEYLIME_TENANT_REGISTRAR_PORT: String(cpEnv.ports.registrarTls),
    KEYLIME_TENANT_VERIFIER_PORT: String(cpEnv.ports.verifier),
    KEYLIME_TENANT_REQUIRE_EK_CERT: 'False',
    KEYLIME_TENANT_EK_CHECK_SCRIPT: script,
    KEYLIME_TENANT_ACCEPT_TPM_SIGNING_ALGS: "['ecdsa', 'rsassa']",
    KEYLIME_TENANT_RETRY_INTERVAL: '0.2',
    KEYLIME_TENANT_EXPONENTIAL_BACKOFF: 'False',
    KEYLIME_TENANT_MAX_RETRIES: '30',
    KEYLIME_TENANT_REQUEST_TIMEOUT: '10',
    KEYLIME_CA_PASSWORD: 'tenant-test-pw',
  }
  cp = spawnCollect([process.execPath, MAIN_TS], env)
  await cp.waitFor(/keylime control plane started/, 30_000)
  fleet = await startFleet({
    count: 6,
    caCertPem: readFileSync(join(keylimeDir, 'cv_ca', 'cacert.crt'), 'utf8'),
    listen: 'ports',
    seed: `tenant-e2e-${process.pid}`,
  })
  const reg = await fleet.registerAll(`http://127.0.0.1:${cpEnv.ports.registrar}`)
  if (reg.ok !== 6) throw new Error(`registration failed: ${reg.firstError}`)
}, 60_000)

afterAll(async () => {
  await fleet?.stop()
  await cp?.stop()
})

describe('registrar commands', () => {
  test('reglist prints the uuids (human) and one JSON document (--json)', async () => {
    const human = await tenant(['-c', 'reglist'])
    expect(human.code).toBe(0)
    expect(human.out).toContain('Agent list from Registrar')
    for (const a of fleet.agents) expect(human.out).toContain(a.uuid)
    const r = await tenant(['-c', 'reglist', '--json'])
    expect(r.code).toBe(0)
    const doc = r.json()
    expect(doc.command).toBe('reglist')
    expect(doc.exit_code).toBe(0)
    expect((doc.results as { uuids: string[] }).uuids.sort()).toEqual(
      fleet.agents.map((a) => a.uuid).sort(),
    )
    expect(r.out.trim().split('\n')).toHaveLength(1)
  })

  test('regstatus shows the registration with operational_state Registered; unknown → 4', async () => {
    const a = fleet.agents[0]!
    const r = await tenant(['-c', 'regstatus', '-u', a.uuid, '--json'])
    expect(r.code).toBe(0)
    const st = (r.json().results as Record<string, Record<string, unknown>>)[a.uuid]!
    expect(st.operational_state).toBe('Registered')
    expect(st.aik_tpm).toBe(Buffer.from(a.tpm.akTpm2b).toString('base64'))
    const missing = await tenant(['-c', 'regstatus', '-u', 'no-such-agent', '--json'])
    expect(missing.code).toBe(4)
    expect(missing.json()).toMatchObject({
      command: 'regstatus',
      exit_code: 4,
      error: { code: 'ERR_TENANT_NOT_FOUND', http_status: 404 },
    })
  })
})

describe('usage, input and connectivity errors', () => {
  test('usage errors exit 2 with a message naming the option', async () => {
    const cases: string[][] = [
      ['-c', 'regstatus', '-u', 'bad/uuid'],
      ['-c', 'reglist', '--no-such-flag'],
      ['-c', 'frobnicate'],
      ['-c', 'add', '-u', 'x', '--tpm_policy', `{"10":"${ZERO32}"}`],
      ['-c', 'add', '-u', 'x', '--tpm_policy', `{"16":"${ZERO32}"}`],
      ['-c', 'add', '-u', 'x', '--verify'],
      ['-c', 'add', '-u', 'x', '-f', 'a', '--cert', 'default'],
      ['-c', 'add', '-u', 'x', '--include', 'dir'],
      ['-c', 'reglist', '-rp', '99999'],
      ['-c', 'addruntimepolicy', '--runtime-policy-name', 'p'],
      ['-c', 'add', '--runtime-policy-url', 'http://127.0.0.1/x'],
    ]
    for (const args of cases) {
      const r = await tenant([...args, '--json'])
      expect({ args, code: r.code }).toEqual({ args, code: 2 })
      expect((r.json().error as { code: string }).code).toBe('ERR_TENANT_USAGE')
    }
    const pcr = await tenant([
      '-c',
      'add',
      '-u',
      fleet.agents[0]!.uuid,
      '--tpm_policy',
      `{"3":"${ZERO32}"}`,
      '--mb-policy-name',
      'x',
      '--mb-policy',
      join(work, 'nothing.json'),
    ])
    expect(pcr.code).toBe(2)
    expect(pcr.err).toContain('PCR 3 is specified in "tpm_policy"')
  })

  test('unreachable registrar or verifier exits 3 and names the option to check', async () => {
    const reg = await tenant(['-c', 'reglist', '-rp', String(closedPort)])
    expect(reg.code).toBe(3)
    expect(reg.err).toContain('registrar_ip/registrar_port')
    const cv = await tenant(['-c', 'cvlist', '-vp', String(closedPort), '--json'])
    expect(cv.code).toBe(3)
    expect((cv.json().error as { code: string }).code).toBe('ERR_TENANT_UNREACHABLE')
  })

  test('missing client certificate exits 8 naming the file and option', async () => {
    const r = await tenant(['-c', 'reglist'], { KEYLIME_TENANT_CLIENT_CERT: '/nonexistent/c.crt' })
    expect(r.code).toBe(8)
    expect(r.err).toContain('/nonexistent/c.crt')
    expect(r.err).toContain('client_cert')
  })

  test('a KEYLIME_DIR without cv_ca exits 8 naming the certificate path and the directory used', async () => {
    const empty = join(work, 'no-control-plane-here')
    const r = await tenant(['-c', 'reglist'], { KEYLIME_DIR: empty })
    expect(r.code).toBe(8)
    expect(r.err).toContain(join(empty, 'cv_ca', 'client-cert.crt'))
    expect(r.err).toContain(`KEYLIME_DIR is ${empty}`)
  })

  test('invalid input files exit 6, nothing is enrolled', async () => {
    const a = fleet.agents[5]!
    const bad = join(work, 'bad-policy.json')
    writeFileSync(bad, JSON.stringify({ ...emptyRuntimePolicy(), digests: { '/bin/x': 'nope' } }))
    const r = await tenant(['-c', 'add', '-u', a.uuid, '--runtime-policy', bad])
    expect(r.code).toBe(6)
    expect(r.err).toContain('$.digests')
    const unreadable = await tenant(['-c', 'add', '-u', a.uuid, '-f', join(work, 'missing.bin')])
    expect(unreadable.code).toBe(6)
    const big = join(work, 'big.bin')
    writeFileSync(big, Buffer.alloc(4096, 7))
    const over = await tenant(['-c', 'add', '-u', a.uuid, '-f', big], {
      KEYLIME_TENANT_MAX_PAYLOAD_SIZE: '1000',
    })
    expect(over.code).toBe(6)
    expect(over.err).toContain('exceeds max size 1000')
    const st = await tenant(['-c', 'cvstatus', '-u', a.uuid])
    expect(st.code).toBe(4)
  })

  test('runtime policy from a URL with a wrong checksum exits 6', async () => {
    const body = JSON.stringify(emptyRuntimePolicy())
    const srv = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response(body) })
    try {
      const r = await tenant([
        '-c',
        'addruntimepolicy',
        '--runtime-policy-name',
        'from-url',
        '--runtime-policy-url',
        `http://127.0.0.1:${srv.port}/p.json`,
        '--runtime-policy-checksum',
        'ab'.repeat(32),
      ])
      expect(r.code).toBe(6)
      expect(r.err).toContain('Checksum of runtime policy does not match')
      const ok = await tenant([
        '-c',
        'addruntimepolicy',
        '--runtime-policy-name',
        'from-url',
        '--runtime-policy-url',
        `http://127.0.0.1:${srv.port}/p.json`,
        '--runtime-policy-checksum',
        createHash('sha256').update(body).digest('hex'),
      ])
      expect(ok.code).toBe(0)
      expect(
        (await tenant(['-c', 'deleteruntimepolicy', '--runtime-policy-name', 'from-url'])).code,
      ).toBe(0)
    } finally {
      srv.stop(true)
    }
  })
})

describe('enrolment', () => {
  test('add -f delivers exactly the file, --verify confirms the key; cvstatus/cvlist/bulkinfo/status see it', async () => {
    const a = fleet.agents[0]!
    const file = join(work, 'payload.bin')
    const bytes = Buffer.concat([Buffer.from('secret payload\n'), Buffer.alloc(300, 0xa5)])
    writeFileSync(file, bytes)
    const r = await tenant([
      '-v',
      '127.0.0.1',
      '-t',
      '127.0.0.1',
      '-tp',
      String(a.contactPort),
      '-u',
      a.uuid,
      '-f',
      file,
      '--verify',
      '--tpm_policy',
      `{"15":"${ZERO32}"}`,
      '-c',
      'add',
      '--json',
    ])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    expect(r.json().results).toMatchObject({ agent_id: a.uuid, payload: 'file', verified: true })
    expect(a.payload).toBeDefined()
    expect(Buffer.from(a.payload!).equals(bytes)).toBe(true)
    expect(r.err).not.toContain(bytes.toString('base64').slice(0, 24))

    const st = await tenant(['-c', 'cvstatus', '-u', a.uuid, '--json'])
    expect(st.code).toBe(0)
    const status = (st.json().results as Record<string, Record<string, unknown>>)[a.uuid]!
    expect(typeof status.operational_state).toBe('string')
    expect(status.tpm_policy).toContain('0x8000')
    const list = await tenant(['-c', 'cvlist', '--json'])
    expect(JSON.stringify(list.json().results)).toContain(a.uuid)
    const bulk = await tenant(['-c', 'bulkinfo', '--json'])
    expect(Object.keys(bulk.json().results as object)).toContain(a.uuid)
    const both = await tenant(['-c', 'status', '-u', a.uuid, '--json'])
    expect(both.code).toBe(0)
    expect(
      typeof (both.json().results as Record<string, { operational_state: unknown }>)[a.uuid]!
        .operational_state,
    ).toBe('string')

    const again = await tenant(['-c', 'add', '-u', a.uuid, '-f', file, '--json'])
    expect(again.code).toBe(7)
    expect((again.json().error as { hint: string }).hint).toContain('update')
  }, 30_000)

  test('add --cert default delivers a zip whose certificates verify with openssl against the CA', async () => {
    const a = fleet.agents[1]!
    const inc = join(work, 'include')
    mkdirSync(inc, { recursive: true })
    writeFileSync(join(inc, 'autorun.sh'), '#!/bin/sh\necho hi\n')
    const r = await tenant([
      '-v',
      '127.0.0.1',
      '-t',
      '127.0.0.1',
      '-u',
      a.uuid,
      '--cert',
      'default',
      '--include',
      inc,
      '--verify',
      '-c',
      'add',
    ])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    expect(a.payload).toBeDefined()
    const files = unzipSync(a.payload!)
    for (const f of [
      `${a.uuid}-cert.crt`,
      `${a.uuid}-private.pem`,
      `${a.uuid}-public.pem`,
      'cacert.crt',
      'cacrl.der',
      'cacrl.pem',
      'RevocationNotifier-cert.crt',
      'autorun.sh',
    ])
      expect({ f, present: files[f] !== undefined }).toEqual({ f, present: true })
    const out = join(work, 'unzipped')
    mkdirSync(out, { recursive: true })
    for (const [n, d] of Object.entries(files)) writeFileSync(join(out, n), d)
    const ca = join(keylimeDir, 'ca', 'cacert.crt')
    for (const cert of [`${a.uuid}-cert.crt`, 'RevocationNotifier-cert.crt']) {
      const v = Bun.spawnSync(['openssl', 'verify', '-CAfile', ca, join(out, cert)])
      expect(v.stdout.toString()).toContain(': OK')
    }
    const cert = new X509Certificate(files[`${a.uuid}-cert.crt`]!)
    expect(cert.subject).toContain(`CN=${a.uuid}`)
    const priv = createPublicKey(Buffer.from(files[`${a.uuid}-private.pem`]!).toString())
    expect(
      priv
        .export({ type: 'spki', format: 'der' })
        .equals(cert.publicKey.export({ type: 'spki', format: 'der' })),
    ).toBe(true)
    const st = await tenant(['-c', 'cvstatus', '-u', a.uuid, '--json'])
    const meta = JSON.parse(
      (st.json().results as Record<string, { meta_data: string }>)[a.uuid]!.meta_data,
    ) as { cert_serial: number; subject: string }
    expect(meta.cert_serial).toBe(Number.parseInt(cert.serialNumber, 16))
  }, 30_000)

  test('--verify failure stops the agent on the verifier and exits 5; reactivate and delete work', async () => {
    const a = fleet.agents[2]!
    const file = join(work, 'p2.bin')
    writeFileSync(file, 'x')
    // A PCR15 value the agent does not have: the verifier never delivers V, K is never derived.
    const r = await tenant(
      ['-u', a.uuid, '-f', file, '--verify', '--tpm_policy', `{"15":"${'ff'.repeat(32)}"}`],
      { KEYLIME_TENANT_MAX_RETRIES: '4' },
    )
    expect(r.code).toBe(5)
    expect(r.err).toContain('Failed key derivation')
    expect(a.hasKey).toBe(false)
    const st = await tenant(['-c', 'cvstatus', '-u', a.uuid, '--json'])
    const state = (st.json().results as Record<string, { operational_state: string }>)[a.uuid]!
      .operational_state
    expect(['Tenant Quote Failed', 'Invalid Quote']).toContain(state)

    expect((await tenant(['-c', 'reactivate', '-u', a.uuid])).code).toBe(0)
    const del = await tenant(['-c', 'delete', '-u', a.uuid, '--json'])
    expect(del.code).toBe(0)
    expect(del.json().results).toEqual({ agent_id: a.uuid, deleted: true })
    expect((await tenant(['-c', 'cvstatus', '-u', a.uuid])).code).toBe(4)
    expect((await tenant(['-c', 'delete', '-u', a.uuid])).code).toBe(4)
    expect((await tenant(['-c', 'reactivate', '-u', a.uuid])).code).toBe(4)
  }, 30_000)

  test('keylime_userdata_encrypt output delivered with -k/-p, then update re-enrols', async () => {
    const a = fleet.agents[3]!
    const dir = join(work, 'ude')
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'secret.txt'), 'pre-encrypted secret')
    const prev = process.cwd()
    process.chdir(dir)
    let code: number | 'running'
    try {
      code = await main('keylime_userdata_encrypt', ['secret.txt'], {
        stdout: () => {},
        stderr: () => {},
        env,
      })
    } finally {
      process.chdir(prev)
    }
    expect(code).toBe(0)
    const r = await tenant([
      '-u',
      a.uuid,
      '-k',
      join(dir, 'content_keys.txt'),
      '-p',
      join(dir, 'content_payload.txt'),
      '--verify',
      '-c',
      'add',
    ])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    expect(Buffer.from(a.payload!).toString()).toBe('pre-encrypted secret')
    const up = await tenant(['-c', 'update', '-u', a.uuid, '-f', join(dir, 'secret.txt')])
    expect({ code: up.code, err: up.code === 0 ? '' : up.err }).toEqual({ code: 0, err: '' })
    expect((await tenant(['-c', 'cvstatus', '-u', a.uuid])).code).toBe(0)
  }, 30_000)

  test('--push-model enrols without contacting the agent', async () => {
    const a = fleet.agents[4]!
    const before = a.stats.identityQuotes
    const r = await tenant(['-c', 'add', '-u', a.uuid, '--push-model', '--json'])
    expect(r.code).toBe(0)
    expect(r.json().results).toMatchObject({ push_model: true, payload: 'none' })
    expect(a.stats.identityQuotes).toBe(before)
    const st = await tenant(['-c', 'cvstatus', '-u', a.uuid, '--push-model', '--json'])
    expect(st.code).toBe(0)
    expect((st.json().results as Record<string, object>)[a.uuid]).not.toHaveProperty(
      'operational_state',
    )
    expect((await tenant(['-c', 'delete', '-u', a.uuid])).code).toBe(0)
  })

  test('EK checks: require_ek_cert without an EK certificate and a rejecting ek_check_script exit 5', async () => {
    const a = fleet.agents[5]!
    const noCert = await tenant(['-c', 'add', '-u', a.uuid, '--json'], {
      KEYLIME_TENANT_REQUIRE_EK_CERT: 'True',
    })
    expect(noCert.code).toBe(5)
    expect((noCert.json().error as { message: string }).message).toContain('No EK cert provided')
    const rejected = await tenant(['-c', 'add', '-u', a.uuid], {
      KEYLIME_TENANT_EK_CHECK_SCRIPT: join(work, 'ek-reject.sh'),
    })
    expect(rejected.code).toBe(5)
    expect(rejected.err).toContain('rejected the EK')
    expect((await tenant(['-c', 'cvstatus', '-u', a.uuid])).code).toBe(4)
    const badSig = await tenant(['-c', 'add', '-u', a.uuid], {
      KEYLIME_TENANT_ACCEPT_TPM_SIGNING_ALGS: "['rsassa']",
    })
    expect(badSig.code).toBe(5)
    expect(badSig.err).toContain('unaccepted signing algorithm')
  })
})

describe('policies', () => {
  test('runtime policy CRUD', async () => {
    const file = join(work, 'rp.json')
    writeFileSync(file, JSON.stringify(emptyRuntimePolicy()))
    const add = ['-c', 'addruntimepolicy', '--runtime-policy-name', 'rp1', '--runtime-policy', file]
    expect((await tenant(add)).code).toBe(0)
    expect((await tenant(add)).code).toBe(7)
    const show = await tenant(['-c', 'showruntimepolicy', '--runtime-policy-name', 'rp1', '--json'])
    expect(show.code).toBe(0)
    expect(show.json().results).toMatchObject({ name: 'rp1' })
    const list = await tenant(['-c', 'listruntimepolicy', '--json'])
    expect(JSON.stringify(list.json().results)).toContain('rp1')
    const upd = await tenant([
      '-c',
      'updateruntimepolicy',
      '--runtime-policy-name',
      'rp1',
      '--runtime-policy',
      file,
    ])
    expect(upd.code).toBe(0)
    expect((await tenant(['-c', 'deleteruntimepolicy', '--runtime-policy-name', 'rp1'])).code).toBe(
      0,
    )
    expect((await tenant(['-c', 'showruntimepolicy', '--runtime-policy-name', 'rp1'])).code).toBe(4)
    const legacy = join(work, 'allowlist.txt')
    writeFileSync(legacy, `${'ab'.repeat(32)}  /usr/bin/true\n`)
    const excl = join(work, 'exclude.txt')
    writeFileSync(excl, '/tmp/.*\n')
    const al = await tenant([
      '-c',
      'addallowlist',
      '--allowlist-name',
      'legacy',
      '--allowlist',
      legacy,
      '--exclude',
      excl,
    ])
    expect({ code: al.code, err: al.code === 0 ? '' : al.err }).toEqual({ code: 0, err: '' })
    const shown = await tenant(['-c', 'showallowlist', '--allowlist-name', 'legacy', '--json'])
    const policy = JSON.parse(
      (shown.json().results as { runtime_policy: string }).runtime_policy,
    ) as { digests: Record<string, string[]>; excludes: string[] }
    expect(policy.digests['/usr/bin/true']).toEqual(['ab'.repeat(32)])
    expect(policy.excludes).toContain('/tmp/.*')
    expect((await tenant(['-c', 'deleteallowlist', '--allowlist-name', 'legacy'])).code).toBe(0)
  })

  test('measured boot policy CRUD', async () => {
    const file = join(work, 'mb.json')
    writeFileSync(file, JSON.stringify({ scrtm_and_bios: [], keys: {} }))
    const add = ['-c', 'addmbpolicy', '--mb-policy-name', 'mb1', '--mb-policy', file]
    expect((await tenant(add)).code).toBe(0)
    const show = await tenant(['-c', 'showmbpolicy', '--mb-policy-name', 'mb1', '--json'])
    expect(show.json().results).toMatchObject({ name: 'mb1' })
    const list = await tenant(['-c', 'listmbpolicy', '--json'])
    expect(JSON.stringify(list.json().results)).toContain('mb1')
    expect(
      (await tenant(['-c', 'updatembpolicy', '--mb-policy-name', 'mb1', '--mb-policy', file])).code,
    ).toBe(0)
    expect((await tenant(['-c', 'deletembpolicy', '--mb-policy-name', 'mb1'])).code).toBe(0)
    expect((await tenant(['-c', 'showmbpolicy', '--mb-policy-name', 'mb1'])).code).toBe(4)
    const bad = join(work, 'mb-bad.json')
    writeFileSync(bad, '{not json')
    expect(
      (await tenant(['-c', 'addmbpolicy', '--mb-policy-name', 'x', '--mb-policy', bad])).code,
    ).toBe(6)
  })
})

describe('regdelete and the compiled binary', () => {
  test('the compiled keylime_tenant runs the same command lines', async () => {
    if (!existsSync(DIST)) {
      console.warn(`skipped: ${DIST} missing (run bash scripts/build.sh)`)
      return
    }
    // Asynchronous spawn: the simulated agents answer from this process's event loop.
    const run = async (args: string[]) => {
      const p = Bun.spawn([DIST, ...args], { env, stdout: 'pipe', stderr: 'pipe' })
      const [out, err, code] = await Promise.all([
        new Response(p.stdout).text(),
        new Response(p.stderr).text(),
        p.exited,
      ])
      return { code, out, err }
    }
    const list = await run(['-c', 'reglist', '--json'])
    expect(list.code).toBe(0)
    expect(JSON.parse(list.out).results.uuids).toContain(fleet.agents[0]!.uuid)
    expect((await run(['-c', 'cvstatus', '-u', fleet.agents[0]!.uuid])).code).toBe(0)
    expect((await run(['-c', 'regstatus', '-u', 'nope'])).code).toBe(4)
    expect((await run(['-c', 'reglist', '-rp', String(closedPort)])).code).toBe(3)
    expect((await run(['-c', 'bogus'])).code).toBe(2)
    const file = join(work, 'bin-payload.txt')
    writeFileSync(file, 'from the binary')
    const a = fleet.agents[5]!
    const add = await run([
      '-v',
      '127.0.0.1',
      '-t',
      '127.0.0.1',
      '-u',
      a.uuid,
      '-f',
      file,
      '--verify',
      '-c',
      'add',
    ])
    expect({ code: add.code, err: add.code === 0 ? '' : add.err }).toEqual({ code: 0, err: '' })
    expect(Buffer.from(a.payload!).toString()).toBe('from the binary')
    expect((await run(['-c', 'delete', '-u', a.uuid])).code).toBe(0)
  }, 30_000)

  test('regdelete removes the agent from the registrar', async () => {
    const a = fleet.agents[5]!
    const r = await tenant(['-c', 'regdelete', '-u', a.uuid, '--json'])
    expect(r.code).toBe(0)
    const list = await tenant(['-c', 'reglist', '--json'])
    expect((list.json().results as { uuids: string[] }).uuids).not.toContain(a.uuid)
    expect((await tenant(['-c', 'regdelete', '-u', a.uuid])).code).toBe(4)
  })
})
