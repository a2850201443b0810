import { describe, expect, test } from 'bun:test'
import { createPublicKey } from 'node:crypto'
import { AK_EXPECTED_ATTRS, TPM_ALG_ID, TPM_ECC_CURVE } from './constants.ts'
import { isTpmError } from './errors.ts'
import { loadQuoteFixtures } from '../../test/support/load-quote-fixtures.ts'
import {
  computeName,
  parseTpm2bPublic,
  parseTpmtPublic,
  serializeTpm2bPublic,
  serializeTpmtPublic,
  toKeyObject,
} from './public-area.ts'

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s.replace(/\s+/g, ''), 'hex'))
function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    return isTpmError(e) ? e.code : `untyped:${String(e)}`
  }
  return undefined
}

// source: wire-formats.md §6.4 (tss-esapi 7.7.0 EK L-1 template == tpm2-tools ek-template-default.bin)
const EK_L1 = hex(
  '0001 000b 000300b2 0020 837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa' +
    '0006 0080 0043 0010 0800 00000000 0100' +
    '00'.repeat(256),
)
// source: wire-formats.md §6.4 AK templates
const AK_ECC = hex('0023 000b 00050072 0000 0010 0018 000b 0003 0010 0000 0000')
const AK_RSA = hex('0001 000b 00050072 0000 0010 0014 000b 0800 00000000 0000')

describe('parseTpmtPublic', () => {
  test('EK L-1 template: fields, decoded attributes, byte-exact round trip', () => {
    const p = parseTpmtPublic(EK_L1)
    if (p.type !== 'rsa') throw new Error('expected rsa')
    expect(p.nameAlg).toBe(TPM_ALG_ID.SHA256)
    expect(p.objectAttributes).toBe(0x000300b2)
    expect(p.attributes.fixedTPM && p.attributes.restricted && p.attributes.decrypt).toBe(true)
    expect(p.attributes.sign || p.attributes.userWithAuth).toBe(false)
    expect(p.symmetric).toEqual({ algorithm: TPM_ALG_ID.AES, keyBits: 128, mode: TPM_ALG_ID.CFB })
    expect(p.scheme).toEqual({ scheme: TPM_ALG_ID.NULL })
    expect(p.keyBits).toBe(2048)
    expect(p.exponent).toBe(0)
    expect(p.unique.n.byteLength).toBe(256)
    expect(p.raw).toEqual(EK_L1)
    expect(serializeTpmtPublic(p)).toEqual(EK_L1)
  })

  test('AK templates (RSA RSASSA-SHA256, ECC ECDSA-SHA256)', () => {
    const r = parseTpmtPublic(AK_RSA)
    expect(r.objectAttributes).toBe(AK_EXPECTED_ATTRS)
    expect(r.scheme).toEqual({ scheme: TPM_ALG_ID.RSASSA, hashAlg: TPM_ALG_ID.SHA256 })
    const e = parseTpmtPublic(AK_ECC)
    if (e.type !== 'ecc') throw new Error('expected ecc')
    expect(e.curve).toBe(TPM_ECC_CURVE.NIST_P256)
    expect(e.kdf).toEqual({ scheme: TPM_ALG_ID.NULL })
    expect(serializeTpmtPublic(e)).toEqual(AK_ECC)
    expect(code(() => toKeyObject(e))).toBe('ERR_TPM_BAD_VALUE') // a template has no point
  })

  test('the result owns its bytes (a later change to the input does not leak in)', () => {
    const input = AK_RSA.slice()
    const p = parseTpmtPublic(input)
    input[3] = 0x04
    expect(p.raw[3]).toBe(0x0b)
  })

  test('rejects bad values with typed errors', () => {
    const mod = (at: number, v: number): Uint8Array => {
      const b = AK_RSA.slice()
      b[at] = v
      return b
    }
    expect(code(() => parseTpmtPublic(mod(1, 0x08)))).toBe('ERR_TPM_UNSUPPORTED') // KEYEDHASH
    expect(code(() => parseTpmtPublic(mod(1, 0x77)))).toBe('ERR_TPM_BAD_VALUE') // unknown type
    expect(code(() => parseTpmtPublic(mod(3, 0x77)))).toBe('ERR_TPM_BAD_VALUE') // nameAlg
    expect(code(() => parseTpmtPublic(mod(7, 0x73)))).toBe('ERR_TPM_BAD_VALUE') // reserved bit 0
    expect(code(() => parseTpmtPublic(mod(15, 0x01)))).toBe('ERR_TPM_BAD_VALUE') // key bits 0x0801
    expect(code(() => parseTpmtPublic(AK_RSA.subarray(0, 20)))).toBe('ERR_TPM_TRUNCATED')
    const extra = new Uint8Array(AK_RSA.length + 1)
    extra.set(AK_RSA)
    expect(code(() => parseTpmtPublic(extra))).toBe('ERR_TPM_TRAILING_BYTES')
    expect(code(() => parseTpm2bPublic(hex('0005 0001')))).toBe('ERR_TPM_TRUNCATED')
  })

  test('RSA exponent: 0 (65537) and odd values > 1 parse; 1 and even values do not', () => {
    const withExponent = (e: number): Uint8Array => {
      const b = AK_RSA.slice()
      new DataView(b.buffer).setUint32(18, e)
      return b
    }
    expect(code(() => parseTpmtPublic(withExponent(0)))).toBeUndefined()
    expect(code(() => parseTpmtPublic(withExponent(3)))).toBeUndefined()
    expect(code(() => parseTpmtPublic(withExponent(1)))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => parseTpmtPublic(withExponent(65536)))).toBe('ERR_TPM_BAD_VALUE')
  })
})

describe('fixture AKs from swtpm', () => {
  const fixtures = loadQuoteFixtures()
  test('there are RSA and ECC fixtures', () => {
    expect(fixtures.some((f) => f.keyAlg === 'rsa')).toBe(true)
    expect(fixtures.some((f) => f.keyAlg === 'ecc')).toBe(true)
  })
  for (const f of fixtures) {
    test(`${f.name}: name == TPM's, key == tpm2_readpublic PEM, TPM2B round trip`, () => {
      const p = parseTpm2bPublic(f.akPub)
      expect(p.objectAttributes).toBe(AK_EXPECTED_ATTRS)
      expect(computeName(p)).toEqual(f.akName)
      expect(serializeTpm2bPublic(p)).toEqual(f.akPub)
      const mine = toKeyObject(p).export({ format: 'der', type: 'spki' })
      const theirs = createPublicKey(f.akPem).export({ format: 'der', type: 'spki' })
      expect(Buffer.compare(mine, theirs)).toBe(0)
    })
  }

  test('an even RSA modulus is refused when the key is made, typed', () => {
    const rsa = fixtures.find((f) => f.keyAlg === 'rsa')!
    const p = parseTpm2bPublic(rsa.akPub)
    if (p.type !== 'rsa') throw new Error('fixture')
    const n = new Uint8Array(p.unique.n)
    n[n.length - 1]! &= 0xfe
    expect(code(() => toKeyObject({ ...p, unique: { n } }))).toBe('ERR_TPM_BAD_VALUE')
  })
})
