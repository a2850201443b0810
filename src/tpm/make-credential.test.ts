import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { activateCredential } from './activate-credential.ts'
import { parseCredentialBlob, serializeCredentialBlob } from './credential-blob.ts'
import { isTpmError } from './errors.ts'
import { makeCredential } from './make-credential.ts'
import { parseTpm2bPublic, type TpmPublic } from './public-area.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s/g, ''), 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')

/**
 * Upstream MakeCredential vectors.
 * source: keylime/keylime `keylime/tpm/tpm_util_test.py` (commit 9b1f6e6a) `test_makecredential`
 * (RSA EK, os.urandom patched to 0x12…; first 80 bytes of the blob are deterministic) and
 * `test_makecredential_ecc` (ECC P-256 EK, fixed ephemeral key; whole blob deterministic).
 */
const UPSTREAM = {
  source: 'keylime/keylime keylime/tpm/tpm_util_test.py @ 9b1f6e6a',
  rsa: {
    ekTpm: hex(
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
    challenge: hex('5a4e524b4f4e6e777552754831683734785a466a42416f314758676c484d4149'),
    akName: hex('000b9601163463aacdb45be7ad1f6d11ad3dae0578d5aeeb5125e1075c5601b7c7fa'),
    first80:
      'badcc0de00000001004400206f0c4b08cfa00f21b474ca75623d098309c2cd7fac8d10' +
      'ae3caf0da40162496db140cc6a5ae79a2bd7c22dc52cee372f34b356bf9bcd5176fa94' +
      '239ee93191a0a75d0100',
  },
  ecc: {
    ekTpm: hex(
      '007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1' +
        'da1b331469aa0006008000430010000300100020d31f0e190c36691abdc5c8cef7201139664f' +
        '93bcc45e68861a62d649d9a157d400209bf3cc57da9b2c09539cae40f0518e651b65befaab84' +
        'f26a3285d88be134b0cf',
    ),
    challenge: hex('7756666e6e4574706552556d717932656e7954474c64434f576a523545654a69'),
    akName: hex('000b9f7f75b0564ea96bd70ef98baafbf6bf779641d17576bd11b5c6979273d2ba21'),
    ephemeralD: BigInt(
      '75548318724506252006992803713632448754009807765151974952668642988315053146586',
    ),
    blob:
      'badcc0de00000001004400207d7934f023133b07f7d9bce3062451ea4da5f1917c95e1' +
      '42da1c3277e658f66bbea694a7c1b30d006a09b28dc534876d59b644b9223c5f3c3432' +
      'd8bae35f3ea3fba600440020361ce888d5152797aaca04838003976967c0c0a0a0e969' +
      '8b7b5e6e5294e21711002078daa91b35fb5efc70052a470064a96dd556bd53a784d737' +
      'e40966edc5f36ce8',
  },
} as const

const bigToBytes = (n: bigint, size: number): Uint8Array =>
  hex(n.toString(16).padStart(size * 2, '0'))

describe('makeCredential against upstream Keylime vectors', () => {
  test('RSA EK: blob header, ID object and secret size match (seed fixed to 0x12…)', () => {
    const v = UPSTREAM.rsa
    const ek = parseTpm2bPublic(v.ekTpm)
    const out = makeCredential(ek, v.akName, v.challenge, { seed: new Uint8Array(32).fill(0x12) })
    const blob = serializeCredentialBlob(out)
    expect(toHex(blob.subarray(0, 80))).toBe(v.first80)
    expect(blob.byteLength).toBe(8 + 2 + 0x44 + 2 + 256)
  })

  test('ECC P-256 EK: the whole blob matches with the fixed ephemeral key', () => {
    const v = UPSTREAM.ecc
    const ek = parseTpm2bPublic(v.ekTpm)
    const out = makeCredential(ek, v.akName, v.challenge, {
      ephemeralPrivateKey: bigToBytes(v.ephemeralD, 32),
    })
    expect(toHex(serializeCredentialBlob(out))).toBe(v.blob)
  })

  test('ECC with a random ephemeral key differs between calls but keeps the layout', () => {
    const v = UPSTREAM.ecc
    const ek = parseTpm2bPublic(v.ekTpm)
    const a = serializeCredentialBlob(makeCredential(ek, v.akName, v.challenge))
    const b = serializeCredentialBlob(makeCredential(ek, v.akName, v.challenge))
    expect(a.byteLength).toBe(v.blob.length / 2)
    expect(toHex(a)).not.toBe(toHex(b))
  })
})

describe('makeCredential round trip with a software RSA "EK"', () => {
  // An RSA-2048 key standing in for a TPM EK; activateCredential plays the TPM.
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const n = Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url')
  const ekTpmt = Buffer.concat([
    hex('0001000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa'),
    hex('00060080004300100800000000000100'),
    n,
  ])
  const ek = parseTpm2bPublic(
    Buffer.concat([hex(ekTpmt.byteLength.toString(16).padStart(4, '0')), ekTpmt]),
  )
  const akName = hex('000b' + '11'.repeat(32))

  const activate = (pub: TpmPublic, name: Uint8Array, blob: Uint8Array): Uint8Array =>
    activateCredential(pub, privateKey, name, parseCredentialBlob(blob))

  test('the credential is recovered with the right name and rejected with another', () => {
    const cred = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')
    const blob = serializeCredentialBlob(makeCredential(ek, akName, cred))
    expect(new TextDecoder().decode(activate(ek, akName, blob))).toBe(
      'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345',
    )
    expect(() => activate(ek, hex('000b' + '22'.repeat(32)), blob)).toThrow('integrity HMAC')
  })
})

describe('makeCredential input checks', () => {
  const ek = parseTpm2bPublic(UPSTREAM.rsa.ekTpm)
  const name = UPSTREAM.rsa.akName
  const code = (f: () => unknown): string | undefined => {
    try {
      f()
    } catch (e) {
      return isTpmError(e) ? e.code : `untyped: ${String(e)}`
    }
    return undefined
  }

  test('credential longer than the nameAlg digest is rejected', () => {
    expect(code(() => makeCredential(ek, name, new Uint8Array(33)))).toBe('ERR_TPM_BAD_VALUE')
    expect(code(() => makeCredential(ek, name, new Uint8Array(0)))).toBe('ERR_TPM_BAD_VALUE')
  })

  test('malformed AK names are rejected', () => {
    expect(code(() => makeCredential(ek, name.subarray(0, 10), new Uint8Array(8)))).toBe(
      'ERR_TPM_BAD_VALUE',
    )
    expect(code(() => makeCredential(ek, hex('0012' + '00'.repeat(32)), new Uint8Array(8)))).toBe(
      'ERR_TPM_UNSUPPORTED',
    )
  })

  test('an EK without AES-CFB symmetric (e.g. an AK) is rejected', () => {
    const ak: TpmPublic = { ...ek, symmetric: { algorithm: 0x0010 } }
    expect(code(() => makeCredential(ak, name, new Uint8Array(8)))).toBe('ERR_TPM_UNSUPPORTED')
  })

  test('an AES-192 EK (no TCG template; no AES-192-CFB in BoringSSL) is a typed refusal', () => {
    const aes192: TpmPublic = { ...ek, symmetric: { ...ek.symmetric, keyBits: 192 } }
    expect(code(() => makeCredential(aes192, name, new Uint8Array(8)))).toBe('ERR_TPM_UNSUPPORTED')
  })

  test('an ECC EK whose point is off the curve is rejected', () => {
    const ecc = parseTpm2bPublic(UPSTREAM.ecc.ekTpm)
    if (ecc.type !== 'ecc') throw new Error('fixture')
    const bent: TpmPublic = { ...ecc, unique: { x: ecc.unique.x, y: new Uint8Array(32).fill(1) } }
    expect(code(() => makeCredential(bent, UPSTREAM.ecc.akName, new Uint8Array(8)))).toBe(
      'ERR_TPM_BAD_VALUE',
    )
  })
})
