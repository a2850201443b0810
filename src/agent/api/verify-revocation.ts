/**
 * Revocation notice signatures (wire-formats §5, rust-keylime `revocation.rs`): RSA-PSS with
 * SHA-256, MGF1-SHA256 and any salt length (the verifier uses the maximum), over the exact bytes
 * of `msg`, checked with the public key of `RevocationNotifier-cert.crt`.
 *
 * @module
 */

import { constants, type KeyObject, verify, X509Certificate } from 'node:crypto'

/** The public key of a revocation certificate (PEM). */
export function revocationKeyFromCert(pem: string | Uint8Array): KeyObject {
  return new X509Certificate(pem).publicKey
}

/** True if `signature` (base64) signs `msg` under `key`. */
export function verifyRevocation(msg: string, signature: string, key: KeyObject): boolean {
  try {
    return verify(
      'sha256',
      Buffer.from(msg, 'utf8'),
      {
        key,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_AUTO,
      },
      Buffer.from(signature, 'base64'),
    )
  } catch {
    return false
  }
}
