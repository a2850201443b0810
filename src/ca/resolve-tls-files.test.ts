import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { resolveCaSettings } from './ca-settings.ts'
import { CertAuthority } from './cert-authority.ts'
import { ensureCvCa } from './ensure-cv-ca.ts'
import { CaError } from './errors.ts'
import { loadTlsMaterial } from './load-tls-material.ts'
import { parseListOption, resolveTlsFiles } from './resolve-tls-files.ts'
import { tempDir } from '../../test/support/ca-helpers.ts'

const K = '/var/lib/keylime'

describe('resolveTlsFiles', () => {
  test('generate/default → cv_ca with the standard names; default CA is cv_ca/cacert.crt', () => {
    for (const tlsDir of ['generate', 'default']) {
      const f = resolveTlsFiles({
        keylimeDir: K,
        tlsDir,
        serverKey: 'default',
        serverCert: 'default',
        clientKey: 'default',
        clientCert: 'default',
        trustedCa: 'default',
      })
      expect(f.dir).toBe(`${K}/cv_ca`)
      expect(f.serverKey).toBe(`${K}/cv_ca/server-private.pem`)
      expect(f.serverCert).toBe(`${K}/cv_ca/server-cert.crt`)
      expect(f.clientKey).toBe(`${K}/cv_ca/client-private.pem`)
      expect(f.clientCert).toBe(`${K}/cv_ca/client-cert.crt`)
      expect(f.trustedCa).toEqual([`${K}/cv_ca/cacert.crt`])
    }
  })

  test('registrar generate uses reg_ca, but the default trusted CA stays cv_ca (as upstream)', () => {
    const f = resolveTlsFiles({
      keylimeDir: K,
      tlsDir: 'generate',
      generateDirName: 'reg_ca',
      serverKey: 'default',
    })
    expect(f.serverKey).toBe(`${K}/reg_ca/server-private.pem`)
    expect(f.trustedCa).toEqual([`${K}/cv_ca/cacert.crt`])
  })

  test('relative tls_dir is under KEYLIME_DIR; file options relative to tls_dir; absolute kept', () => {
    const f = resolveTlsFiles({
      keylimeDir: K,
      tlsDir: 'mytls',
      serverKey: 'keys/s.pem',
      serverCert: '/etc/pki/s.crt',
      trustedCa: ['ca1.crt', '/etc/pki/ca2.crt'],
    })
    expect(f.dir).toBe(`${K}/mytls`)
    expect(f.serverKey).toBe(`${K}/mytls/keys/s.pem`)
    expect(f.serverCert).toBe('/etc/pki/s.crt')
    expect(f.clientKey).toBeUndefined()
    expect(f.trustedCa).toEqual([`${K}/mytls/ca1.crt`, '/etc/pki/ca2.crt'])
    expect(resolveTlsFiles({ keylimeDir: K, tlsDir: '/abs/dir' }).dir).toBe('/abs/dir')
  })

  test('trusted CA given as text: Python list literal, comma list, all', () => {
    expect(parseListOption('[\'a.crt\', "b.crt"]')).toEqual(['a.crt', 'b.crt'])
    expect(parseListOption('a.crt, b.crt')).toEqual(['a.crt', 'b.crt'])
    expect(resolveTlsFiles({ keylimeDir: K, tlsDir: 'default', trustedCa: 'all' }).trustedCa).toBe(
      'all',
    )
    expect(
      resolveTlsFiles({ keylimeDir: K, tlsDir: 'default', trustedCa: ['all'] }).trustedCa,
    ).toBe('all')
    expect(
      resolveTlsFiles({ keylimeDir: K, tlsDir: 'x', trustedCa: "['c.crt']" }).trustedCa,
    ).toEqual([`${K}/x/c.crt`])
  })

  test('generate with non-default files, or an empty tls_dir, is refused', () => {
    expect(() =>
      resolveTlsFiles({ keylimeDir: K, tlsDir: 'generate', serverKey: 'mine.pem' }),
    ).toThrow(CaError)
    expect(() =>
      resolveTlsFiles({ keylimeDir: K, tlsDir: 'generate', trustedCa: ['x.crt'] }),
    ).toThrow(/default/)
    expect(() => resolveTlsFiles({ keylimeDir: K, tlsDir: ' ', component: 'tenant' })).toThrow(
      /\[tenant\] tls_dir/,
    )
  })
})

