import { beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { X509Certificate as NodeX509 } from 'node:crypto'
import { resolveCaSettings } from './ca-settings.ts'
import { X509Crl, X509CrlGenerator } from '@peculiar/x509'
import { CertAuthority } from './cert-authority.ts'
import { tlsAcceptsCrl } from './client-crl.ts'
import { ensureCvCa } from './ensure-cv-ca.ts'
import { RSA_SIGNING_ALGORITHM } from './rsa-keys.ts'
import { CaError } from './errors.ts'
import { decryptPrivateKeyPem } from './rsa-keys.ts'
import { OPENSSL, modeOf, openssl, tempDir } from '../../test/support/ca-helpers.ts'

if (!OPENSSL) console.log('skipping openssl-based cv_ca assertions: openssl not found in PATH')

const settings = resolveCaSettings()
const fingerprint = (path: string) => new NodeX509(readFileSync(path)).fingerprint256
const serial = (path: string) => new NodeX509(readFileSync(path)).serialNumber

describe('ensureCvCa', () => {
  let keylimeDir: string
  let dir: string

  beforeAll(async () => {
    keylimeDir = tempDir('keylime-dir-')
    const r = await ensureCvCa({
      keylimeDir,
      settings,
      ip: '0.0.0.0',
      subjectAltNames: 'verifier.example.org, 192.0.2.10',
      hostname: 'testhost',
      serverKeyPassword: 'srv-pw',
    })
    dir = r.dir
    expect(r.created).toEqual({ ca: true, server: true, client: true })
  })

  test('creates cv_ca with the upstream files and modes', async () => {
    expect(dir).toBe(join(keylimeDir, 'cv_ca'))
    expect(await modeOf(dir)).toBe(0o700)
    const files = readdirSync(dir).sort()
    expect(files).toEqual(
      [
        'ca-public.pem',
        'cacert.crt',
        'cacrl.der',
        'cacrl.pem',
        'client-cert.crt',
        'client-private.pem',
        'client-public.pem',
        'private.yml',
        'server-cert.crt',
        'server-private.pem',
        'server-public.pem',
      ].sort(),
    )
    for (const f of ['private.yml', 'server-private.pem', 'client-private.pem'])
      expect(await modeOf(join(dir, f))).toBe(0o600)
  })

  test('server key is encrypted with server_key_password; client key is not (empty password)', () => {
    const server = readFileSync(join(dir, 'server-private.pem'), 'utf8')
    expect(server).toContain('ENCRYPTED PRIVATE KEY')
    expect(decryptPrivateKeyPem(server, 'srv-pw')).toContain('BEGIN PRIVATE KEY')
    expect(() => decryptPrivateKeyPem(server)).toThrow(CaError)
    expect(readFileSync(join(dir, 'client-private.pem'), 'utf8')).toContain('BEGIN PRIVATE KEY')
  })

  test.skipIf(!OPENSSL)(
    'server SANs: localhost, loopbacks, host name, extra names; 0.0.0.0 skipped',
    () => {
      const text = openssl(['x509', '-in', 'server-cert.crt', '-noout', '-text'], dir).out
      const san = /Subject Alternative Name:\s*\n\s*(.*)/.exec(text)?.[1] ?? ''
      for (const want of [
        'DNS:localhost',
        'DNS:testhost',
        'DNS:verifier.example.org',
        'IP Address:127.0.0.1',
        'IP Address:0:0:0:0:0:0:0:1',
        'IP Address:192.0.2.10',
      ]) {
        expect(san).toContain(want)
      }
      expect(san).not.toContain('0.0.0.0')
    },
  )

  test.skipIf(!OPENSSL)('server and client certs verify against cacert.crt; CRL verifies', () => {
    const r = openssl(
      ['verify', '-CAfile', 'cacert.crt', 'server-cert.crt', 'client-cert.crt'],
      dir,
    )
    expect(r.code).toBe(0)
    expect(r.out).toContain('server-cert.crt: OK')
    expect(r.out).toContain('client-cert.crt: OK')
    expect(
      openssl(['crl', '-in', 'cacrl.der', '-inform', 'DER', '-CAfile', 'cacert.crt', '-noout'], dir)
        .out,
    ).toContain('verify OK')
  })

  test('a second start reuses everything (same fingerprints and serials)', async () => {
    const before = ['cacert.crt', 'server-cert.crt', 'client-cert.crt'].map((f) =>
      fingerprint(join(dir, f)),
    )
    const keyBefore = readFileSync(join(dir, 'server-private.pem'), 'utf8')
    const r = await ensureCvCa({
      keylimeDir,
      settings,
      password: 'not-even-checked',
      hostname: 'testhost',
    })
    expect(r.created).toEqual({ ca: false, server: false, client: false })
    expect(
      ['cacert.crt', 'server-cert.crt', 'client-cert.crt'].map((f) => fingerprint(join(dir, f))),
    ).toEqual(before)
    expect(readFileSync(join(dir, 'server-private.pem'), 'utf8')).toBe(keyBefore)
  })

  test('a missing leaf is re-issued by the same CA with the next serial', async () => {
    const caFp = fingerprint(join(dir, 'cacert.crt'))
    expect(serial(join(dir, 'client-cert.crt'))).toBe('03')
    rmSync(join(dir, 'client-private.pem'))
    const r = await ensureCvCa({ keylimeDir, settings, hostname: 'testhost' })
    expect(r.created).toEqual({ ca: false, server: false, client: true })
    expect(fingerprint(join(dir, 'cacert.crt'))).toBe(caFp)
    expect(serial(join(dir, 'client-cert.crt'))).toBe('04')
    if (OPENSSL)
      expect(openssl(['verify', '-CAfile', 'cacert.crt', 'client-cert.crt'], dir).code).toBe(0)
  })

  test('re-issuing with a wrong CA password fails clearly and leaves files intact', async () => {
    rmSync(join(dir, 'server-cert.crt'))
    const err = await ensureCvCa({ keylimeDir, settings, password: 'wrong' }).catch(
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(CaError)
    expect((err as CaError).code).toBe('ERR_CA_BAD_PASSWORD')
    expect(readdirSync(dir)).not.toContain('.keylime-ca.lock')
    const ok = await ensureCvCa({ keylimeDir, settings, hostname: 'testhost' })
    expect(ok.created.server).toBe(true)
  })

  test('concurrent starts create exactly one CA', async () => {
    const kd = tempDir('keylime-race-')
    const results = await Promise.all(
      [0, 1, 2].map(() => ensureCvCa({ keylimeDir: kd, settings, hostname: 'h' })),
    )
    expect(results.filter((r) => r.created.ca)).toHaveLength(1)
    const d = join(kd, 'cv_ca')
    expect(serial(join(d, 'server-cert.crt'))).toBe('02')
    expect(serial(join(d, 'client-cert.crt'))).toBe('03')
    if (OPENSSL)
      expect(
        openssl(['verify', '-CAfile', 'cacert.crt', 'server-cert.crt', 'client-cert.crt'], d).code,
      ).toBe(0)
  })

  test('a stale lock left by a dead process is taken over', async () => {
    const kd = tempDir('keylime-stale-')
    const d = join(kd, 'cv_ca')
    await ensureCvCa({ keylimeDir: kd, settings, hostname: 'h', withClient: false })
    rmSync(join(d, 'server-cert.crt'))
    writeFileSync(
      join(d, '.keylime-ca.lock'),
      `999999999@${(await import('node:os')).hostname()} 0\n`,
    )
    const r = await ensureCvCa({
      keylimeDir: kd,
      settings,
      hostname: 'h',
      withClient: false,
      lock: { timeoutMs: 5000 },
    })
    expect(r.created.server).toBe(true)
    expect(readdirSync(d)).not.toContain('client-cert.crt')
  })

  test('a live lock makes a second starter time out with ERR_CA_LOCK_TIMEOUT', async () => {
    const kd = tempDir('keylime-busy-')
    const d = join(kd, 'cv_ca')
    await ensureCvCa({ keylimeDir: kd, settings, hostname: 'h', withClient: false })
    writeFileSync(
      join(d, '.keylime-ca.lock'),
      `${process.pid}@${(await import('node:os')).hostname()} 0\n`,
    )
    const err = await ensureCvCa({ keylimeDir: kd, settings, lock: { timeoutMs: 200 } }).catch(
      (e: unknown) => e,
    )
    expect((err as CaError).code).toBe('ERR_CA_LOCK_TIMEOUT')
  })

  test('a start renews a CRL that TLS cannot decode or that expires soon, keeping revocations', async () => {
    const ca = await CertAuthority.open(dir, settings, settings.password)
    await ca.createCert('revoked-admin')
    await ca.revoke({ name: 'revoked-admin' })
    const revokedSerial = serial(join(dir, 'revoked-admin-cert.crt'))
    // As keylime-ts wrote it before step 1: an entry with an empty extension SEQUENCE.
    const keys = (await crypto.subtle.generateKey(
      { ...RSA_SIGNING_ALGORITHM, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair
    const old = await X509CrlGenerator.create({
      issuer: ca.caCert.subjectName,
      thisUpdate: new Date(),
      nextUpdate: new Date(Date.now() + 864e5 * 300),
      signingAlgorithm: RSA_SIGNING_ALGORITHM,
      signingKey: keys.privateKey,
      entries: [{ serialNumber: revokedSerial, revocationDate: new Date() }],
    })
    writeFileSync(join(dir, 'cacrl.der'), new Uint8Array(old.rawData))
    expect(tlsAcceptsCrl(new Uint8Array(old.rawData))).toBe(false)
    const check = async () => {
      const der = new Uint8Array(readFileSync(join(dir, 'cacrl.der')))
      const crl = new X509Crl(der)
      expect(tlsAcceptsCrl(der)).toBe(true)
      expect(await crl.verify({ publicKey: ca.caCert.publicKey })).toBe(true)
      expect(crl.entries.map((e) => e.serialNumber.replace(/^0+/, ''))).toContain(
        revokedSerial.replace(/^0+/, ''),
      )
      return crl
    }
    await ensureCvCa({ keylimeDir, settings, hostname: 'testhost' })
    const renewed = await check()
    // 340 days on, the 365-day CRL is within the 30-day renewal window.
    const later = new Date(Date.now() + 340 * 864e5)
    await ensureCvCa({ keylimeDir, settings, hostname: 'testhost', now: later })
    expect((await check()).thisUpdate.getTime()).toBeGreaterThan(renewed.thisUpdate.getTime())
  })
})
