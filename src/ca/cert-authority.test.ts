import { beforeAll, describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPrivateKey, X509Certificate as NodeX509 } from 'node:crypto'
import { unzipSync } from 'fflate'
import { resolveCaSettings } from './ca-settings.ts'
import { CertAuthority } from './cert-authority.ts'
import { CaError } from './errors.ts'
import { unsealPrivateYml } from './private-yml.ts'
import { decryptPrivateKeyPem } from './rsa-keys.ts'
import { OPENSSL, modeOf, openssl, tempDir } from '../../test/support/ca-helpers.ts'

if (!OPENSSL) console.log('skipping openssl-based CA assertions: openssl not found in PATH')

const settings = resolveCaSettings({
  cert_crl_dist: 'http://ca.example:38080/crl',
  cert_org_unit: 'unit-7',
})
const NOW = new Date('2026-03-04T05:06:07.000Z')
const PW = 'ca-secret'
let dir: string
let ca: CertAuthority

describe('CertAuthority', () => {
  beforeAll(async () => {
    dir = tempDir()
    ca = await CertAuthority.init(join(dir, 'ca'), settings, PW, NOW)
    await ca.createCert('server', {
      kind: 'server',
      sanDns: ['localhost'],
      sanIps: ['127.0.0.1'],
      now: NOW,
    })
    await ca.createCert('client', { kind: 'client', now: NOW })
    await ca.createCert('agent-1', { now: NOW })
    await ca.createCert('doomed', { now: NOW })
  })

  test('writes upstream file names with 0700 dir and 0600 secrets', async () => {
    const d = ca.dir
    expect(await modeOf(d)).toBe(0o700)
    for (const f of [
      'private.yml',
      'server-private.pem',
      'client-private.pem',
      'agent-1-private.pem',
    ]) {
      expect(await modeOf(join(d, f))).toBe(0o600)
    }
    for (const f of [
      'cacert.crt',
      'ca-public.pem',
      'cacrl.der',
      'cacrl.pem',
      'server-cert.crt',
      'server-public.pem',
    ]) {
      expect((await modeOf(join(d, f))) & 0o007).toBe(0)
    }
  })

  test('CA certificate: subject order, serial 1, lifetime, extensions, injected time', () => {
    const cert = new NodeX509(readFileSync(join(ca.dir, 'cacert.crt')))
    expect(cert.ca).toBe(true)
    expect(cert.serialNumber).toBe('01')
    expect(cert.subject.split('\n')).toEqual([
      'C=US',
      'CN=Keylime Certificate Authority',
      'ST=MA',
      'L=Lexington',
      'O=Keylime',
      'OU=unit-7',
    ])
    expect(new Date(cert.validFrom).getTime()).toBe(NOW.getTime())
    expect(new Date(cert.validTo).getTime()).toBe(NOW.getTime() + 3650 * 86_400_000)
    expect(cert.checkIssued(cert)).toBe(true)
  })

  test('serials increase from 2 and lastserial is kept in private.yml', async () => {
    const serials = ['server', 'client', 'agent-1', 'doomed'].map((n) =>
      Number.parseInt(new NodeX509(readFileSync(join(ca.dir, `${n}-cert.crt`))).serialNumber, 16),
    )
    expect(serials).toEqual([2, 3, 4, 5])
    const reopened = await CertAuthority.open(ca.dir, settings, PW)
    expect(reopened.lastSerial).toBe(5)
  })

  test('private.yml does not hold any key in clear', () => {
    const yml = readFileSync(join(ca.dir, 'private.yml'), 'utf8')
    expect(yml).not.toContain('PRIVATE KEY')
    const serverKeyBody =
      readFileSync(join(ca.dir, 'server-private.pem'), 'utf8').split('\n')[1] ?? 'x'
    expect(yml).not.toContain(serverKeyBody)
    expect(yml).toMatch(/^priv: !!binary \|\n/)
    expect(yml).toMatch(/\nsalt: /)
  })

  test('a wrong CA password gives ERR_CA_BAD_PASSWORD', async () => {
    const err = await CertAuthority.open(ca.dir, settings, 'wrong').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(CaError)
    expect((err as CaError).code).toBe('ERR_CA_BAD_PASSWORD')
  })

  test('a directory without a CA gives ERR_CA_NOT_INITIALIZED', async () => {
    const err = await CertAuthority.open(tempDir(), settings, PW).catch((e: unknown) => e)
    expect((err as CaError).code).toBe('ERR_CA_NOT_INITIALIZED')
  })

  test.skipIf(!OPENSSL)(
    'openssl verifies server, client and named certs against cacert.crt',
    () => {
      const r = openssl(
        [
          'verify',
          '-CAfile',
          'cacert.crt',
          'server-cert.crt',
          'client-cert.crt',
          'agent-1-cert.crt',
        ],
        ca.dir,
      )
      expect(r.out).toContain('server-cert.crt: OK')
      expect(r.out).toContain('client-cert.crt: OK')
      expect(r.out).toContain('agent-1-cert.crt: OK')
      expect(r.code).toBe(0)
      expect(
        openssl(
          ['verify', '-purpose', 'sslserver', '-CAfile', 'cacert.crt', 'server-cert.crt'],
          ca.dir,
        ).code,
      ).toBe(0)
      expect(
        openssl(
          ['verify', '-purpose', 'sslclient', '-CAfile', 'cacert.crt', 'client-cert.crt'],
          ca.dir,
        ).code,
      ).toBe(0)
      // EKU is enforced: the client cert is not a server cert.
      expect(
        openssl(
          ['verify', '-purpose', 'sslserver', '-CAfile', 'cacert.crt', 'client-cert.crt'],
          ca.dir,
        ).code,
      ).not.toBe(0)
    },
  )

  test.skipIf(!OPENSSL)(
    'extensions as upstream: CA BC/KU critical, CRL DP, SKI/AKI; leaf SAN',
    () => {
      const caText = openssl(['x509', '-in', 'cacert.crt', '-noout', '-text'], ca.dir).out
      expect(caText).toMatch(/Basic Constraints: critical\s+CA:TRUE/)
      expect(caText).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/)
      expect(caText).toContain('URI:http://ca.example:38080/crl')
      const ski = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(caText)?.[1]
      expect(ski).toBeDefined()
      const leaf = openssl(['x509', '-in', 'server-cert.crt', '-noout', '-text'], ca.dir).out
      expect(leaf).toContain('DNS:localhost, IP Address:127.0.0.1')
      expect(leaf).toContain(`Authority Key Identifier: \n                ${ski}`)
      expect(leaf).toContain('TLS Web Server Authentication')
      expect(leaf).toContain('Subject: C = US, CN = server, ST = MA')
      const generic = openssl(['x509', '-in', 'agent-1-cert.crt', '-noout', '-text'], ca.dir).out
      expect(generic).toContain('DNS:agent-1')
      expect(generic).not.toContain('Extended Key Usage')
    },
  )

  test.skipIf(!OPENSSL)('the initial CRL is v2, empty, and verifies against the CA', () => {
    const r = openssl(
      ['crl', '-in', 'cacrl.der', '-inform', 'DER', '-CAfile', 'cacert.crt', '-noout', '-text'],
      ca.dir,
    )
    expect(r.out).toContain('verify OK')
    expect(r.out).toContain('Version 2')
    expect(r.out).toContain('No Revoked Certificates')
    expect(
      openssl(['crl', '-in', 'cacrl.pem', '-CAfile', 'cacert.crt', '-noout'], ca.dir).out,
    ).toContain('verify OK')
  })

  test('revoke records serial and date; CRL lists it', async () => {
    const revokedAt = new Date(NOW.getTime() + 60_000)
    const der = await ca.revoke({ name: 'doomed' }, revokedAt)
    expect(der.length).toBeGreaterThan(100)
    expect(ca.revokedSerials).toEqual(['5'])
    const crl = await ca.readCrl()
    expect(crl.entries.map((e) => Number.parseInt(e.serialNumber, 16))).toEqual([5])
    expect(crl.entries[0]?.revocationDate.getTime()).toBe(revokedAt.getTime())
    // Revoking again keeps one entry with the original date.
    await ca.revoke({ serial: 5 }, new Date(revokedAt.getTime() + 60_000))
    const again = await ca.readCrl()
    expect(again.entries).toHaveLength(1)
    expect(again.entries[0]?.revocationDate.getTime()).toBe(revokedAt.getTime())
    const reopened = await CertAuthority.open(ca.dir, settings, PW)
    expect(reopened.revokedSerials).toEqual(['5'])
  })

  test.skipIf(!OPENSSL)(
    'after revoke, openssl -crl_check fails for the revoked cert only',
    async () => {
      await ca.revoke({ name: 'doomed' }, new Date())
      const bad = openssl(
        [
          'verify',
          '-crl_check',
          '-CRLfile',
          'cacrl.pem',
          '-CAfile',
          'cacert.crt',
          'doomed-cert.crt',
        ],
        ca.dir,
      )
      expect(bad.code).not.toBe(0)
      expect(bad.out).toContain('certificate revoked')
      const good = openssl(
        [
          'verify',
          '-crl_check',
          '-CRLfile',
          'cacrl.pem',
          '-CAfile',
          'cacert.crt',
          'server-cert.crt',
        ],
        ca.dir,
      )
      expect(good.out).toContain('server-cert.crt: OK')
      expect(good.code).toBe(0)
      expect(
        openssl(
          ['crl', '-in', 'cacrl.der', '-inform', 'DER', '-CAfile', 'cacert.crt', '-noout'],
          ca.dir,
        ).out,
      ).toContain('verify OK')
    },
  )

  test('revoke rejects bad targets', async () => {
    await expect(ca.revoke({})).rejects.toThrow(CaError)
    await expect(ca.revoke({ name: 'nobody' })).rejects.toMatchObject({
      code: 'ERR_CA_UNKNOWN_NAME',
    })
    await expect(ca.revoke({ serial: '-3' })).rejects.toMatchObject({
      code: 'ERR_CA_INVALID_INPUT',
    })
  })

  test('pkg zips upstream names; the written key is protected, the in-memory one is not', async () => {
    const pkg = await ca.certPackage('agent-1')
    expect(pkg.path).toBe(join(ca.dir, 'agent-1-pkg.zip'))
    expect(pkg.serial).toBe(4)
    expect(pkg.subject).toContain('CN=agent-1')
    expect(await modeOf(pkg.path)).toBe(0o600)
    const names = [
      'agent-1-public.pem',
      'agent-1-cert.crt',
      'agent-1-private.pem',
      'cacert.crt',
      'cacrl.der',
      'cacrl.pem',
    ]
    const onDisk = unzipSync(readFileSync(pkg.path))
    expect(Object.keys(onDisk)).toEqual(names)
    const diskKey = Buffer.from(onDisk['agent-1-private.pem'] ?? []).toString()
    expect(diskKey).toContain('ENCRYPTED PRIVATE KEY')
    expect(() => createPrivateKey(diskKey)).toThrow()
    expect(decryptPrivateKeyPem(diskKey, PW)).toContain('BEGIN PRIVATE KEY')
    const mem = unzipSync(pkg.zip)
    expect(Object.keys(mem)).toEqual(names)
    expect(Buffer.from(mem['agent-1-private.pem'] ?? []).toString()).toBe(
      readFileSync(join(ca.dir, 'agent-1-private.pem'), 'utf8'),
    )
    expect(
      Buffer.from(mem['cacert.crt'] ?? []).equals(readFileSync(join(ca.dir, 'cacert.crt'))),
    ).toBe(true)
  })

  test('pkg -i writes the unprotected key; unknown names fail with the file named', async () => {
    const pkg = await ca.certPackage('agent-1', { insecure: true })
    const onDisk = unzipSync(readFileSync(pkg.path))
    expect(Buffer.from(onDisk['agent-1-private.pem'] ?? []).toString()).toContain(
      'BEGIN PRIVATE KEY',
    )
    const err = await ca.certPackage('ghost').catch((e: unknown) => e)
    expect((err as CaError).code).toBe('ERR_CA_FILE_MISSING')
    expect((err as CaError).message).toContain('ghost-')
  })

  test('names that could escape the directory are refused', async () => {
    for (const bad of ['../x', 'a/b', '', '.hidden', 'ca', 'x'.repeat(65)]) {
      await expect(ca.createCert(bad)).rejects.toMatchObject({ code: 'ERR_CA_INVALID_INPUT' })
    }
  })

  test('a key password encrypts <name>-private.pem', async () => {
    await ca.createCert('locked', { keyPassword: 'kpw', now: NOW })
    const pem = readFileSync(join(ca.dir, 'locked-private.pem'), 'utf8')
    expect(pem).toContain('ENCRYPTED PRIVATE KEY')
    expect(() => decryptPrivateKeyPem(pem, 'bad')).toThrow(CaError)
    expect(decryptPrivateKeyPem(pem, 'kpw')).toContain('BEGIN PRIVATE KEY')
  })

  test('import-priv accepts the matching key and refuses a foreign one', async () => {
    const d = tempDir()
    const other = await CertAuthority.init(d, settings, PW, NOW)
    const c2 = await CertAuthority.init(join(d, 'second'), settings, PW, NOW)
    await other.createCert('x', { now: NOW })
    const foreignKey = readFileSync(join(d, 'x-private.pem'), 'utf8')
    await expect(c2.importPrivateKey(foreignKey, 10)).rejects.toMatchObject({
      code: 'ERR_CA_INVALID_INPUT',
    })
    // c2's own key, taken out of its keystore, is accepted and resets lastserial to serial + 1.
    const keystore = await unsealPrivateYml(
      readFileSync(join(d, 'second', 'private.yml'), 'utf8'),
      PW,
    )
    const ownPem = keystore.data.ca
    writeFileSync(join(d, 'own.pem'), ownPem)
    await c2.importPrivateKey(ownPem, 10)
    expect(c2.lastSerial).toBe(11)
    const issued = await c2.createCert('after-import', { now: NOW })
    expect(issued.serial).toBe(12)
  })
})
