/**
 * Soft TPM: its quotes verify with `src/tpm` verifyQuote (RSA and ECC AKs), every quote-level
 * fault is caught, PCR16 binds the NK, and ActivateCredential inverts makeCredential for RSA and
 * ECC EKs (and refuses blobs for another AK or EK).
 *
 * @module
 */

import { describe, expect, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { TPM_ST } from '../../src/tpm/constants.ts'
import { parseTpmsAttest } from '../../src/tpm/attest.ts'
import { serializeCredentialBlob } from '../../src/tpm/credential-blob.ts'
import { checkNkBinding } from '../../src/tpm/extend-pcr.ts'
import { makeCredential } from '../../src/tpm/make-credential.ts'
import { parseQuoteString } from '../../src/tpm/quote-string.ts'
import { verifyQuote } from '../../src/tpm/verify-quote.ts'
import { AK_EXPECTED_ATTRS } from '../../src/tpm/constants.ts'
import {
  EK_ATTRS,
  EK_POLICY_A,
  generateSoftTpmKey,
  type SoftKeyType,
  SoftTpm,
} from '../support/fleet/soft-tpm.ts'

const rsaEk = generateSoftTpmKey('rsa')
const nk = generateSoftTpmKey('rsa')
const rsaAk = generateSoftTpmKey('rsa')
const eccEk = generateSoftTpmKey('ecc')

function tpmFor(ek: SoftKeyType, ak: SoftKeyType): SoftTpm {
  return new SoftTpm({
    keys: {
      ek: ek === 'rsa' ? rsaEk : eccEk,
      ak: ak === 'rsa' ? rsaAk : generateSoftTpmKey('ecc'),
      nk,
    },
  })
}

describe('SoftTpm public areas', () => {
  test('EK uses the TCG default template, AK the Keylime AK attributes', () => {
    for (const kind of ['rsa', 'ecc'] as const) {
      const tpm = tpmFor(kind, kind)
      expect(tpm.ekPublic.objectAttributes).toBe(EK_ATTRS)
      expect(Buffer.from(tpm.ekPublic.authPolicy).equals(EK_POLICY_A)).toBe(true)
      expect(tpm.ekPublic.type).toBe(kind)
      expect(tpm.akPublic.objectAttributes).toBe(AK_EXPECTED_ATTRS)
      expect(tpm.akPublic.attributes.restricted && tpm.akPublic.attributes.sign).toBe(true)
      expect(tpm.akPublic.attributes.decrypt).toBe(false)
      expect(tpm.akName.byteLength).toBe(34)
    }
    // RSA L-1 EK TPM2B_PUBLIC is 2 + 314 bytes, as tpm2-tools' ek-template-default.bin + modulus
    expect(tpmFor('rsa', 'ecc').ekTpm2b.byteLength).toBe(316)
    expect(tpmFor('rsa', 'ecc').nkPem).toMatch(/^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n$/)
  })
})

describe('SoftTpm.quote', () => {
  for (const ak of ['rsa', 'ecc'] as const) {
    test(`${ak} AK quotes verify with verifyQuote and bind the NK in PCR16`, () => {
      const tpm = tpmFor('rsa', ak)
      tpm.extendData(10, 'boot_aggregate')
      tpm.bindNk()
      const q = tpm.quote('abcDEF123', [0, 10, 16])
      expect(q.quote.startsWith('r/1RDR4AY')).toBe(true)
      const v = verifyQuote({
        quote: q.quote,
        akPublic: tpm.akPublic,
        nonce: 'abcDEF123',
        hashAlg: 'sha256',
        signAlg: ak === 'rsa' ? 'rsassa' : 'ecdsa',
      })
      expect(v.pcrSelection[0]?.pcrs).toEqual([0, 10, 16])
      checkNkBinding(v.pcrs, 'sha256', tpm.nkPem)
      expect(Buffer.from(v.pcrs.get('sha256')!.get(16)!)).toEqual(Buffer.from(tpm.expectedPcr16()))
      expect(Buffer.from(v.qualifiedSigner)).toEqual(Buffer.from(tpm.akName))
    })
  }

  test('clock rises strictly, reset/restart counts stay fixed, safe = 1', () => {
    const tpm = tpmFor('ecc', 'ecc')
    let last = -1n
    for (let i = 0; i < 50; i++) {
      const a = parseTpmsAttest(tpm.quote('n', [16]).attest, { expectType: TPM_ST.ATTEST_QUOTE })
      expect(a.clockInfo.clock > last).toBe(true)
      expect(a.clockInfo.resetCount).toBe(1)
      expect(a.clockInfo.restartCount).toBe(0)
      expect(a.clockInfo.safe).toBe(true)
      last = a.clockInfo.clock
    }
  })

  test('a SHA-1 AK quotes the sha1 bank; a quote in another hash is refused', () => {
    const tpm = new SoftTpm({
      keys: { ek: rsaEk, ak: generateSoftTpmKey('ecc'), nk },
      hashAlg: 'sha1',
      banks: ['sha256'],
    })
    tpm.bindNk()
    const q = tpm.quote('n1', [16])
    const v = verifyQuote({ quote: q.quote, akPublic: tpm.akPublic, nonce: 'n1', hashAlg: 'sha1' })
    checkNkBinding(v.pcrs, 'sha1', tpm.nkPem)
    expect(tpm.banks.sort()).toEqual(['sha1', 'sha256'])
    expect(() => tpm.quote('n1', [16], 'sha256')).toThrow(/signs with sha1/)
  })

  test('tampering is caught: other AK, wrong nonce, flipped signature, changed PCR blob', () => {
    const tpm = tpmFor('rsa', 'ecc')
    tpm.bindNk()
    const q = tpm.quote('nonce1', [15, 16])
    const other = tpmFor('rsa', 'ecc')
    const check = (quote: string, ak = tpm.akPublic, nonce = 'nonce1') =>
      verifyQuote({ quote, akPublic: ak, nonce, hashAlg: 'sha256' })
    expect(() => check(q.quote, other.akPublic)).toThrow(
      expect.objectContaining({ code: 'ERR_QUOTE_SIGNATURE' }),
    )
    expect(() => check(q.quote, tpm.akPublic, 'nonce2')).toThrow(
      expect.objectContaining({ code: 'ERR_QUOTE_NONCE' }),
    )
    const parts = parseQuoteString(q.quote)
    const sig = new Uint8Array(parts.signature)
    sig[sig.byteLength - 1]! ^= 1
    expect(() => check(`r${b64(parts.attest)}:${b64(sig)}:${b64(parts.pcrBlob)}`)).toThrow(
      expect.objectContaining({ code: 'ERR_QUOTE_SIGNATURE' }),
    )
    const blob = new Uint8Array(parts.pcrBlob)
    blob[142]! ^= 1 // first byte of the first digest (PCR15): 136 list count, 140 size
    expect(() => check(`r${b64(parts.attest)}:${b64(parts.signature)}:${b64(blob)}`)).toThrow(
      expect.objectContaining({ code: 'ERR_QUOTE_PCR_DIGEST' }),
    )
  })
})

function b64(b: Uint8Array): string {
  return Buffer.from(b).toString('base64')
}

describe('SoftTpm.activateCredential', () => {
  for (const ek of ['rsa', 'ecc'] as const) {
    test(`inverts makeCredential for an ${ek} EK (file format and raw buffers)`, () => {
      const tpm = tpmFor(ek, 'ecc')
      for (let i = 0; i < 5; i++) {
        const secret = randomBytes(32)
        const blob = makeCredential(tpm.ekPublic, tpm.akName, secret)
        expect(Buffer.from(tpm.activateCredential(serializeCredentialBlob(blob)))).toEqual(secret)
        expect(Buffer.from(tpm.activateCredential(blob))).toEqual(secret)
      }
    })

    test(`${ek} EK: a blob for another AK name or another EK is refused`, () => {
      const tpm = tpmFor(ek, 'ecc')
      const other = tpmFor(ek, 'ecc')
      const blob = makeCredential(tpm.ekPublic, other.akName, randomBytes(32))
      expect(() => tpm.activateCredential(blob)).toThrow(
        expect.objectContaining({ code: 'ERR_TPM_HMAC' }),
      )
      const foreignEk = new SoftTpm({
        keys: { ek: generateSoftTpmKey(ek), ak: generateSoftTpmKey('ecc'), nk },
      })
      const blob2 = makeCredential(foreignEk.ekPublic, tpm.akName, randomBytes(32))
      expect(() => tpm.activateCredential(blob2)).toThrow(
        expect.objectContaining({ code: ek === 'rsa' ? 'ERR_TPM_BAD_VALUE' : 'ERR_TPM_HMAC' }),
      )
      const good = makeCredential(tpm.ekPublic, tpm.akName, randomBytes(32))
      const tampered = { ...good, credentialBlob: new Uint8Array(good.credentialBlob) }
      tampered.credentialBlob[tampered.credentialBlob.byteLength - 1]! ^= 0x80
      expect(() => tpm.activateCredential(tampered)).toThrow(
        expect.objectContaining({ code: 'ERR_TPM_HMAC' }),
      )
    })
  }
})
