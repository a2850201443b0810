/**
 * Mirror of keylime-tests `functional/tenant-runtime-policy-sanity` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`): `keylime_tenant`'s runtime-policy commands against
 * the control plane (child process) with one simulated agent, the policies made as upstream's
 * `limeCreateTestPolicy /etc/hostname` makes them (`keylime policy create runtime --allowlist
 * --excludelist`, then `keylime policy sign runtime -p <new key> -b ecdsa` and `-b x509 -c <cert>`,
 * the public keys by `openssl ec -pubout`), served over HTTP for the `--runtime-policy-url` phases.
 *
 * Every phase is mirrored, in upstream's order: add (file, checksum, URL + checksum, ECDSA-DSSE URL
 * + key, x509-DSSE URL + key), show, delete then 404, add an agent with a named policy and update
 * it with a new named one (the agent attests, "Get Quote"), the usage errors (no name, no policy),
 * 409 on an existing name, 404 on deleting a missing one, checksum mismatches (file and URL), DSSE
 * failures (bad ECDSA envelope, bad x509 envelope, bad envelope from a URL), a malformed policy on
 * add and update (400 from the verifier), and the legacy `addallowlist` / `showallowlist` /
 * `deleteallowlist`.
 *
 * Assertions are on the exit status, the verifier's HTTP status (`--json`: `error.http_status`) and
 * the reason. Where keylime-ts words a tenant-side reason differently (its usage errors name the
 * option `--runtime-policy-name`, a DSSE failure reads "no valid DSSE signature found", a
 * malformed policy is refused by the tenant before the request, naming the JSON path, and a
 * checksum that is not 64 hex digits, upstream's `f00`, is a usage error), the
 * assertion is on keylime-ts's words and the header of the phase says so; the verifier's own 400
 * for a malformed policy is checked on the route directly.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPolicyCreateRuntime } from '../../src/policy-tools/index.ts'
import { runPolicySignRuntime } from '../../src/policy-tools/runtime-policy-cli.ts'
import { OPENSSL, openssl } from '../support/ca-helpers.ts'
import { imaEntry, runTool } from '../support/host-evidence.ts'
import { startTenantBed, type TenantBed, type TenantRun } from '../support/tenant-bed.ts'
import { untilValue } from '../support/until.ts'

if (!OPENSSL) console.log('skipping tenant-runtime-policy-sanity: no openssl')

const HOSTNAME = 'keylime-tests\n'
const BOOT_AGGREGATE = createHash('sha256').update(Buffer.alloc(320)).digest('hex')
const sha256 = (b: string | Buffer) => createHash('sha256').update(b).digest('hex')

/** The verifier's HTTP status of a failed `--json` run. */
const httpStatus = (r: TenantRun) =>
  (r.doc.error as { http_status?: number } | undefined)?.http_status

