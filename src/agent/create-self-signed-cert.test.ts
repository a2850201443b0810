import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync, X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as x509 from '@peculiar/x509'
import { createSelfSignedCert } from './create-self-signed-cert.ts'
import { loadOrCreateServerCert } from './load-or-create-server-cert.ts'

const UUID = 'd432fbb3-d2f1-4a97-9ef7-75bd81c00000'

function make(over: Partial<Parameters<typeof createSelfSignedCert>[0]> = {}) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const pem = createSelfSignedCert({
    commonName: UUID,
    spkiDer: publicKey.export({ format: 'der', type: 'spki' }),
    privateKey,
    serial: Buffer.from('80a1b2c3d4e5f601', 'hex'),
    notBefore: new Date('2026-01-02T03:04:05Z'),
    notAfter: new Date('2027-01-02T03:04:05Z'),
    dnsNames: ['localhost', 'localhost.domain'],
    ipAddresses: ['127.0.0.1', '::1', '192.0.2.10', 'fe80::1:2', '::ffff:10.0.2.15'],
    ...over,
  })
  return { pem, publicKey, privateKey }
}

describe('createSelfSignedCert', () => {
  test('node:crypto parses it, the signature verifies with its own key, fields as given', () => {
    const { pem, publicKey, privateKey } = make()
    const c = new X509Certificate(pem)
    expect(c.verify(publicKey)).toBe(true)
    expect(c.checkPrivateKey(privateKey)).toBe(true)
    expect(c.subject).toBe(`CN=${UUID}`)
    expect(c.issuer).toBe(`CN=${UUID}`)
    expect(c.ca).toBe(false)
    // a leading 1 bit gets a sign byte: INTEGER 9 bytes, the serial stays positive
    expect(c.serialNumber.toLowerCase()).toBe('80a1b2c3d4e5f601')
    expect(c.raw.includes(Buffer.from('02090080a1b2c3d4e5f601', 'hex'))).toBe(true)
    expect(new Date(c.validFrom).toISOString()).toBe('2026-01-02T03:04:05.000Z')
    expect(new Date(c.validTo).toISOString()).toBe('2027-01-02T03:04:05.000Z')
    expect(c.subjectAltName).toBe(
      'DNS:localhost, DNS:localhost.domain, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:192.0.2.10, IP Address:FE80:0:0:0:0:0:1:2, IP Address:0:0:0:0:0:FFFF:A00:20F',
    )
  })

  test('an independent parser (@peculiar/x509) reads v3, ecdsa-with-SHA256, critical basicConstraints', async () => {
    const c = new x509.X509Certificate(make().pem)
    expect(c.signatureAlgorithm).toMatchObject({ name: 'ECDSA', hash: { name: 'SHA-256' } })
    const bc = c.getExtension(x509.BasicConstraintsExtension)!
    expect(bc.critical).toBe(true)
    expect(bc.ca).toBe(false)
    expect(await c.verify({ signatureOnly: true })).toBe(true)
    const der = Buffer.from(c.rawData)
    // Certificate ::= SEQUENCE with a long-form length; version [0] { INTEGER 2 }
    expect(der.subarray(0, 2).toString('hex')).toBe('3082')
    expect(der.subarray(4, 6).toString('hex')).toBe('3082')
    expect(der.subarray(8, 13).toString('hex')).toBe('a003020102')
  })

  test('dates from 2050 are GeneralizedTime (RFC 5280 §4.1.2.5)', () => {
    const c = new X509Certificate(make({ notAfter: new Date('2051-06-07T08:09:10Z') }).pem)
    expect(new Date(c.validTo).toISOString()).toBe('2051-06-07T08:09:10.000Z')
  })

  test('rejects a bad serial and a non-address', () => {
    expect(() => make({ serial: new Uint8Array(0) })).toThrow(RangeError)
    expect(() => make({ serial: new Uint8Array(21) })).toThrow(RangeError)
    expect(() => make({ ipAddresses: ['host.example'] })).toThrow(TypeError)
  })

  test('openssl accepts it as a self-signed EC certificate', () => {
    if (Bun.which('openssl') === null) return
    const dir = mkdtempSync(join(tmpdir(), 'kl-selfsigned-'))
    try {
      writeFileSync(join(dir, 'c.pem'), make().pem)
      const r = Bun.spawnSync([
        'openssl',
        'verify',
        '-CAfile',
        join(dir, 'c.pem'),
        '-partial_chain',
        join(dir, 'c.pem'),
      ])
      expect(r.stdout.toString()).toContain(': OK')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('loadOrCreateServerCert', () => {
  test('creates key (0600) and certificate once, then reloads the same pair', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kl-servercert-'))
    try {
      const opts = {
        keyPath: join(dir, 'server-private.pem'),
        certPath: join(dir, 'server-cert.crt'),
        password: '',
        uuid: UUID,
        contactIp: '192.0.2.10',
      }
      const a = await loadOrCreateServerCert(opts)
      expect(statSync(opts.keyPath).mode & 0o777).toBe(0o600)
      const c = new X509Certificate(a.certPem)
      expect(c.subjectAltName).toContain('IP Address:192.0.2.10')
      expect(c.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
      const b = await loadOrCreateServerCert(opts)
      expect(b.certPem).toBe(readFileSync(opts.certPath, 'utf8'))
      expect(b).toEqual(a)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
