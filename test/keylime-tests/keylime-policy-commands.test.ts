/**
 * Mirror of keylime-tests `functional/keylime-policy-commands` (RedHat-SP-Security/keylime-tests
 * `ab163590314546d90cdcd7a89e56d3d0b562f4ec`): `keylime-policy` (here `keylime policy`, the same
 * dispatcher entry) on upstream's inputs (`test/fixtures/keylime-tests/keylime-policy-commands/`;
 * its `mb_log_secureboot.bin` is `test/fixtures/mb/keylime-tests/binary_bios_measurements`), with
 * upstream's assertions (digests, excludes, keys and keyrings found in the output; signatures
 * checked with openssl as `limeVerifyRuntimePolicySignature` does: DSSE PAE, `openssl dgst
 * -verify`).
 *
 * Mirrored: `-h`/`--help` of every (sub)command;
 * `create runtime` with `--base-policy`,
 * `--allowlist`, `--excludelist`, `-m`, `--show-legacy-allowlist`,
 * `--add-ima-signature-verification-key` (a certificate, a PEM key, a DER key), `--rootfs`,
 * `--algo` (sha1…sha512), `--ima-buf`, `--keyrings`, `--ignored-keyrings`; `sign runtime` with the
 * ECDSA and x509 backends and their failures (bad or missing policy, missing or RSA or bogus key,
 * x509 without `-c`); `create measured-boot` with and without Secure Boot and `-i`.
 *
 * Not mirrored: `--ima-measurement-list` without a path (reads this host's
 * `/sys/kernel/security/ima`; the `--base-policy` phase passes upstream's `ima_log.txt` with `-m`
 * instead); `--ramdisk-dir` (needs upstream's `setup-initrd-tests`; initramfs input is covered by
 * `test/ima-ramdisk.test.ts`); every RPM repository phase and `--max-workers` (RPM repositories are
 * not supported: docs/compatibility.md).
 *
 * @module
 */
import { beforeAll, describe, expect, test } from 'bun:test'
import { createHash, createPublicKey } from 'node:crypto'
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runPolicyCommand } from '../../src/cli/run-policy-tool.ts'
import { OPENSSL, openssl } from '../support/ca-helpers.ts'

if (!OPENSSL) console.log('skipping keylime-policy-commands: no openssl')

const DATA = join(import.meta.dir, '../fixtures/keylime-tests/keylime-policy-commands')
const MB_LOG_SECUREBOOT = join(
  import.meta.dir,
  '../fixtures/mb/keylime-tests/binary_bios_measurements',
)
const TEST_DIGEST = 'f2ca1bb6c7e907d06dafe4687e579fce76b37e4e93b7605022da52e6ccc26fd2'

/** A run of `keylime-policy <args>` in `cwd`. */
interface Run {
  code: number
  out: string
  err: string
}

