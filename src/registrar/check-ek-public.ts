/**
 * The EK public area a registration may carry, checked in full before the registrar uses it for
 * TPM2_MakeCredential, so that every malformed EK is a 400 naming the field and never reaches
 * OpenSSL (issue 17, finding 8).
 *
 * What a TPM's TPM2_CreatePrimary accepts for a restricted decryption key, narrowed to what the
 * TCG EK Credential Profile (2.5, Annex B) templates use:
 * - objectAttributes: restricted and decrypt set, sign clear (a storage-type primary);
 * - symmetric: AES-128-CFB (L-1, L-2, H-1, H-2) or AES-256-CFB (H-3 to H-7);
 * - scheme NULL, and for ECC also kdf NULL (Part 2 §12.2.3.5/§12.2.3.6: a restricted decryption
 *   key has no scheme);
 * - nameAlg a hash the KDFs support (SHA-1/256/384/512);
 * - the key itself usable: RSA exponent 0 (65537) or odd and > 1, modulus odd and of `keyBits`
 *   with its top bit set; ECC P-256/P-384/P-521 with the point on the curve (`toKeyObject`).
 *
 * @module
 */
import { isKeylimeError } from '../errors.ts'
import { TPM_ALG_ID, TPMA_OBJECT } from '../tpm/constants.ts'
import { kdfHashOf } from '../tpm/kdf.ts'
import { type TpmPublic, toKeyObject } from '../tpm/public-area.ts'
import { invalidData } from './errors.ts'

/** AES key sizes of the TCG EK templates. */
const EK_AES_BITS: ReadonlySet<number> = new Set([128, 256])

/**
 * Throws a 400 for an EK public area the registrar cannot or must not use.
 *
 * @throws RegistrarError `ERR_REGISTRAR_INVALID_DATA`
 */
export function checkEkPublic(ek: TpmPublic): void {
  const a = ek.objectAttributes
  if (
    (a & TPMA_OBJECT.restricted) === 0 ||
    (a & TPMA_OBJECT.decrypt) === 0 ||
    (a & TPMA_OBJECT.sign) !== 0
  ) {
    throw invalidData('ek_tpm must be a restricted decryption key')
  }
  const sym = ek.symmetric
  if (
    sym.algorithm !== TPM_ALG_ID.AES ||
    sym.mode !== TPM_ALG_ID.CFB ||
    !EK_AES_BITS.has(sym.keyBits ?? 0)
  ) {
    throw invalidData('ek_tpm symmetric algorithm must be AES-128-CFB or AES-256-CFB')
  }
  if (
    ek.scheme.scheme !== TPM_ALG_ID.NULL ||
    (ek.type === 'ecc' && ek.kdf.scheme !== TPM_ALG_ID.NULL)
  ) {
    throw invalidData('ek_tpm must have a NULL scheme (a restricted decryption key)')
  }
  try {
    kdfHashOf(ek.nameAlg)
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(`ek_tpm nameAlg is not supported (${e.message})`, undefined, e)
  }
  try {
    toKeyObject(ek)
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(`ek_tpm does not hold a usable public key (${e.message})`, undefined, e)
  }
}
