/**
 * Integration tests of `keylime_ca` run as a separate process (`keylime ca …`, the dispatcher behind `keylime_ca`), and
 * of the cv_ca bootstrap raced by two processes.
 * @module
 */
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs'
import { X509Certificate } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { unzipSync } from 'fflate'
import { runCaCli } from '../src/ca/run-ca-cli.ts'
import { resolveCaSettings } from '../src/ca/ca-settings.ts'

const MAIN = resolve(import.meta.dir, '../src/main.ts')
const ENSURE = resolve(import.meta.dir, '../src/ca/ensure-cv-ca.ts')
const SETTINGS = resolve(import.meta.dir, '../src/ca/ca-settings.ts')
const OPENSSL = Bun.which('openssl')
if (!OPENSSL) console.log('skipping openssl checks in ca-cli tests: openssl not found in PATH')

function cli(args: string[], env: Record<string, string>) {
  const r = Bun.spawnSync([process.execPath, MAIN, 'ca', ...args], {
    env: { ...process.env, KEYLIME_CA_CONFIG: '/nonexistent/ca.conf', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  return { code: r.exitCode, out: r.stdout.toString(), err: r.stderr.toString() }
}

function openssl(args: string[], cwd: string) {
  const r = Bun.spawnSync([OPENSSL ?? 'openssl', ...args], { cwd, stdout: 'pipe', stderr: 'pipe' })
  return { code: r.exitCode, out: r.stdout.toString() + r.stderr.toString() }
}

describe('keylime_ca as a process', () => {
  const keylimeDir = mkdtempSync(join(tmpdir(), 'keylime-cli-'))
  const env = {
    KEYLIME_DIR: keylimeDir,
    KEYLIME_CA_PASSWORD: 'cli-pw',
    KEYLIME_CA_CERT_ORG_UNIT: 'ou-cli',
  }
  const ca = join(keylimeDir, 'ca')

  test('init → create → pkg → revoke in $KEYLIME_DIR/ca', () => {
    const init = cli(['-c', 'init'], env)
    expect(init.err).not.toContain('    at ')
    expect(init.code).toBe(0)
    expect(init.out).toContain(`CA certificate created successfully in ${ca}`)
    expect(statSync(ca).mode & 0o777).toBe(0o700)
    expect(new X509Certificate(readFileSync(join(ca, 'cacert.crt'))).subject).toContain('OU=ou-cli')

    const create = cli(['--command', 'create', '--name', 'node-a'], env)
    expect(create.code).toBe(0)
    expect(create.out).toContain('serial 2')
    expect(statSync(join(ca, 'node-a-private.pem')).mode & 0o777).toBe(0o600)

    const pkg = cli(['-c', 'pkg', '-n', 'node-a'], env)
    expect(pkg.code).toBe(0)
    const zip = unzipSync(readFileSync(join(ca, 'node-a-pkg.zip')))
    expect(Object.keys(zip).sort()).toEqual(
      [
        'cacert.crt',
        'cacrl.der',
        'cacrl.pem',
        'node-a-cert.crt',
        'node-a-private.pem',
        'node-a-public.pem',
      ].sort(),
    )
    expect(Buffer.from(zip['node-a-private.pem'] ?? []).toString()).toContain(
      'ENCRYPTED PRIVATE KEY',
    )
    const insecure = cli(['-c', 'pkg', '-n', 'node-a', '-i'], env)
    expect(insecure.code).toBe(0)
    expect(insecure.err).toContain('unprotected')
    const zip2 = unzipSync(readFileSync(join(ca, 'node-a-pkg.zip')))
    expect(Buffer.from(zip2['node-a-private.pem'] ?? []).toString()).toContain('BEGIN PRIVATE KEY')

    const revoke = cli(['-c', 'revoke', '-n', 'node-a'], env)
    expect(revoke.code).toBe(0)
    if (OPENSSL) {
      const v = openssl(
        [
          'verify',
          '-crl_check',
          '-CRLfile',
          'cacrl.pem',
          '-CAfile',
          'cacert.crt',
          'node-a-cert.crt',
        ],
        ca,
      )
      expect(v.code).not.toBe(0)
      expect(v.out).toContain('certificate revoked')
    }
  })

  test('wrong password → exit 1 with a one-line error, no stack trace', () => {
    const r = cli(['-c', 'create', '-n', 'x'], { ...env, KEYLIME_CA_PASSWORD: 'bad' })
    expect(r.code).toBe(1)
    expect(r.err).toContain('invalid password for the CA keystore')
    expect(r.err).not.toContain('    at ')
    expect(r.err.trim().split('\n')).toHaveLength(1)
  })

  test('usage errors → exit 2; -h → exit 0', () => {
    expect(cli(['-c', 'create'], env).code).toBe(2)
    expect(cli(['-c', 'frobnicate'], env).code).toBe(2)
    expect(cli([], env).code).toBe(2)
    expect(cli(['--bogus'], env).code).toBe(2)
    expect(cli(['-c', 'create', '-n', '../etc'], env).code).toBe(2)
    expect(cli(['-c', 'import-priv'], env).code).toBe(2)
    const help = cli(['-h'], env)
    expect(help.code).toBe(0)
    expect(help.out).toContain('init,create,pkg,revoke')
  })

  test('-d selects the directory; create without init fails with a hint', () => {
    const other = join(keylimeDir, 'elsewhere')
    const r = cli(['-c', 'create', '-n', 'a', '-d', other], env)
    expect(r.code).toBe(1)
    expect(r.err).toContain('keylime_ca -c init')
  })
})

describe('runCaCli in-process', () => {
  test('password "default" uses readPassword when given (prompt path)', async () => {
    const keylimeDir = mkdtempSync(join(tmpdir(), 'keylime-cli-pw-'))
    const settings = resolveCaSettings({ password: 'default' })
    let asked = 0
    const out: string[] = []
    const ctx = {
      settings,
      keylimeDir,
      stdout: (s: string) => out.push(s),
      stderr: (s: string) => out.push(s),
      readPassword: async () => {
        asked++
        return 'typed-pw'
      },
    }
    expect(await runCaCli(['-c', 'init'], ctx)).toBe(0)
    expect(await runCaCli(['-c', 'create', '-n', 'n1'], ctx)).toBe(0)
    expect(asked).toBe(2)
    const wrong = await runCaCli(['-c', 'create', '-n', 'n2'], {
      ...ctx,
      readPassword: async () => 'other',
    })
    expect(wrong).toBe(1)
    const empty = await runCaCli(['-c', 'create', '-n', 'n2'], {
      ...ctx,
      readPassword: async () => '',
    })
    expect(empty).toBe(1)
    expect(out.join('')).toContain('You must specify a password!')
  })

  test('init refuses to replace an existing CA unless --force is given', async () => {
    const keylimeDir = mkdtempSync(join(tmpdir(), 'keylime-cli-force-'))
    const settings = resolveCaSettings({ password: 'p' })
    const out: string[] = []
    const ctx = { settings, keylimeDir, stdout: () => {}, stderr: (s: string) => out.push(s) }
    const caCert = join(keylimeDir, 'ca', 'cacert.crt')
    expect(await runCaCli(['-c', 'init'], ctx)).toBe(0)
    expect(await runCaCli(['-c', 'create', '-n', 'n1'], ctx)).toBe(0)
    const before = readFileSync(caCert, 'utf8')
    expect(await runCaCli(['-c', 'init'], ctx)).toBe(1)
    expect(out.join('')).toContain('--force')
    expect(readFileSync(caCert, 'utf8')).toBe(before)
    expect(existsSync(join(keylimeDir, 'ca', 'n1-cert.crt'))).toBe(true)
    expect(await runCaCli(['-c', 'init', '--force'], ctx)).toBe(0)
    expect(readFileSync(caCert, 'utf8')).not.toBe(before)
  })

  test('import-priv via -f and -s', async () => {
    const keylimeDir = mkdtempSync(join(tmpdir(), 'keylime-cli-imp-'))
    const settings = resolveCaSettings({ password: 'p' })
    const quiet = { settings, keylimeDir, stdout: () => {}, stderr: () => {} }
    expect(await runCaCli(['-c', 'init'], quiet)).toBe(0)
    // A foreign key is refused.
    expect(await runCaCli(['-c', 'create', '-n', 'k'], quiet)).toBe(0)
    const keyFile = join(keylimeDir, 'ca', 'k-private.pem')
    expect(await runCaCli(['-c', 'import-priv', '-f', keyFile, '-s', '7'], quiet)).toBe(1)
    expect(
      await runCaCli(['-c', 'import-priv', '-f', join(keylimeDir, 'nope.pem'), '-s', '7'], quiet),
    ).toBe(1)
  })
})

describe('cv_ca bootstrap raced by two processes', () => {
  test('both succeed and agree on one CA', async () => {
    const keylimeDir = mkdtempSync(join(tmpdir(), 'keylime-race2-'))
    const code = `import 'reflect-metadata'
const { ensureCvCa } = await import(${JSON.stringify(ENSURE)})
const { resolveCaSettings } = await import(${JSON.stringify(SETTINGS)})
const r = await ensureCvCa({ keylimeDir: ${JSON.stringify(keylimeDir)}, settings: resolveCaSettings(), hostname: 'h' })
console.log(JSON.stringify(r.created))`
    const procs = [0, 1].map(() =>
      Bun.spawn([process.execPath, '--eval', code], {
        cwd: resolve(import.meta.dir, '..'),
        stdout: 'pipe',
        stderr: 'pipe',
      }),
    )
    const outs = await Promise.all(
      procs.map(async (p) => ({ code: await p.exited, out: await new Response(p.stdout).text() })),
    )
    for (const o of outs) expect(o.code).toBe(0)
    const created = outs.map(
      (o) => JSON.parse(o.out.trim().split('\n').pop() ?? '{}') as { ca: boolean },
    )
    expect(created.filter((c) => c.ca)).toHaveLength(1)
    const d = join(keylimeDir, 'cv_ca')
    const caCert = new X509Certificate(readFileSync(join(d, 'cacert.crt')))
    for (const leaf of ['server-cert.crt', 'client-cert.crt']) {
      expect(new X509Certificate(readFileSync(join(d, leaf))).checkIssued(caCert)).toBe(true)
    }
  }, 30_000)
})