describe.skipIf(!OPENSSL)('keylime-tests functional/keylime-policy-commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kl-kt-policy-'))
  const at = (...p: string[]) => join(dir, ...p)

  async function policy(args: string[], cwd = dir): Promise<Run> {
    let out = ''
    let err = ''
    const code = await runPolicyCommand(args, {
      cwd,
      stdout: { write: (s: string) => (out += s) },
      stderr: { write: (s: string) => (err += s) },
    })
    return { code, out, err }
  }

  /** `keylime-policy create runtime <args> -o policy.json`, then `jq <field> policy.json`. */
  async function created(args: string[]): Promise<Record<string, unknown>> {
    const r = await policy(['create', 'runtime', ...args, '-o', 'policy.json'])
    expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
    return JSON.parse(readFileSync(at('policy.json'), 'utf8'))
  }

  const must = (args: string[], cwd = dir) => {
    const r = openssl(args, cwd)
    if (r.code !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.out}`)
    return r.out
  }

  beforeAll(() => {
    cpSync(DATA, dir, { recursive: true })
    // certgen: a CA, a certificate it signs, and two more RSA key pairs (one used as DER).
    for (const k of ['ca', 'cert', 'pem', 'der']) must(['genrsa', '-out', `${k}.key`, '2048'])
    must([
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-subj',
      '/CN=CA',
      '-days',
      '1',
      '-out',
      'ca.crt',
    ])
    must(['req', '-new', '-key', 'cert.key', '-subj', '/CN=Test', '-out', 'cert.csr'])
    must([
      'x509',
      '-req',
      '-in',
      'cert.csr',
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-days',
      '1',
      '-out',
      'cert.crt',
    ])
    must(['pkey', '-in', 'der.key', '-outform', 'DER', '-out', 'der.der'])
  })

  /** Exit codes of `keylime-policy <cmd> -h` and `--help`. */
  const helpCodes = async (cmds: string[][]) => {
    const codes: Record<string, number> = {}
    for (const cmd of cmds) {
      for (const flag of ['-h', '--help'])
        codes[[...cmd, flag].join(' ')] = (await policy([...cmd, flag])).code
    }
    return codes
  }
  const zeros = (codes: Record<string, number>) =>
    Object.fromEntries(Object.keys(codes).map((k) => [k, 0]))

  test('-h / --help of keylime-policy and create measured-boot', async () => {
    const codes = await helpCodes([[], ['create', 'measured-boot']])
    expect(codes).toEqual(zeros(codes))
  })

  test('-h / --help of create, create runtime, sign, sign runtime', async () => {
    const codes = await helpCodes([
      ['create'],
      ['create', 'runtime'],
      ['sign'],
      ['sign', 'runtime'],
    ])
    expect(codes).toEqual(zeros(codes))
  })

  test('--base-policy extends a base policy (with upstream ima_log.txt as -m)', async () => {
    const p = await created(['-m', 'ima_log.txt', '--base-policy', 'base_policy.json'])
    expect((p.digests as Record<string, string[]>).test).toContain(TEST_DIGEST)
    expect(Object.keys(p.digests as object)).toContain('boot_aggregate')
  })

  test('--allowlist converts an allowlist; --excludelist an exclude list', async () => {
    const a = await created(['--allowlist', 'allowlist.txt'])
    expect((a.digests as Record<string, string[]>).test).toContain(TEST_DIGEST)
    const e = await created(['--excludelist', 'excludelist.txt'])
    expect(JSON.stringify(e.excludes)).toContain('test')
  })

  test('-m IMA_MEASUREMENT_LIST; --show-legacy-allowlist', async () => {
    const m = await created(['-m', 'ima_log.txt'])
    expect(JSON.stringify(m.digests)).toContain('test')
    const legacy = await policy([
      'create',
      'runtime',
      '--show-legacy-allowlist',
      '--allowlist',
      'allowlist.txt',
    ])
    expect(legacy.code).toBe(0)
    expect(legacy.out).toContain(`${TEST_DIGEST}  test`)
  })

  test('--add-ima-signature-verification-key: a certificate, a PEM key and a DER key', async () => {
    const p = await created([
      ...['--add-ima-signature-verification-key', 'cert.crt'],
      ...['--add-ima-signature-verification-key', 'pem.key'],
      ...['--add-ima-signature-verification-key', 'der.der'],
    ])
    const keys = JSON.stringify(p['verification-keys'])
    for (const k of ['cert', 'pem', 'der']) {
      const pub = must(['pkey', '-in', `${k}.key`, '-pubout'])
        .replace(/-----[^-]+-----/g, '')
        .replace(/\n/g, '')
      expect(pub.length).toBeGreaterThan(0)
      expect(keys).toContain(pub)
    }
  })

  test('--rootfs includes a tree; --algo sha1…sha512 digests it', async () => {
    const p = await created(['--rootfs', 'rootfs'])
    const digests = JSON.stringify(p.digests)
    expect(digests).toContain('test')
    expect(digests).toContain('nested/nested')
    for (const algo of ['sha1', 'sha256', 'sha384', 'sha512']) {
      const r = await policy(['create', 'runtime', '--rootfs', 'rootfs', '--algo', algo])
      expect({ algo, code: r.code }).toEqual({ algo, code: 0 })
      for (const f of ['test', 'nested/nested']) {
        expect(r.out).toContain(
          createHash(algo)
            .update(readFileSync(at('rootfs', f)))
            .digest('hex'),
        )
      }
    }
  })

  test('--ima-buf; --keyrings; --ignored-keyrings', async () => {
    const buf = await policy(['create', 'runtime', '--ima-buf', '-m', 'ima_log.txt'])
    expect(buf.out).toContain('571016c9f57363c80e08dd4346391c4e70227e41b0247b8a3aa2240a178d3d14')
    const k = JSON.stringify((await created(['-m', 'ima_log.txt', '--keyrings'])).keyrings)
    expect(k).toContain('.ima')
    expect(k).toContain('a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a')
    expect(k).toContain('.test')
    expect(k).toContain('68b0115a1ccce90691f62df3053bd6601ad258e02ee6b5cee07f2a19144f253f')
    const ig = await created(['-m', 'ima_log.txt', '--keyrings', '--ignored-keyrings', '.ima'])
    expect((ig.ima as { ignored_keyrings: string[] }).ignored_keyrings).toContain('.ima')
    const kept = JSON.stringify(ig.keyrings)
    expect(kept).toContain('.test')
    expect(kept).toContain('68b0115a1ccce90691f62df3053bd6601ad258e02ee6b5cee07f2a19144f253f')
    expect(kept).not.toContain('.ima')
    expect(kept).not.toContain('a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a')
  })

  /** `limeVerifyRuntimePolicySignature <policy> <privkey or cert>`: DSSE PAE checked by openssl. */
  function signatureVerifies(cwd: string, envelope: string, keyOrCert: string): boolean {
    const env = JSON.parse(readFileSync(join(cwd, envelope), 'utf8')) as {
      payload: string
      payloadType: string
      signatures: { sig: string }[]
    }
    const body = Buffer.from(env.payload, 'base64')
    const pae = Buffer.concat([
      Buffer.from(
        `DSSEv1 ${Buffer.byteLength(env.payloadType)} ${env.payloadType} ${body.byteLength} `,
      ),
      body,
    ])
    const text = readFileSync(join(cwd, keyOrCert), 'utf8')
    const pub = text.includes('CERTIFICATE')
      ? openssl(['x509', '-pubkey', '-noout', '-in', keyOrCert], cwd).out
      : String(createPublicKey(text).export({ type: 'spki', format: 'pem' }))
    writeFileSync(join(cwd, 'pub.pem'), pub)
    writeFileSync(join(cwd, 'pae.bin'), pae)
    writeFileSync(join(cwd, 'sig.bin'), Buffer.from(env.signatures[0]!.sig, 'base64'))
    const v = ['dgst', '-verify', 'pub.pem', '-keyform', 'PEM', '-sha256', '-signature', 'sig.bin']
    return openssl([...v, '-binary', 'pae.bin'], cwd).code === 0
  }

  for (const backend of ['ecdsa', 'x509'] as const) {
    test(`sign runtime with the ${backend} DSSE backend`, async () => {
      const cwd = at(`sign-${backend}`)
      mkdirSync(cwd)
      const sign = (args: string[]) => policy(['sign', 'runtime', '-b', backend, ...args], cwd)
      const c = (n: string) => (backend === 'x509' ? ['-c', `x509-${n}`] : [])
      expect(
        (await policy(['create', 'runtime', '-m', '../ima_log.txt', '-o', 'test-policy.json'], cwd))
          .code,
      ).toBe(0)
      writeFileSync(join(cwd, 'bad-policy'), 'foobar\n')
      const refused = async (n: string, args: string[]) => {
        const r = await sign([...c(n), ...args, '-o', `signed-${n}.json`])
        expect({ n, code: r.code === 0 ? 0 : 1 }).toEqual({ n, code: 1 })
        expect(existsSync(join(cwd, `signed-${n}.json`))).toBe(false)
        if (backend === 'x509') expect(existsSync(join(cwd, `x509-${n}`))).toBe(false)
      }
      await refused('bad', ['-r', 'bad-policy'])
      await refused('non-existing', ['-r', 'NON-EXISTING'])
      if (backend === 'x509') {
        // No certificate output file.
        const r = await sign(['-r', 'test-policy.json', '-o', 'signed-01.json'])
        expect(r.code).not.toBe(0)
        expect(existsSync(join(cwd, 'signed-01.json'))).toBe(false)
      }
      // No key: one is created as keylime-ecdsa-key.pem.
      expect(
        (await sign([...c('02'), '-r', 'test-policy.json', '-o', 'signed-02.json'])).code,
      ).toBe(0)
      expect(signatureVerifies(cwd, 'signed-02.json', 'keylime-ecdsa-key.pem')).toBe(true)
      if (backend === 'x509') expect(signatureVerifies(cwd, 'signed-02.json', 'x509-02')).toBe(true)
      await refused('03', ['-k', 'NON-EXISTING', '-r', 'test-policy.json'])
      if (backend === 'ecdsa') {
        expect(
          (await sign(['-p', 'new-key.pem', '-r', 'test-policy.json', '-o', 'signed-new.json']))
            .code,
        ).toBe(0)
        expect(signatureVerifies(cwd, 'signed-new.json', 'new-key.pem')).toBe(true)
      }
      must(['genrsa', '-out', 'rsa2048-privkey.pem', '2048'], cwd)
      await refused('04', ['-k', 'rsa2048-privkey.pem', '-r', 'test-policy.json'])
      must(['ecparam', '-out', 'prime256v1-privkey.pem', '-name', 'prime256v1', '-genkey'], cwd)
      expect(
        (
          await sign([
            ...c('05'),
            '-k',
            'prime256v1-privkey.pem',
            '-r',
            'test-policy.json',
            '-o',
            'signed-05.json',
          ])
        ).code,
      ).toBe(0)
      expect(signatureVerifies(cwd, 'signed-05.json', 'prime256v1-privkey.pem')).toBe(true)
      if (backend === 'x509') expect(signatureVerifies(cwd, 'signed-05.json', 'x509-05')).toBe(true)
      writeFileSync(join(cwd, 'dummy.key'), 'foobar\n')
      await refused('06', ['-k', 'dummy.key', '-r', 'test-policy.json'])
    })
  }

  test('create measured-boot: Secure Boot log; plain log with -i; -i ignored on a Secure Boot log', async () => {
    const mb = async (log: string, extra: string[]) => {
      const r = await policy([
        'create',
        'measured-boot',
        '-e',
        log,
        ...extra,
        '-o',
        'mb-policy.json',
      ])
      expect({ code: r.code, err: r.code === 0 ? '' : r.err }).toEqual({ code: 0, err: '' })
      return JSON.parse(readFileSync(at('mb-policy.json'), 'utf8')) as {
        has_secureboot: boolean
        kernels: unknown
      }
    }
    const sb = await mb(MB_LOG_SECUREBOOT, [])
    expect(sb.has_secureboot).toBe(true)
    expect(JSON.stringify(sb.kernels)).toContain(
      '0xb7aa67ab83a8ebe76393e0cf8ba25f9e7b5dc734740cf87e68640f391c207732',
    )
    const plain = await mb('mb_log.bin', ['-i'])
    expect(plain.has_secureboot).toBe(false)
    expect(JSON.stringify(plain.kernels)).toContain(
      '0x5f5457bd9d68d9e1c6443c16b6c416be9531f3bca4754a30f5cfdf8038ce01a2',
    )
    expect((await mb(MB_LOG_SECUREBOOT, ['-i'])).has_secureboot).toBe(true)
  })
})
