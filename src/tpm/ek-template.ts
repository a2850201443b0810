/**
 * The TCG default EK templates, "L-1" (RSA-2048) and "L-2" (ECC P-256), from the TCG EK Credential
 * Profile 2.3 §B.3.3–B.3.4: SHA-256 name, policy A, AES-128-CFB, restricted decryption. The agent
 * creates its EK from them; the fleet simulator and software test agents describe their software EKs
 * with them.
 *
 * @module
 */
import { TPM_ALG_ID, TPM_ECC_CURVE, TPMA_OBJECT } from './constants.ts'
import type { TpmPublicInput } from './public-area.ts'

/** Policy A: `PolicySecret(TPM_RH_ENDORSEMENT)` digest, SHA-256 (EK Credential Profile §B.6.1). */
export const EK_POLICY_A: Uint8Array = Uint8Array.from(
  Buffer.from('837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa', 'hex'),
)

/** EK attributes: fixedTPM | fixedParent | sensitiveDataOrigin | adminWithPolicy | restricted | decrypt. */
export const EK_ATTRS =
  TPMA_OBJECT.fixedTPM |
  TPMA_OBJECT.fixedParent |
  TPMA_OBJECT.sensitiveDataOrigin |
  TPMA_OBJECT.adminWithPolicy |
  TPMA_OBJECT.restricted |
  TPMA_OBJECT.decrypt

/** The unique field of an EK: the RSA modulus or the ECC point. */
export type EkUnique = { n: Uint8Array } | { x: Uint8Array; y: Uint8Array }

/**
 * The public area of a default-template EK. With `unique` zero-filled it is the creation template;
 * with a key's modulus or point it describes that EK.
 */
export function ekPublicArea(unique: EkUnique): TpmPublicInput {
  const base = {
    nameAlg: TPM_ALG_ID.SHA256,
    objectAttributes: EK_ATTRS,
    authPolicy: EK_POLICY_A,
    symmetric: { algorithm: TPM_ALG_ID.AES, keyBits: 128, mode: TPM_ALG_ID.CFB },
    scheme: { scheme: TPM_ALG_ID.NULL },
  }
  if ('n' in unique) return { type: 'rsa', ...base, keyBits: 2048, exponent: 0, unique }
  return {
    type: 'ecc',
    ...base,
    curve: TPM_ECC_CURVE.NIST_P256,
    kdf: { scheme: TPM_ALG_ID.NULL },
    unique,
  }
}
