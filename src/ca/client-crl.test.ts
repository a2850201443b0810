import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { X509Certificate } from '@peculiar/x509'
import { resolveCaSettings } from './ca-settings.ts'
import { CertAuthority } from './cert-authority.ts'
import { loadClientCrls } from './client-crl.ts'
import { resolveClientCrlFiles } from './resolve-tls-files.ts'
import { setLogSink } from '../log/logger.ts'
import { CaError } from './errors.ts'

setLogSink(() => {}, false)

const settings = resolveCaSettings({ cert_bits: 2048 } as never)
const root = mkdtempSync(join(tmpdir(), 'kl-crl-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let ca: CertAuthority
let other: CertAuthority
let caPem: string
beforeAll(async () => {
  ca = await CertAuthority.init(join(root, 'ca'), settings, 'pw')
  other = await CertAuthority.init(join(root, 'other'), settings, 'pw')
  caPem = readFileSync(join(root, 'ca', 'cacert.crt'), 'utf8')
  await ca.createCert('good')
  await ca.createCert('bad')
  await ca.revoke({ name: 'bad' })
})

const cert = (name: string) =>
  new X509Certificate(readFileSync(join(root, 'ca', `${name}-cert.crt`), 'utf8'))
const defaultSources = () => ({
  caPems: [caPem],
  files: resolveClientCrlFiles('default', [join(root, 'ca', 'cacert.crt')], root),
})

async function caError(p: Promise<unknown>): Promise<CaError> {
  try {
    await p
  } catch (e) {
    expect(e).toBeInstanceOf(CaError)
    return e as CaError
  }
  throw new Error('expected a CaError')
}

describe('client CRLs', () => {
  test('default: the cacrl.der beside the trusted CA, with a revocation checker', async () => {
    const set = await loadClientCrls(defaultSources())
    expect(set.pems).toHaveLength(1)
    expect(set.pems[0]).toStartWith('-----BEGIN X509 CRL-----')
    expect(set.isRevoked(cert('bad'))).toBe(true)
    expect(set.isRevoked(cert('good'))).toBe(false)
    expect(set.uncovered).toEqual([])
    expect(set.expired).toEqual([])
  })

  test('none, trusted_client_ca = all, and a CA without CRL files give no CRL check', async () => {
    expect(resolveClientCrlFiles('none', [join(root, 'ca', 'cacert.crt')], root)).toEqual([])
    expect(resolveClientCrlFiles('default', 'all', root)).toEqual([])
    expect(resolveClientCrlFiles('', [join(root, 'ca', 'cacert.crt')], root)).toHaveLength(1)
    expect(() => resolveClientCrlFiles('all', [join(root, 'ca', 'cacert.crt')], root)).toThrow(
      CaError,
    )
    const bare = join(root, 'bare')
    rmSync(bare, { recursive: true, force: true })
    mkdirSync(bare)
    copyFileSync(join(root, 'ca', 'cacert.crt'), join(bare, 'cacert.crt'))
    const files = resolveClientCrlFiles('default', [join(bare, 'cacert.crt')], root)
    expect((await loadClientCrls({ caPems: [caPem], files })).pems).toEqual([])
  })

  test('a listed CRL (PEM or DER) must exist and be signed by a trusted client CA', async () => {
    const pem = resolveClientCrlFiles("['ca/cacrl.pem']", [join(root, 'ca', 'cacert.crt')], root)
    expect((await loadClientCrls({ caPems: [caPem], files: pem })).isRevoked(cert('bad'))).toBe(
      true,
    )
    const missing = resolveClientCrlFiles('nope.der', [join(root, 'ca', 'cacert.crt')], root)
    expect((await caError(loadClientCrls({ caPems: [caPem], files: missing }))).code).toBe(
      'ERR_CA_FILE_MISSING',
    )
    const foreign = resolveClientCrlFiles('other/cacrl.der', [join(root, 'ca', 'cacert.crt')], root)
    const err = await caError(loadClientCrls({ caPems: [caPem], files: foreign }))
    expect(err.code).toBe('ERR_CA_MALFORMED')
    expect(err.message).toContain('not signed by a trusted client CA')
  })

  test('garbage, truncated and tampered CRLs are errors, not skipped', async () => {
    const good = readFileSync(join(root, 'ca', 'cacrl.der'))
    const tampered = Buffer.from(good)
    tampered[tampered.length - 5] = (tampered[tampered.length - 5] ?? 0) ^ 0xff
    for (const bytes of [Buffer.from('junk'), good.subarray(0, 40), tampered]) {
      writeFileSync(join(root, 'bad.der'), bytes)
      const files = resolveClientCrlFiles('bad.der', [join(root, 'ca', 'cacert.crt')], root)
      expect((await caError(loadClientCrls({ caPems: [caPem], files }))).code).toBe(
        'ERR_CA_MALFORMED',
      )
    }
  })

  test('a second trusted CA without a CRL is reported as uncovered; an old CRL as expired', async () => {
    const otherPem = readFileSync(join(root, 'other', 'cacert.crt'), 'utf8')
    rmSync(join(root, 'other', 'cacrl.der'))
    rmSync(join(root, 'other', 'cacrl.pem'))
    const files = resolveClientCrlFiles(
      'default',
      [join(root, 'ca', 'cacert.crt'), join(root, 'other', 'cacert.crt')],
      root,
    )
    const set = await loadClientCrls({ caPems: [caPem, otherPem], files })
    expect(set.uncovered).toEqual([new X509Certificate(otherPem).subject])
    const later = new Date(Date.now() + 400 * 864e5) // past nextUpdate (cert_lifetime 365 days)
    expect((await loadClientCrls(defaultSources(), later)).expired).toHaveLength(1)
    await other.regenerateCrl()
  })
})
