import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { certStoreFromPem, loadCertStore, verifyEkCertChain } from './cert-store.ts'
import { type EkCertErrorCode, isEkCertError } from './ek-cert-error.ts'
import { checkEkCertKey, parseEkCert } from './ek-cert.ts'
import { checkDer } from './ek-cert-der.ts'
import { parseTpm2bPublic } from './public-area.ts'

// Fixtures and their provenance: test/fixtures/ek/NOTES.md
const FIX = join(import.meta.dir, '../../test/fixtures/ek')
const read = (f: string): Uint8Array => new Uint8Array(readFileSync(join(FIX, f)))
const readText = (f: string): string => readFileSync(join(FIX, f), 'utf8')
const pem = (der: Uint8Array): string =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der)
    .toString('base64')
    .replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`

const NOW = new Date('2027-06-01T00:00:00Z')
const store = loadCertStore(join(FIX, 'store'))
const intermediate = readText('intermediate.pem')

function errorCode(f: () => unknown): EkCertErrorCode | string | undefined {
  try {
    f()
  } catch (e) {
    return isEkCertError(e) ? e.code : `untyped: ${String(e)}`
  }
  return undefined
}

const EKS = [
  { name: 'RSA-2048', cert: 'ek-rsa2048.der', pub: 'ek-rsa2048.pub' },
  { name: 'ECC P-256', cert: 'ek-ecc256.der', pub: 'ek-ecc256.pub' },
  { name: 'ECC P-384', cert: 'ek-ecc384.der', pub: 'ek-ecc384.pub' },
] as const

describe('swtpm EK certificates', () => {
  for (const ek of EKS) {
    test(`${ek.name}: parses, is strict DER, names the TPM and binds ek_tpm`, () => {
      const cert = parseEkCert(read(ek.cert), { malformedCertAction: 'reject' })
      expect(cert.derIssues).toEqual([])
      expect(cert.tpm).toEqual({
        manufacturer: 'id:00001014',
        model: 'swtpm',
        version: 'id:20191023',
      })
      checkEkCertKey(cert, parseTpm2bPublic(read(ek.pub)))
    })

    test(`${ek.name}: chains to the swtpm-localca root through the agent's intermediate`, () => {
      const cert = parseEkCert(read(ek.cert))
      const path = verifyEkCertChain(cert, store, { now: NOW, intermediates: [intermediate] })
      expect(path.map((c) => c.x509.subject)).toEqual([
        cert.x509.subject,
        'CN=swtpm-localca',
        'CN=swtpm-localca-rootca',
      ])
    })
  }

  test('base64 DER (Python agent) and PEM + NV chain (Rust agent) decode to the same certificate', () => {
    const der = read('ek-rsa2048.der')
    const b64 = parseEkCert(Buffer.from(der).toString('base64'))
    const bundle = parseEkCert(pem(der) + intermediate)
    expect(Buffer.from(b64.der).equals(der)).toBe(true)
    expect(Buffer.from(bundle.der).equals(der)).toBe(true)
    expect(bundle.chain.map((c) => c.x509.subject)).toEqual(['CN=swtpm-localca'])
    // The chain sent with the certificate is enough to reach the anchor.
    expect(
      verifyEkCertChain(bundle, store, { now: NOW, intermediates: bundle.chain }),
    ).toHaveLength(3)
  })

  test('without the intermediate there is no chain (the store holds only the root)', () => {
    const cert = parseEkCert(read('ek-rsa2048.der'))
    expect(errorCode(() => verifyEkCertChain(cert, store, { now: NOW }))).toBe('ERR_EK_CERT_CHAIN')
  })

  test('an intermediate placed in the trust store is an anchor (upstream one-level check)', () => {
    const both = certStoreFromPem([{ file: 'intermediate.pem', text: intermediate }])
    const cert = parseEkCert(read('ek-ecc256.der'))
    expect(verifyEkCertChain(cert, both, { now: NOW })).toHaveLength(2)
  })

  test('a foreign CA with the same subject name does not verify', () => {
    const foreign = certStoreFromPem([{ file: 'foreign-ca.pem', text: readText('foreign-ca.pem') }])
    const cert = parseEkCert(read('ek-rsa2048.der'))
    expect(errorCode(() => verifyEkCertChain(cert, foreign, { now: NOW }))).toBe(
      'ERR_EK_CERT_CHAIN',
    )
    // …nor does it help as an "intermediate" offered by the agent.
    expect(
      errorCode(() =>
        verifyEkCertChain(cert, store, { now: NOW, intermediates: [readText('foreign-ca.pem')] }),
      ),
    ).toBe('ERR_EK_CERT_CHAIN')
  })

  test('another EK than the certified one is a key mismatch (same and other key type)', () => {
    const rsaCert = parseEkCert(read('ek-rsa2048.der'))
    const eccCert = parseEkCert(read('ek-ecc256.der'))
    expect(errorCode(() => checkEkCertKey(rsaCert, parseTpm2bPublic(read('ek-ecc256.pub'))))).toBe(
      'ERR_EK_CERT_KEY_MISMATCH',
    )
    expect(errorCode(() => checkEkCertKey(eccCert, parseTpm2bPublic(read('ek-ecc384.pub'))))).toBe(
      'ERR_EK_CERT_KEY_MISMATCH',
    )
    // Same curve, other point: flip one byte of the P-256 EK's x-coordinate.
    const other = parseTpm2bPublic(read('ek-ecc256.pub'))
    if (other.type !== 'ecc') throw new Error('fixture')
    const x = Uint8Array.from(other.unique.x)
    x[7] = x[7]! ^ 0x40
    expect(
      errorCode(() => checkEkCertKey(eccCert, { ...other, unique: { x, y: other.unique.y } })),
    ).toBe('ERR_EK_CERT_KEY_MISMATCH')
  })

  test('an RSA EK certificate labelled id-RSAES-OAEP still binds its EK', () => {
    const der = read('ek-rsa2048.der')
    const rsaEncryption = Buffer.from('06092a864886f70d010101', 'hex')
    const at = Buffer.from(der).indexOf(rsaEncryption)
    expect(at).toBeGreaterThan(0)
    const oaep = Uint8Array.from(der)
    oaep[at + rsaEncryption.byteLength - 1] = 0x07
    const cert = parseEkCert(oaep)
    expect(cert.x509.publicKey.algorithm.name).not.toBe('RSASSA-PKCS1-v1_5')
    checkEkCertKey(cert, parseTpm2bPublic(read('ek-rsa2048.pub')))
    expect(errorCode(() => checkEkCertKey(cert, parseTpm2bPublic(read('ek-ecc256.pub'))))).toBe(
      'ERR_EK_CERT_KEY_MISMATCH',
    )
  })

  test('validity is checked at the injected time', () => {
    const cert = parseEkCert(read('ek-rsa2048.der'))
    const opts = { intermediates: [intermediate] }
    const afterNotAfter = new Date(cert.x509.notAfter.getTime() + 1000)
    const beforeNotBefore = new Date(cert.x509.notBefore.getTime() - 1000)
    expect(errorCode(() => verifyEkCertChain(cert, store, { ...opts, now: afterNotAfter }))).toBe(
      'ERR_EK_CERT_EXPIRED',
    )
    expect(errorCode(() => verifyEkCertChain(cert, store, { ...opts, now: beforeNotBefore }))).toBe(
      'ERR_EK_CERT_EXPIRED',
    )
  })
})

