/**
 * Software TPM2_ActivateCredential: the inverse of {@link makeCredential} for a caller that holds
 * the EK's private key (TCG TPM 2.0 Library Part 1 §24 "Credential Protection", Part 3 §12.5).
 * Test doubles (the software agent, the fleet simulator's soft TPM) use it to answer the
 * registrar's challenge as a real TPM would; no role calls it.
 *
 * 1. seed: RSA EK — `seed = RSA-OAEP⁻¹(EK, secret, H, label "IDENTITY\0")`; ECC EK —
 *    `secret = TPMS_ECC_POINT(x_e, y_e)`, `Z = x(d_EK·Q_e)`,
 *    `seed = KDFe(H, Z, "IDENTITY", x_e, x_EK, hlen·8)`.
 * 2. `hmacKey = KDFa(H, seed, "INTEGRITY", "", "", hlen·8)`; the outer HMAC over
 *    `encIdentity ‖ akName` must match (constant-time compare).
 * 3. `symKey = KDFa(H, seed, "STORAGE", akName, "", symBits)`;
 *    `TPM2B(credential) = AES-CFB⁻¹(symKey, IV = 0)(encIdentity)`.
 *
 * @module
 */

import {
  constants,
  createDecipheriv,
  createECDH,
  createHmac,
  type ECDH,
  type KeyObject,
  privateDecrypt,
  timingSafeEqual,
} from 'node:crypto'
import { ByteReader } from './byte-reader.ts'
import { ECC_CURVE_INFO, HASH_SIZE } from './constants.ts'
import { type CredentialBlob, parseIdObject } from './credential-blob.ts'
import { TpmError } from './errors.ts'
import { type KdfHash, kdfa, kdfe } from './kdf.ts'
import {
  credentialAlgorithms,
  ECDH_CURVE,
  IDENTITY_LABEL,
  leftPad,
  type makeCredential,
} from './make-credential.ts'
import type { TpmPublic, TpmPublicEcc } from './public-area.ts'

/** EK private keys → ECDH objects, since importing the scalar dominates ECC activation. */
const ecdhCache = new WeakMap<KeyObject, ECDH>()

function ecdhOf(privateKey: KeyObject, curve: string, size: number): ECDH {
  let dh = ecdhCache.get(privateKey)
  if (dh === undefined) {
    const d = privateKey.export({ format: 'jwk' }).d
    if (typeof d !== 'string') throw new TpmError('ERR_TPM_BAD_VALUE', 'EK private key is not EC')
    dh = createECDH(curve)
    dh.setPrivateKey(leftPad(Buffer.from(d, 'base64url'), size))
    ecdhCache.set(privateKey, dh)
  }
  return dh
}

/** Recovers the seed from an ECC EK's TPMS_ECC_POINT secret (Part 1 §C.6.4). */
function eccSeed(
  ek: TpmPublicEcc,
  privateKey: KeyObject,
  secret: Uint8Array,
  hash: KdfHash,
): Uint8Array {
  const curve = ECDH_CURVE[ek.curve]
  const info = ECC_CURVE_INFO[ek.curve as keyof typeof ECC_CURVE_INFO]
  if (curve === undefined || info === undefined) {
    throw new TpmError('ERR_TPM_UNSUPPORTED', `ECC curve 0x${ek.curve.toString(16)} not supported`)
  }
  const size = info.size
  const r = new ByteReader(secret)
  const x = r.tpm2b()
  const y = r.tpm2b()
  r.end()
  if (x.byteLength === 0 || x.byteLength > size || y.byteLength === 0 || y.byteLength > size) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'ephemeral point has bad coordinate sizes')
  }
  const ephX = leftPad(x, size)
  const point = Buffer.concat([Buffer.from([4]), ephX, leftPad(y, size)])
  let z: Uint8Array
  try {
    z = ecdhOf(privateKey, curve, size).computeSecret(point)
  } catch (cause) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'ephemeral point is not on the EK curve', { cause })
  }
  const ekX = leftPad(ek.unique.x, size)
  return kdfe(hash, leftPad(z, size), 'IDENTITY', ephX, ekX, HASH_SIZE[hash] * 8)
}

/**
 * TPM2_ActivateCredential in software.
 *
 * @param ekPublic - the EK public area the credential was made for
 * @param ekPrivateKey - the EK's private key (RSA or EC `KeyObject`)
 * @param akName - the Name of the AK the credential is bound to (`nameAlg ‖ digest`)
 * @param blob - the two buffers {@link makeCredential} returned (`parseCredentialBlob` reads
 *   Keylime's `blob` into them)
 * @returns the credential
 * @throws TpmError `ERR_TPM_HMAC` if the outer HMAC does not verify (wrong EK or AK name, or a
 *   tampered blob); `ERR_TPM_BAD_VALUE` for malformed input or a seed that does not decrypt;
 *   `ERR_TPM_UNSUPPORTED` for an EK whose algorithms {@link makeCredential} refuses
 *
 * @example
 * ```ts
 * const credential = activateCredential(ek.pub, ek.privateKey, akName, parseCredentialBlob(blob))
 * ```
 */
export function activateCredential(
  ekPublic: TpmPublic,
  ekPrivateKey: KeyObject,
  akName: Uint8Array,
  blob: CredentialBlob,
): Uint8Array {
  const { hash, hlen, symBits } = credentialAlgorithms(ekPublic)
  let seed: Uint8Array
  if (ekPublic.type === 'rsa') {
    try {
      seed = privateDecrypt(
        {
          key: ekPrivateKey,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: hash,
          oaepLabel: IDENTITY_LABEL,
        },
        blob.encryptedSecret,
      )
    } catch (cause) {
      throw new TpmError('ERR_TPM_BAD_VALUE', 'encrypted seed does not decrypt with the EK', {
        cause,
      })
    }
  } else {
    seed = eccSeed(ekPublic, ekPrivateKey, blob.encryptedSecret, hash)
  }

  const { integrityHmac, encIdentity } = parseIdObject(blob.credentialBlob)
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), hlen * 8)
  const expected = createHmac(hash, hmacKey).update(encIdentity).update(akName).digest()
  if (
    integrityHmac.byteLength !== expected.byteLength ||
    !timingSafeEqual(integrityHmac, expected)
  ) {
    throw new TpmError('ERR_TPM_HMAC', 'credential integrity HMAC does not verify')
  }

  const symKey = kdfa(hash, seed, 'STORAGE', akName, new Uint8Array(0), symBits)
  const decipher = createDecipheriv(`aes-${symBits}-cfb`, symKey, new Uint8Array(16))
  const plain = Buffer.concat([decipher.update(encIdentity), decipher.final()])
  const r = new ByteReader(plain)
  const credential = r.tpm2b()
  r.end()
  return new Uint8Array(credential)
}
