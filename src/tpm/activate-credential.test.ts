import { describe, expect, test } from 'bun:test'
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { activateCredential } from './activate-credential.ts'
import { TPM_ALG_ID, TPM_ECC_CURVE } from './constants.ts'
import { parseCredentialBlob, serializeCredentialBlob } from './credential-blob.ts'
import { ekPublicArea } from './ek-template.ts'
import { isTpmError } from './errors.ts'
import { makeCredential } from './make-credential.ts'
import {
  parseTpm2bPublic,
  serializeTpm2bPublic,
  type TpmPublic,
  type TpmPublicInput,
} from './public-area.ts'

const b64u = (v: string | undefined): Uint8Array =>
  Uint8Array.from(Buffer.from(v ?? '', 'base64url'))

interface SoftEk {
  pub: TpmPublic
  privateKey: KeyObject
}

/** A software EK with the TCG L-1/L-2 template, or with `override` applied (nameAlg, AES-256, curve). */
function softEk(kind: 'rsa' | 'p256' | 'p384', override: Partial<TpmPublicInput> = {}): SoftEk {
  const { publicKey, privateKey } =
    kind === 'rsa'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: kind === 'p256' ? 'prime256v1' : 'secp384r1' })
  const jwk = publicKey.export({ format: 'jwk' })
  const base = ekPublicArea(
    kind === 'rsa' ? { n: b64u(jwk.n) } : { x: b64u(jwk.x), y: b64u(jwk.y) },
  )
  const input = { ...base, ...override } as TpmPublicInput
  return { pub: parseTpm2bPublic(serializeTpm2bPublic(input)), privateKey }
}

const AK_NAME = Uint8Array.from(Buffer.from('000b' + '11'.repeat(32), 'hex'))
const OTHER_NAME = Uint8Array.from(Buffer.from('000b' + '22'.repeat(32), 'hex'))
const CREDENTIAL = new TextEncoder().encode('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')

function codeOf(f: () => unknown): string | undefined {
  try {
    f()
  } catch (e) {
    return isTpmError(e) ? e.code : `untyped: ${String(e)}`
  }
  return undefined
}

const CASES: [string, () => SoftEk][] = [
  ['RSA-2048 EK (L-1)', () => softEk('rsa')],
  ['ECC P-256 EK (L-2)', () => softEk('p256')],
  [
    'ECC P-384 EK, SHA-384, AES-256 (H-4 shape)',
    () =>
      softEk('p384', {
        nameAlg: TPM_ALG_ID.SHA384,
        authPolicy: new Uint8Array(48), // size-checked only; H-4 uses PolicyB-SHA384 here
        curve: TPM_ECC_CURVE.NIST_P384,
        symmetric: { algorithm: TPM_ALG_ID.AES, keyBits: 256, mode: TPM_ALG_ID.CFB },
      } as Partial<TpmPublicInput>),
  ],
]

describe('activateCredential inverts makeCredential', () => {
  for (const [name, make] of CASES) {
    const ek = make()
    test(`${name}: recovers the credential through Keylime's blob format`, () => {
      const blob = serializeCredentialBlob(makeCredential(ek.pub, AK_NAME, CREDENTIAL))
      const got = activateCredential(ek.pub, ek.privateKey, AK_NAME, parseCredentialBlob(blob))
      expect(new TextDecoder().decode(got)).toBe('ABCDEFGHIJKLMNOPQRSTUVWXYZ012345')
    })

    test(`${name}: a credential bound to another AK name fails the HMAC`, () => {
      const blob = makeCredential(ek.pub, AK_NAME, CREDENTIAL)
      expect(codeOf(() => activateCredential(ek.pub, ek.privateKey, OTHER_NAME, blob))).toBe(
        'ERR_TPM_HMAC',
      )
    })

    test(`${name}: a flipped bit in the ID object fails the HMAC`, () => {
      const blob = makeCredential(ek.pub, AK_NAME, CREDENTIAL)
      const tampered = Uint8Array.from(blob.credentialBlob)
      tampered[tampered.byteLength - 1]! ^= 1
      const bad = { credentialBlob: tampered, encryptedSecret: blob.encryptedSecret }
      expect(codeOf(() => activateCredential(ek.pub, ek.privateKey, AK_NAME, bad))).toBe(
        'ERR_TPM_HMAC',
      )
    })
  }

  test('another RSA EK cannot decrypt the seed (typed error)', () => {
    const a = softEk('rsa')
    const b = softEk('rsa')
    const blob = makeCredential(a.pub, AK_NAME, CREDENTIAL)
    expect(codeOf(() => activateCredential(b.pub, b.privateKey, AK_NAME, blob))).toBe(
      'ERR_TPM_BAD_VALUE',
    )
  })

  test('another ECC EK derives another seed, so the HMAC fails', () => {
    const a = softEk('p256')
    const b = softEk('p256')
    const blob = makeCredential(a.pub, AK_NAME, CREDENTIAL)
    expect(codeOf(() => activateCredential(b.pub, b.privateKey, AK_NAME, blob))).toBe(
      'ERR_TPM_HMAC',
    )
  })

  test('a malformed ECC secret is a typed error', () => {
    const ek = softEk('p256')
    const blob = makeCredential(ek.pub, AK_NAME, CREDENTIAL)
    const bad = { credentialBlob: blob.credentialBlob, encryptedSecret: new Uint8Array([0, 1, 7]) }
    expect(codeOf(() => activateCredential(ek.pub, ek.privateKey, AK_NAME, bad))).toMatch(
      /^ERR_TPM_/,
    )
  })
})
