/**
 * TPMT_SIGNATURE (TCG TPM 2.0 Library Part 2 §11.3.4): `sigAlg u16 | TPMU_SIGNATURE`, where RSASSA
 * and RSAPSS carry §11.3.1 TPMS_SIGNATURE_RSA (`hash u16 | sig TPM2B`) and ECDSA / ECSCHNORR / SM2
 * / ECDAA carry §11.3.2 TPMS_SIGNATURE_ECC (`hash u16 | r TPM2B | s TPM2B`).
 *
 * @module
 */

import { ByteReader } from './byte-reader.ts'
import { ByteWriter } from './byte-writer.ts'
import { DIGEST_SIZE_BY_ALG, TPM_ALG_ID } from './constants.ts'
import { TpmError } from './errors.ts'

/** An RSA signature (RSASSA-PKCS1-v1_5 or RSASSA-PSS). */
export interface TpmSignatureRsa {
  /** TPM_ALG_RSASSA or TPM_ALG_RSAPSS. */
  sigAlg: typeof TPM_ALG_ID.RSASSA | typeof TPM_ALG_ID.RSAPSS
  /** Hash algorithm signed with. */
  hashAlg: number
  /** The signature (modulus-sized). */
  sig: Uint8Array
}

/** An ECC signature. */
export interface TpmSignatureEcc {
  /** TPM_ALG_ECDSA, ECSCHNORR, SM2 or ECDAA. */
  sigAlg:
    | typeof TPM_ALG_ID.ECDSA
    | typeof TPM_ALG_ID.ECSCHNORR
    | typeof TPM_ALG_ID.SM2
    | typeof TPM_ALG_ID.ECDAA
  /** Hash algorithm signed with. */
  hashAlg: number
  /** r, big-endian (the TPM may strip leading zeros). */
  r: Uint8Array
  /** s, big-endian. */
  s: Uint8Array
}

/** A parsed TPMT_SIGNATURE. */
export type TpmSignature = TpmSignatureRsa | TpmSignatureEcc

const MAX_RSA_SIG = 512
const MAX_ECC_PARAM = 66

/** Reads a TPMT_SIGNATURE at the reader's cursor. */
export function readTpmtSignature(r: ByteReader): TpmSignature {
  const sigAlg = r.u16()
  switch (sigAlg) {
    case TPM_ALG_ID.RSASSA:
    case TPM_ALG_ID.RSAPSS: {
      const hashAlg = readSigHash(r)
      const sig = r.tpm2b()
      if (sig.byteLength === 0 || sig.byteLength > MAX_RSA_SIG) {
        throw new TpmError('ERR_TPM_BAD_VALUE', 'RSA signature size out of range')
      }
      return { sigAlg, hashAlg, sig }
    }
    case TPM_ALG_ID.ECDSA:
    case TPM_ALG_ID.ECSCHNORR:
    case TPM_ALG_ID.SM2:
    case TPM_ALG_ID.ECDAA: {
      const hashAlg = readSigHash(r)
      const rr = r.tpm2b()
      const s = r.tpm2b()
      if (rr.byteLength === 0 || s.byteLength === 0) {
        throw new TpmError('ERR_TPM_BAD_VALUE', 'ECC signature component empty')
      }
      if (rr.byteLength > MAX_ECC_PARAM || s.byteLength > MAX_ECC_PARAM) {
        throw new TpmError('ERR_TPM_BAD_VALUE', 'ECC signature component too long')
      }
      return { sigAlg, hashAlg, r: rr, s }
    }
    default:
      throw new TpmError('ERR_TPM_UNSUPPORTED', `signature algorithm 0x${sigAlg.toString(16)}`)
  }
}

function readSigHash(r: ByteReader): number {
  const h = r.u16()
  if (DIGEST_SIZE_BY_ALG[h] === undefined) {
    throw new TpmError('ERR_TPM_BAD_VALUE', `signature hash 0x${h.toString(16)} unknown`)
  }
  return h
}

/**
 * Parses a TPMT_SIGNATURE (no trailing bytes allowed). Byte fields are views into the input.
 *
 * @throws {TpmError} `ERR_TPM_TRUNCATED`, `ERR_TPM_TRAILING_BYTES`, `ERR_TPM_BAD_VALUE`,
 *   `ERR_TPM_UNSUPPORTED` (HMAC, NULL or unknown sigAlg).
 */
export function parseTpmtSignature(bytes: Uint8Array): TpmSignature {
  const r = new ByteReader(bytes)
  const sig = readTpmtSignature(r)
  r.end()
  return sig
}

/** Marshals a TPMT_SIGNATURE. */
export function serializeTpmtSignature(sig: TpmSignature): Uint8Array {
  const w = new ByteWriter()
  w.u16(sig.sigAlg).u16(sig.hashAlg)
  if ('sig' in sig) w.tpm2b(sig.sig)
  else w.tpm2b(sig.r).tpm2b(sig.s)
  return w.finish()
}
