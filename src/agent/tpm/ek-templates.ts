/**
 * Key templates (TPMT_PUBLIC) of the agent's keys, as tss-esapi 7.7.0 builds them for
 * rust-keylime (wire-formats §6.4): the TCG default EKs "L-1" (RSA-2048) and "L-2" (ECC P-256),
 * and the AK, a restricted signing key under the EK whose nameAlg and scheme hash follow
 * `tpm_hash_alg`.
 *
 * @module
 */

import {
  AK_EXPECTED_ATTRS,
  type EncAlg,
  HASH_ALG_ID,
  type HashAlg,
  SIGN_ALG_ID,
  type SignAlg,
  TPM_ALG_ID,
  TPM_ECC_CURVE,
} from '../../tpm/constants.ts'
import { EK_ATTRS, EK_POLICY_A, ekPublicArea } from '../../tpm/ek-template.ts'
import { serializeTpmtPublic, type TpmPublic } from '../../tpm/public-area.ts'
import { AgentError } from '../errors.ts'

export { EK_ATTRS, EK_POLICY_A } from '../../tpm/ek-template.ts'

/** The default EK template (L-1 RSA-2048 or L-2 ECC P-256), zero-filled unique. */
export function ekTemplate(alg: EncAlg): Uint8Array {
  return serializeTpmtPublic(
    ekPublicArea(
      alg === 'rsa' ? { n: new Uint8Array(256) } : { x: new Uint8Array(32), y: new Uint8Array(32) },
    ),
  )
}

/** True if `pub` is an EK made from {@link ekTemplate} (used to adopt a persistent EK). */
export function isDefaultEk(pub: TpmPublic, alg: EncAlg): boolean {
  if (pub.objectAttributes !== EK_ATTRS || pub.nameAlg !== TPM_ALG_ID.SHA256) return false
  if (Buffer.compare(Buffer.from(pub.authPolicy), Buffer.from(EK_POLICY_A)) !== 0) return false
  if (pub.symmetric.algorithm !== TPM_ALG_ID.AES || pub.symmetric.keyBits !== 128) return false
  if (alg === 'rsa') return pub.type === 'rsa' && pub.keyBits === 2048
  return pub.type === 'ecc' && pub.curve === TPM_ECC_CURVE.NIST_P256
}

/**
 * The AK template for `enc` (key type) with `sign` scheme and `hash`.
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` for a scheme that does not fit the key type.
 */
export function akTemplate(enc: EncAlg, sign: SignAlg, hash: HashAlg): Uint8Array {
  const hashAlg = HASH_ALG_ID[hash]
  const base = {
    nameAlg: hashAlg,
    objectAttributes: AK_EXPECTED_ATTRS,
    authPolicy: new Uint8Array(0),
    symmetric: { algorithm: TPM_ALG_ID.NULL },
  }
  if (enc === 'rsa') {
    if (sign !== 'rsassa' && sign !== 'rsapss') {
      throw new AgentError('ERR_AGENT_CONFIG', `option tpm_signing_alg: ${sign} needs an ECC key`)
    }
    return serializeTpmtPublic({
      type: 'rsa',
      ...base,
      scheme: { scheme: SIGN_ALG_ID[sign], hashAlg },
      keyBits: 2048,
      exponent: 0,
      unique: { n: new Uint8Array(0) },
    })
  }
  if (sign !== 'ecdsa') {
    throw new AgentError('ERR_AGENT_CONFIG', `option tpm_signing_alg: ${sign} needs an RSA key`)
  }
  return serializeTpmtPublic({
    type: 'ecc',
    ...base,
    scheme: { scheme: TPM_ALG_ID.ECDSA, hashAlg },
    curve: TPM_ECC_CURVE.NIST_P256,
    kdf: { scheme: TPM_ALG_ID.NULL },
    unique: { x: new Uint8Array(0), y: new Uint8Array(0) },
  })
}