describe.skipIf(!OPENSSL)('keylime-tests functional/tenant-runtime-policy-sanity', () => {
  let bed: TenantBed
  let http: ReturnType<typeof Bun.serve>
  const dir = mkdtempSync(join(tmpdir(), 'kl-kt-rp-'))
  const at = (f: string) => join(dir, f)
  const url = (f: string) => `http://localhost:${http.port}/${f}`
  const sum = (f: string) => sha256(readFileSync(at(f)))
  const tenant = (args: string[]) => bed.tenant([...args, '--json'])
  const addPolicy = (name: string, extra: string[]) =>
    tenant(['-c', 'addruntimepolicy', '--runtime-policy-name', name, ...extra])

  beforeAll(async () => {
    bed = await startTenantBed({
      count: 1,
      seed: `kt-rp-${process.pid}`,
      env: { KEYLIME_VERIFIER_QUOTE_INTERVAL: '0.3' },
    })
    bed.agents[0]!.serveImaList(
      imaEntry('boot_aggregate', BOOT_AGGREGATE).line +
        imaEntry('/etc/hostname', sha256(HOSTNAME)).line,
    )
    // limeCreateTestPolicy /etc/hostname
    writeFileSync(
      at('allowlist.txt'),
      `${BOOT_AGGREGATE}  boot_aggregate\n${sha256(HOSTNAME)}  /etc/hostname\n`,
    )
    writeFileSync(at('excludelist.txt'), '/tmp/.*\n')
    const policy = ['--allowlist', at('allowlist.txt'), '--excludelist', at('excludelist.txt')]
    await runTool(runPolicyCreateRuntime, [...policy, '--output', at('policy.json')])
    const sign = (backend: string, out: string, extra: string[]) =>
      runTool(runPolicySignRuntime, [
        ...['-r', at('policy.json'), '-p', at(`dsse-${backend}-privkey.key`), '-b', backend],
        ...['-o', at(out), ...extra],
      ])
    await sign('ecdsa', 'policy-dsse-ecdsa.json', [])
    await sign('x509', 'policy-dsse-x509.json', ['-c', at('dsse-x509-cert.pem')])
    for (const b of ['ecdsa', 'x509']) {
      const r = openssl(
        ['ec', '-in', `dsse-${b}-privkey.key`, '-pubout', '-out', `dsse-${b}-pubkey.pub`],
        dir,
      )
      if (r.code !== 0) throw new Error(`openssl ec: ${r.out}`)
    }
    // sed 's/0/1/': the first 0 of each line becomes 1.
    const bad = (from: string, to: string) =>
      writeFileSync(
        at(to),
        readFileSync(at(from), 'utf8')
          .split('\n')
          .map((l) => l.replace('0', '1'))
          .join('\n'),
      )
    bad('policy-dsse-ecdsa.json', 'policy-dsse-ecdsa-bad.json')
    bad('policy-dsse-x509.json', 'policy-dsse-x509-bad.json')
    writeFileSync(at('empty.json'), '{}\n')
    writeFileSync(at('hostname'), HOSTNAME)
    // python3 -m http.server 8000
    http = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: (req) => new Response(Bun.file(at(new URL(req.url).pathname.slice(1)))),
    })
  }, 60_000)

  afterAll(async () => {
    http?.stop(true)
    await bed?.stop()
  })

  test('addruntimepolicy: file; file + checksum; URL + checksum; signed DSSE (ECDSA, x509) from URLs', async () => {
    expect((await addPolicy('list1', ['--runtime-policy', at('policy.json')])).code).toBe(0)
    const withSum = [
      '--runtime-policy',
      at('policy.json'),
      '--runtime-policy-checksum',
      sum('policy.json'),
    ]
    expect((await addPolicy('list2', withSum)).code).toBe(0)
    const fromUrl = [
      '--runtime-policy-url',
      url('policy.json'),
      '--runtime-policy-checksum',
      sum('policy.json'),
    ]
    expect((await addPolicy('list3', fromUrl)).code).toBe(0)
    for (const [name, b] of [
      ['list4', 'ecdsa'],
      ['list7', 'x509'],
    ] as const) {
      const r = await addPolicy(name, [
        ...['--runtime-policy-url', url(`policy-dsse-${b}.json`)],
        ...['--runtime-policy-sig-key', at(`dsse-${b}-pubkey.pub`)],
        ...['--runtime-policy-checksum', sum(`policy-dsse-${b}.json`)],
      ])
      expect({ name, code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({
        name,
        code: 0,
        err: '',
      })
    }
  })

  test('updateruntimepolicy with a malformed policy ({}) is refused', async () => {
    // keylime-ts's tenant refuses it before the request ("missing required property \"meta\"");
    // upstream's verifier answers 400 "Runtime policy is malformatted: 'meta' is a required property".
    const r = await tenant([
      '-c',
      'updateruntimepolicy',
      '--runtime-policy',
      at('empty.json'),
      '--runtime-policy-name',
      'list1',
    ])
    expect(r.code).not.toBe(0)
    expect(r.text).toContain('"meta"')
  })

  test('showruntimepolicy; deleteruntimepolicy, then 404 "Runtime policy list1 not found"', async () => {
    const show = await tenant(['-c', 'showruntimepolicy', '--runtime-policy-name', 'list1'])
    expect(show.code).toBe(0)
    expect((show.doc.results as { name: string }).name).toBe('list1')
    expect(
      (await tenant(['-c', 'deleteruntimepolicy', '--runtime-policy-name', 'list1'])).code,
    ).toBe(0)
    const gone = await tenant(['-c', 'showruntimepolicy', '--runtime-policy-name', 'list1'])
    expect(gone.code).not.toBe(0)
    expect(httpStatus(gone)).toBe(404)
    expect(gone.text).toContain('Runtime policy list1 not found')
  })

  /** `limeWaitForAgentStatus <id> 'Get Quote'` after `n` attestations. */
  const attests = async (n: number) => {
    const a = bed.agents[0]!
    await untilValue(
      async () => {
        const r = await tenant(['-c', 'cvstatus', '-u', a.uuid])
        const s = (r.doc.results as Record<string, Record<string, unknown>>)[a.uuid]!
        return s.operational_state === 'Get Quote' && Number(s.attestation_count) >= n
      },
      20_000,
      `${n} attestations`,
    )
    expect((await tenant(['-c', 'cvlist'])).text).toContain(a.uuid)
  }

  test('add an agent with the named policy list2; update it with a new named policy list8', async () => {
    const a = bed.agents[0]!
    const add = await tenant([
      ...bed.agentArgs(a),
      '--runtime-policy-name',
      'list2',
      '-f',
      at('policy.json'),
      '-c',
      'add',
    ])
    expect({ code: add.code, err: add.code === 0 ? '' : add.err }).toEqual({ code: 0, err: '' })
    await attests(1)
    const upd = await tenant([
      ...bed.agentArgs(a),
      ...['--runtime-policy-name', 'list8', '--runtime-policy', at('policy.json')],
      ...['-f', at('policy.json'), '-c', 'update'],
    ])
    expect({ code: upd.code, err: upd.code === 0 ? '' : upd.err }).toEqual({ code: 0, err: '' })
    await attests(1)
    const show = await tenant(['-c', 'showruntimepolicy', '--runtime-policy-name', 'list8'])
    expect((show.doc.results as { name: string }).name).toBe('list8')
  }, 45_000)

  test('usage errors: no --runtime-policy-name (add, show, delete), no --runtime-policy', async () => {
    // Upstream words them "runtime_policy_name is required to <verb> a runtime policy".
    const noName = await tenant(['-c', 'addruntimepolicy', '--runtime-policy', at('policy.json')])
    expect(noName.code).not.toBe(0)
    expect(noName.text).toMatch(/runtime.policy.name.* is required to add a runtime policy/)
    const noPolicy = await tenant([
      '-c',
      'addruntimepolicy',
      '--runtime-policy-name',
      'list6',
      '--tpm_policy',
      '{}',
    ])
    expect(noPolicy.code).toBe(2)
    expect(noPolicy.text).toMatch(/runtime.policy is required to add a runtime policy/)
    for (const verb of ['show', 'delete']) {
      const r = await tenant(['-c', `${verb}runtimepolicy`])
      expect(r.code, verb).not.toBe(0)
      expect(r.text).toMatch(
        new RegExp(`runtime.policy.name.* is required to ${verb} a runtime policy`),
      )
    }
  })

  test('409 on an existing name; 404 deleting a missing one', async () => {
    const dup = await addPolicy('list2', ['--runtime-policy', at('policy.json')])
    expect(httpStatus(dup)).toBe(409)
    expect(dup.text).toContain('Runtime policy with name list2 already exists')
    const missing = await tenant([
      '-c',
      'deleteruntimepolicy',
      '--runtime-policy-name',
      'nosuchlist',
    ])
    expect(httpStatus(missing)).toBe(404)
    expect(missing.text).toContain('Runtime policy nosuchlist not found')
  })

  test('checksum mismatch (file and URL): "Checksum of runtime policy does not match!"', async () => {
    // Upstream's phase passes `f00`; keylime-ts refuses a checksum that is not 64 hex digits as a
    // usage error, so the mismatch itself is asserted with a well-formed wrong digest.
    const short = await addPolicy('list10', [
      '--runtime-policy',
      at('policy.json'),
      '--runtime-policy-checksum',
      'f00',
    ])
    expect(short.code).toBe(2)
    expect(short.text).toContain('--runtime-policy-checksum must be a SHA-256 digest')
    for (const [name, src] of [
      ['list10', ['--runtime-policy', at('policy.json')]],
      ['list11', ['--runtime-policy-url', url('policy.json')]],
    ] as const) {
      const r = await addPolicy(name, [...src, '--runtime-policy-checksum', 'f00'.padEnd(64, '0')])
      expect(r.code, name).not.toBe(0)
      expect(r.text).toContain('Checksum of runtime policy does not match!')
    }
  })

  test('DSSE failures: bad ECDSA envelope, bad x509 envelope, bad envelope from a URL', async () => {
    // Upstream: "failed DSSE signature verification"; keylime-ts: "no valid DSSE signature found".
    const cases = [
      [
        'list20',
        [
          '--runtime-policy',
          at('policy-dsse-ecdsa-bad.json'),
          '--runtime-policy-sig-key',
          at('dsse-ecdsa-pubkey.pub'),
        ],
      ],
      [
        'list23',
        [
          '--runtime-policy',
          at('policy-dsse-x509-bad.json'),
          '--runtime-policy-sig-key',
          at('dsse-x509-pubkey.pub'),
        ],
      ],
      [
        'list21',
        [
          ...['--runtime-policy-url', url('policy-dsse-ecdsa-bad.json')],
          ...['--runtime-policy-sig-key', at('dsse-ecdsa-pubkey.pub')],
          ...['--runtime-policy-checksum', sum('policy-dsse-ecdsa-bad.json')],
        ],
      ],
    ] as const
    for (const [name, args] of cases) {
      const r = await addPolicy(name, [...args])
      expect(r.code, name).not.toBe(0)
      expect(r.text).toMatch(/DSSE signature/)
      const show = await tenant(['-c', 'showruntimepolicy', '--runtime-policy-name', name])
      expect(httpStatus(show), name).toBe(404)
    }
  })

  test('addruntimepolicy with a malformed policy: refused; the verifier route answers 400', async () => {
    const r = await addPolicy('bad', ['--runtime-policy', at('empty.json')])
    expect(r.code).not.toBe(0)
    expect(r.text).toContain('"meta"')
    const res = await fetch(`https://127.0.0.1:${bed.ports.verifier}/v2.6/allowlists/bad`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ runtime_policy: Buffer.from('{}').toString('base64') }),
      tls: {
        cert: readFileSync(join(bed.cvCa, 'client-cert.crt'), 'utf8'),
        key: readFileSync(join(bed.cvCa, 'client-private.pem'), 'utf8'),
        rejectUnauthorized: false,
      },
    } as RequestInit)
    expect(res.status).toBe(400)
    expect(await res.text()).toMatch(/Runtime policy is malformatted/)
  })

  test('addallowlist, showallowlist, deleteallowlist then 404', async () => {
    const add = await tenant([
      ...['-c', 'addallowlist', '--allowlist', at('allowlist.txt')],
      ...['--exclude', at('excludelist.txt'), '--allowlist-name', 'list23'],
    ])
    expect({ code: add.code, err: add.code === 0 ? '' : add.err }).toEqual({ code: 0, err: '' })
    const show = await tenant(['-c', 'showallowlist', '--allowlist-name', 'list23'])
    expect((show.doc.results as { name: string }).name).toBe('list23')
    expect((await tenant(['-c', 'deleteallowlist', '--allowlist-name', 'list23'])).code).toBe(0)
    const gone = await tenant(['-c', 'showallowlist', '--allowlist-name', 'list23'])
    expect(httpStatus(gone)).toBe(404)
    expect(gone.text).toContain('Runtime policy list23 not found')
  })
})