describe('malformed encodings (malformed_cert_action)', () => {
  const nuvoton = read('nuvoton-npct75x.der')

  test('Nuvoton NPCT75x: SET OF out of DER order is detected and tolerated unless rejected', () => {
    const cert = parseEkCert(nuvoton, { malformedCertAction: 'ignore' })
    expect(cert.derIssues.some((i) => i.startsWith('SET OF not in DER order'))).toBe(true)
    expect(cert.tpm).toEqual({
      manufacturer: 'id:4E544300',
      model: 'NPCT75x',
      version: 'id:00070002',
    })
    expect(cert.x509.issuer).toContain('Nuvoton TPM Root CA 2111')
    expect(parseEkCert(nuvoton, { malformedCertAction: 'warn' }).derIssues.length).toBeGreaterThan(
      0,
    )
    expect(errorCode(() => parseEkCert(nuvoton, { malformedCertAction: 'reject' }))).toBe(
      'ERR_EK_CERT_MALFORMED',
    )
  })

  test('NV padding after the certificate is cut off; the signature still verifies', () => {
    const der = read('ek-ecc256.der')
    const padded = new Uint8Array(der.byteLength + 40).fill(0xff)
    padded.set(der)
    const cert = parseEkCert(padded)
    expect(cert.derIssues).toEqual([`40 trailing bytes at ${der.byteLength}`])
    expect(Buffer.from(cert.der).equals(der)).toBe(true)
    expect(
      verifyEkCertChain(cert, store, { now: NOW, intermediates: [intermediate] }),
    ).toHaveLength(3)
    expect(errorCode(() => parseEkCert(padded, { malformedCertAction: 'reject' }))).toBe(
      'ERR_EK_CERT_MALFORMED',
    )
  })

  test('a non-minimal outer length is reported and still verifies (signature is over the TBS)', () => {
    const der = read('ek-rsa2048.der')
    expect([...der.subarray(0, 2)]).toEqual([0x30, 0x82])
    const bent = new Uint8Array(der.byteLength + 1)
    bent.set([0x30, 0x83, 0x00, der[2]!, der[3]!])
    bent.set(der.subarray(4), 5)
    const cert = parseEkCert(bent)
    expect(cert.derIssues).toEqual(['non-minimal length at 0'])
    expect(
      verifyEkCertChain(cert, store, { now: NOW, intermediates: [intermediate] }),
    ).toHaveLength(3)
  })

  test('checkDer flags BER booleans and non-minimal integers', () => {
    // SEQUENCE { BOOLEAN 01, INTEGER 00 05 }
    const r = checkDer(Uint8Array.from([0x30, 0x07, 0x01, 0x01, 0x01, 0x02, 0x02, 0x00, 0x05]))
    expect(r.issues).toEqual(['BOOLEAN not encoded as 00/FF at 2', 'non-minimal INTEGER at 5'])
  })

  test('garbage, truncation and empty input are typed errors', () => {
    expect(errorCode(() => parseEkCert(''))).toBe('ERR_EK_CERT_MISSING')
    expect(errorCode(() => parseEkCert('emulator'))).toBe('ERR_EK_CERT_MISSING')
    expect(errorCode(() => parseEkCert('not base64!'))).toBe('ERR_EK_CERT_MALFORMED')
    expect(errorCode(() => parseEkCert(read('ek-rsa2048.der').subarray(0, 500)))).toBe(
      'ERR_EK_CERT_MALFORMED',
    )
    expect(errorCode(() => parseEkCert(Uint8Array.from([0x30, 0x03, 0x02, 0x01, 0x01])))).toBe(
      'ERR_EK_CERT_MALFORMED',
    )
    expect(errorCode(() => loadCertStore(join(FIX, 'does-not-exist')))).toBe('ERR_EK_CERT_STORE')
  })
})
