import { describe, expect, test } from 'bun:test'
import { isTpmError } from './errors.ts'
import { kdfa, kdfe } from './kdf.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/[\s:]/g, ''), 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/**
 * KDFa self-test vector of the TCG reference implementation.
 * source: TCG TPM 2.0 reference code `KdfTestData.h` (as shipped in libtpms 0.9.6,
 * src/tpm2/KdfTestData.h): key, label "KDFSELFTESTLABEL\0", contextU/V, 160 bits, one output per hash.
 */
const TCG_KDFA = {
  source: 'TCG reference implementation KdfTestData.h (libtpms 0.9.6)',
  key: hex('271FA08BBDC5060EC3DFA928FF9B73123A12DA0C'),
  label: 'KDFSELFTESTLABEL',
  contextU: hex('CE244F395DCA7391'),
  contextV: hex('DA504031DDF12E83'),
  bits: 160,
  out: {
    sha1: '55b5a7184aa07423c47dae766c26a2377d7cf851',
    sha256: 'bb0259e1c8ba607e6a2cd704b69a902e9ade84c4',
    sha384: '1dce70c9113eb2dba47bd9cfc72bf46f45b09312',
    sha512: '8be2c1b85b78569b9fa759f5857c56d684810fd3',
  },
} as const

const Z = hex('9f8e7d6c5b4a39281706f5e4d3c2b1a00112233445566778899aabbccddeeff0')
const PU = new Uint8Array(32).fill(0xaa)
const PV = new Uint8Array(32).fill(0xbb)

/**
 * KDFe vectors computed with an independent implementation.
 * source: OpenSSL 3.0 `openssl kdf -keylen 48 -kdfopt digest:SHA256 -kdfopt hexkey:<Z>
 * -kdfopt hexinfo:<"IDENTITY\0" ‖ 32×aa ‖ 32×bb> SSKDF` (SP 800-56C one-step KDF with a hash).
 */
const OPENSSL_KDFE = {
  source: 'OpenSSL 3.0.22 SSKDF',
  sha1: '3367161c26a0608d004418fc4d755a7fce1ea1befd96c1f1d6a7dd5b6da1c1a0fb045aaf0611814bae94cfecf3257623',
  sha256:
    '504e9eeecb2eb75f200954f967fc977be4005165053182' +
    '5c2de0ad7b849a3547457e5f82f7965a2a6b77efad323aefe8',
  sha384:
    '1431af803d0bfa7f580beb49b46fed57de784b3b7ab1d5b026953de158f0c4a5cb9a0b3f2a0d9099727f76b8f1395a82',
} as const

describe('kdfa', () => {
  for (const [hash, expected] of Object.entries(TCG_KDFA.out)) {
    test(`TCG reference vector, ${hash}`, () => {
      const v = TCG_KDFA
      const out = kdfa(hash as 'sha1', v.key, v.label, v.contextU, v.contextV, v.bits)
      expect(toHex(out)).toBe(expected)
    })
  }

  test('accepts TPM_ALG_ID and an explicitly NUL-terminated label identically', () => {
    const v = TCG_KDFA
    const label = new TextEncoder().encode('KDFSELFTESTLABEL\0')
    expect(toHex(kdfa(0x000b, v.key, label, v.contextU, v.contextV, 160))).toBe(v.out.sha256)
  })

  test('OpenSSL KBKDF vectors for the MakeCredential labels (multi-block and 128-bit)', () => {
    // source: OpenSSL 3.0.22 `openssl kdf -kdfopt mac:HMAC -kdfopt digest:SHA256 -kdfopt salt:<label>
    // -kdfopt hexinfo:<context> KBKDF` (SP 800-108 counter mode, 0x00 separator, L appended)
    const name = hex('000b' + 'aa'.repeat(32))
    expect(toHex(kdfa('sha256', Z, 'STORAGE', name, new Uint8Array(0), 128))).toBe(
      '1b42a8b577cbd057cf42356ba6a06ef6',
    )
    expect(toHex(kdfa('sha256', Z, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), 256))).toBe(
      '2ad10d2f99c9ba06befe0239b6db5adbd94472ed7aee6d1789001752a1c0a5e6',
    )
  })

  test('masks unused high bits when bits is not a multiple of 8', () => {
    const v = TCG_KDFA
    const full = kdfa('sha256', v.key, v.label, v.contextU, v.contextV, 12)
    expect(full.byteLength).toBe(2)
    expect(full[0]! & 0xf0).toBe(0)
  })

  test('rejects bad sizes and unknown hashes with typed errors', () => {
    const e = new Uint8Array(0)
    expect(() => kdfa('sha256', e, 'X', e, e, 0)).toThrow(/output size/)
    expect(() => kdfa('sha256', e, 'X', e, e, 1e12)).toThrow(/output size/)
    try {
      kdfa(0x0012, e, 'X', e, e, 8)
      throw new Error('unreachable')
    } catch (err) {
      expect(isTpmError(err, 'ERR_TPM_UNSUPPORTED')).toBe(true)
    }
  })
})

describe('kdfe', () => {
  for (const hash of ['sha1', 'sha256', 'sha384'] as const) {
    test(`OpenSSL SSKDF vector, ${hash} (${384} bits, multi-block for sha1/sha256)`, () => {
      expect(toHex(kdfe(hash, Z, 'IDENTITY', PU, PV, 384))).toBe(OPENSSL_KDFE[hash])
    })
  }

  test('prefix property: a shorter output is a prefix of a longer one', () => {
    const long = kdfe('sha256', Z, 'IDENTITY', PU, PV, 384)
    expect(toHex(kdfe('sha256', Z, 'IDENTITY', PU, PV, 256))).toBe(toHex(long.subarray(0, 32)))
  })

  test('rejects an unsupported hash', () => {
    expect(() => kdfe('md5' as 'sha1', Z, 'IDENTITY', PU, PV, 256)).toThrow(/not supported/)
  })
})