describe('loadTlsMaterial', () => {
  let keylimeDir: string
  const settings = resolveCaSettings()

  beforeAll(async () => {
    keylimeDir = tempDir('keylime-tls-')
    await ensureCvCa({ keylimeDir, settings, hostname: 'h', serverKeyPassword: 'spw' })
  })

  const files = (over: Partial<Parameters<typeof resolveTlsFiles>[0]> = {}) =>
    resolveTlsFiles({
      keylimeDir,
      tlsDir: 'default',
      component: 'verifier',
      serverKey: 'default',
      serverKeyPassword: 'spw',
      serverCert: 'default',
      clientKey: 'default',
      clientCert: 'default',
      trustedCa: 'default',
      ...over,
    })

  test('loads PEMs and decrypts the server key in memory', async () => {
    const m = await loadTlsMaterial(files())
    expect(m.serverKey).toStartWith('-----BEGIN PRIVATE KEY-----')
    expect(m.clientKey).toStartWith('-----BEGIN PRIVATE KEY-----')
    expect(m.serverCert).toContain('BEGIN CERTIFICATE')
    expect(m.ca).toHaveLength(1)
    expect(m.verifyPeer).toBe(true)
    expect(await Bun.file(join(keylimeDir, 'cv_ca', 'server-private.pem')).text()).toContain(
      'ENCRYPTED',
    )
  })

  test('missing or wrong key password → ERR_CA_KEY_PASSWORD naming the option', async () => {
    const e1 = await loadTlsMaterial(files({ serverKeyPassword: '' })).catch((e: unknown) => e)
    expect((e1 as CaError).code).toBe('ERR_CA_KEY_PASSWORD')
    expect((e1 as CaError).message).toContain('server_key')
    const e2 = await loadTlsMaterial(files({ serverKeyPassword: 'nope' })).catch((e: unknown) => e)
    expect((e2 as CaError).code).toBe('ERR_CA_KEY_PASSWORD')
    expect((e2 as CaError).message).not.toContain('nope')
  })

  test('a missing file → ERR_CA_FILE_MISSING naming the file and the option', async () => {
    const err = await loadTlsMaterial(files({ clientCert: 'nowhere.crt' })).catch((e: unknown) => e)
    expect((err as CaError).code).toBe('ERR_CA_FILE_MISSING')
    expect((err as CaError).message).toContain('nowhere.crt')
    expect((err as CaError).message).toContain('[verifier] client_cert')
    const e2 = await loadTlsMaterial(
      files({ trustedCa: ['gone.crt'], trustedCaOption: 'trusted_server_ca' }),
    ).catch((e: unknown) => e)
    expect((e2 as CaError).message).toContain('trusted_server_ca')
  })

  test('a key file given as certificate → ERR_CA_MALFORMED', async () => {
    const err = await loadTlsMaterial(files({ serverCert: 'client-private.pem' })).catch(
      (e: unknown) => e,
    )
    expect((err as CaError).code).toBe('ERR_CA_MALFORMED')
  })

  test('trusted CA all → no CA, verifyPeer false; server-only load skips client files', async () => {
    const m = await loadTlsMaterial(files({ trustedCa: 'all', clientCert: 'missing.crt' }), {
      server: true,
      client: false,
    })
    expect(m.verifyPeer).toBe(false)
    expect(m.ca).toEqual([])
    expect(m.clientCert).toBeUndefined()
  })

  describe('with Bun.serve mTLS', () => {
    let server: ReturnType<typeof Bun.serve> | undefined
    let rogueDir: string
    afterAll(() => {
      server?.stop(true)
      rmSync(rogueDir, { recursive: true, force: true })
    })

    test('the generated material serves mTLS; a rogue client cert is rejected', async () => {
      const m = await loadTlsMaterial(files())
      server = Bun.serve({
        hostname: '127.0.0.1',
        port: 0,
        tls: {
          key: m.serverKey,
          cert: m.serverCert,
          ca: m.ca,
          requestCert: true,
          rejectUnauthorized: true,
        },
        fetch: () => new Response('ok'),
      })
      const url = `https://localhost:${server.port}/`
      const res = await fetch(url, { tls: { key: m.clientKey, cert: m.clientCert, ca: m.ca } })
      expect(await res.text()).toBe('ok')
      // Server name check passes because SAN includes localhost; a cert from another CA is refused.
      rogueDir = tempDir('keylime-rogue-')
      const rogue = await CertAuthority.init(rogueDir, settings, 'x')
      await rogue.createCert('client', { kind: 'client' })
      const rogueCert = await Bun.file(join(rogueDir, 'client-cert.crt')).text()
      const rogueKey = await Bun.file(join(rogueDir, 'client-private.pem')).text()
      const failed = await fetch(url, { tls: { key: rogueKey, cert: rogueCert, ca: m.ca } }).then(
        () => false,
        () => true,
      )
      expect(failed).toBe(true)
    })
  })
})
