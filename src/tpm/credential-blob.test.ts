import { describe, expect, test } from 'bun:test'
import { parseCredentialBlob, serializeCredentialBlob } from './credential-blob.ts'
import { isTpmError } from './errors.ts'
import { fuzzParser } from '../../test/support/fuzz/fuzz-parser.ts'
import { makeCredential } from './make-credential.ts'
import { parseTpm2bPublic } from './public-area.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

/**
 * A real tpm2-tools credential file layout.
 * source: keylime/keylime `keylime/tpm/tpm_util_test.py::test_makecredential_ecc` expected blob.
 */
const UPSTREAM_ECC_BLOB = hex(
  'badcc0de00000001004400207d7934f023133b07f7d9bce3062451ea4da5f1917c95e1' +
    '42da1c3277e658f66bbea694a7c1b30d006a09b28dc534876d59b644b9223c5f3c3432' +
    'd8bae35f3ea3fba600440020361ce888d5152797aaca04838003976967c0c0a0a0e969' +
    '8b7b5e6e5294e21711002078daa91b35fb5efc70052a470064a96dd556bd53a784d737' +
    'e40966edc5f36ce8',
)

const RSA_EK = parseTpm2bPublic(
  hex(
    '013a0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1' +
      'da1b331469aa00060080004300100800000000000100aef12278a9b8d8a1e5700fb835ff3d9b' +
      '613d0d6fc17df186711260244f3f24847eb3ef1f5ff9b53d01cfebf291104385fbd71ead80a8' +
      '294ebc76f671859b7c3c9a998300f30859ef3fdba00c5229f17092fd97f19128243000205cfe' +
      '5ba24f5fc55538e52bf849c6f777690919929c7d2d9328070a2a6bdd67355a516b94afdceda0' +
      '0a0d27988a28644b30ac11beae23a51d9038cd9d789ae39cae15c1312ef174e217449771a602' +
      'ade4daf35b20e072017c85a2f211fe5512319184059ddeaab94fa331c49c3f213bc3fbccd1e8' +
      '56b8984353ac92e3df0f72f1e5c0b97b9cdc333702872e9e63565c809d81fa8bb6c6da86867c' +
      'ead2adedc0cee80bb6617183',
  ),
)
const AK_NAME = hex('000b' + 'ab'.repeat(32))

function code(f: () => unknown): string | undefined {
  try {
    f()
  } catch (e) {
    return isTpmError(e) ? e.code : `untyped: ${String(e)}`
  }
  return undefined
}

describe('credential blob', () => {
  test('parses the upstream ECC blob and re-serializes it byte for byte', () => {
    const parsed = parseCredentialBlob(UPSTREAM_ECC_BLOB)
    expect(parsed.credentialBlob.byteLength).toBe(0x44)
    expect(parsed.encryptedSecret.byteLength).toBe(0x44)
    expect(Buffer.from(serializeCredentialBlob(parsed)).equals(UPSTREAM_ECC_BLOB)).toBe(true)
  })

  test('RSA blob: 256-byte OAEP secret', () => {
    const blob = serializeCredentialBlob(
      makeCredential(RSA_EK, AK_NAME, new Uint8Array(32).fill(7)),
    )
    expect(parseCredentialBlob(blob).encryptedSecret.byteLength).toBe(256)
  })

  test('bad magic, version, trailing bytes and truncation are typed errors', () => {
    const b = Uint8Array.from(UPSTREAM_ECC_BLOB)
    b[0] = 0xca
    expect(code(() => parseCredentialBlob(b))).toBe('ERR_TPM_BAD_VALUE')
    const v = Uint8Array.from(UPSTREAM_ECC_BLOB)
    v[7] = 2
    expect(code(() => parseCredentialBlob(v))).toBe('ERR_TPM_BAD_VALUE')
    const t = new Uint8Array(UPSTREAM_ECC_BLOB.byteLength + 1)
    t.set(UPSTREAM_ECC_BLOB)
    expect(code(() => parseCredentialBlob(t))).toBe('ERR_TPM_TRAILING_BYTES')
    expect(code(() => parseCredentialBlob(UPSTREAM_ECC_BLOB.subarray(0, 60)))).toBe(
      'ERR_TPM_TRUNCATED',
    )
    // integrityHMAC of 7 bytes is not a digest
    const h = Uint8Array.from(UPSTREAM_ECC_BLOB)
    h[11] = 7
    expect(code(() => parseCredentialBlob(h))).toBe('ERR_TPM_BAD_VALUE')
  })

  test('fuzz: 5,000 mutated blobs give a value or a TpmError', () => {
    const seeds = [
      UPSTREAM_ECC_BLOB,
      serializeCredentialBlob(makeCredential(RSA_EK, AK_NAME, new Uint8Array(20).fill(1))),
    ]
    const report = fuzzParser('credential-blob', seeds, parseCredentialBlob, {
      cases: 5000,
      isTypedError: (e) => isTpmError(e),
    })
    expect(report.failures).toEqual([])
    expect(report.cases).toBe(5000)
    expect(report.rejected).toBeGreaterThan(1000)
  })
})
