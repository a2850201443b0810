/**
 * EK public areas a hostile client may send in `ek_tpm` (issue 17, finding 8): each one a real
 * software EK with one field bent. On c9aa72c the first three made MakeCredential throw untyped
 * OpenSSL errors (HTTP 500).
 *
 * @module
 */
import { makeSoftwareEk } from './software-agent.ts'
import { TPM_ALG_ID } from '../../src/tpm/constants.ts'
import {
  serializeTpm2bPublic,
  type TpmPublic,
  type TpmPublicInput,
} from '../../src/tpm/public-area.ts'

/** One hostile EK: its TPM2B_PUBLIC and the words the refusal must contain. */
export interface HostileEk {
  name: string
  tpm2b: Uint8Array
  /** Part of the 400's text (a parse error, or the registrar's EK check). */
  reason: string
}

function bent(base: TpmPublic, change: (p: TpmPublicInput) => TpmPublicInput): Uint8Array {
  return serializeTpm2bPublic(change(base as TpmPublicInput))
}

function flipLastBit(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(b)
  out[out.length - 1]! &= 0xfe
  return out
}

/** The hostile EKs, built on fresh software EKs (RSA-2048 L-1, ECC P-256 L-2). */
export function hostileEks(): HostileEk[] {
  const rsa = makeSoftwareEk('rsa').pub
  const ecc = makeSoftwareEk('ecc').pub
  const aes = (bits: number) => (p: TpmPublicInput) => ({
    ...p,
    symmetric: { ...p.symmetric, keyBits: bits },
  })
  return [
    { name: 'AES-192', tpm2b: bent(rsa, aes(192)), reason: 'AES-128-CFB or AES-256-CFB' },
    { name: 'ECC with AES-192', tpm2b: bent(ecc, aes(192)), reason: 'AES-128-CFB or AES-256-CFB' },
    {
      name: 'RSA exponent 1',
      tpm2b: bent(rsa, (p) => (p.type === 'rsa' ? { ...p, exponent: 1 } : p)),
      reason: 'RSA exponent 1 not allowed',
    },
    {
      name: 'an even RSA modulus',
      tpm2b: bent(rsa, (p) =>
        p.type === 'rsa' ? { ...p, unique: { n: flipLastBit(p.unique.n) } } : p,
      ),
      reason: 'RSA modulus is even',
    },
    {
      name: 'AES-128-CBC',
      tpm2b: bent(ecc, (p) => ({ ...p, symmetric: { ...p.symmetric, mode: TPM_ALG_ID.CBC } })),
      reason: 'AES-128-CFB or AES-256-CFB',
    },
    {
      name: 'SM4',
      tpm2b: bent(rsa, (p) => ({ ...p, symmetric: { ...p.symmetric, algorithm: TPM_ALG_ID.SM4 } })),
      reason: 'AES-128-CFB or AES-256-CFB',
    },
    {
      name: 'an OAEP scheme',
      tpm2b: bent(rsa, (p) => ({
        ...p,
        scheme: { scheme: TPM_ALG_ID.OAEP, hashAlg: TPM_ALG_ID.SHA256 },
      })),
      reason: 'NULL scheme',
    },
    {
      name: 'an ECC kdf',
      tpm2b: bent(ecc, (p) =>
        p.type === 'ecc'
          ? { ...p, kdf: { scheme: TPM_ALG_ID.KDF2, hashAlg: TPM_ALG_ID.SHA256 } }
          : p,
      ),
      reason: 'NULL scheme',
    },
    {
      name: 'an ECC point off the curve',
      tpm2b: bent(ecc, (p) => {
        if (p.type !== 'ecc') return p
        const y = new Uint8Array(p.unique.y)
        y[3]! ^= 0x10
        return { ...p, unique: { x: p.unique.x, y } }
      }),
      reason: 'usable public key',
    },
    {
      name: 'an unknown nameAlg',
      tpm2b: bent(rsa, (p) => ({ ...p, nameAlg: 0x0012, authPolicy: new Uint8Array(0) })),
      reason: 'nameAlg is not supported',
    },
  ]
}
