/**
 * Software TPM2_MakeCredential: bind a credential (the registrar's challenge) to an AK name so that
 * only the TPM holding the EK's private key, with that AK loaded, can recover it with
 * TPM2_ActivateCredential (TCG TPM 2.0 Library Part 1 §24 "Credential Protection",
 * Part 3 §12.6). Same algorithm as upstream `keylime/tpm/tpm_util.py::makecredential` (wire-formats
 * §3.2):
 *
 * 1. seed: RSA EK — `seed = random(hlen)`, `secret = RSA-OAEP(EK, seed, H, label "IDENTITY\0")`;
 *    ECC EK — ephemeral ECDH on the EK curve, `Z = x(d_e·Q_EK)`,
 *    `seed = KDFe(H, Z, "IDENTITY", x_e, x_EK, hlen·8)`, `secret = TPMS_ECC_POINT(x_e, y_e)`.
 * 2. `symKey = KDFa(H, seed, "STORAGE", akName, "", symBits)` (Part 1 §24.4).
 * 3. `encIdentity = AES-CFB(symKey, IV = 0)(TPM2B(credential))`.
 * 4. `hmacKey = KDFa(H, seed, "INTEGRITY", "", "", hlen·8)`,
 *    `outerHMAC = HMAC_H(hmacKey, encIdentity ‖ akName)` (Part 1 §24.5).
 * 5. `credentialBlob = TPM2B(outerHMAC) ‖ encIdentity` (TPMS_ID_OBJECT).
 *
 * `H` is the EK's nameAlg and the symmetric algorithm the EK's (AES-128-CFB for the low-range
 * templates and H-1/H-2, AES-256-CFB for H-3 to H-7). Every malformed EK ends in a
 * {@link TpmError}, never an untyped OpenSSL error.
 *
 * @module
 */

import {
  constants,
  createCipheriv,
  createECDH,
  createHmac,
  type KeyObject,
  publicEncrypt,
  randomBytes,
} from 'node:crypto'
import { ByteWriter } from './byte-writer.ts'
import { ECC_CURVE_INFO, HASH_SIZE, TPM_ALG_ID, TPM_ECC_CURVE } from './constants.ts'
import type { CredentialBlob } from './credential-blob.ts'
import { TpmError } from './errors.ts'
import { type KdfHash, kdfa, kdfe, kdfHashOf } from './kdf.ts'
import { type TpmPublic, type TpmPublicEcc, toKeyObject } from './public-area.ts'

/** OpenSSL names of the curves an ECC EK may use for the ephemeral ECDH. */
export const ECDH_CURVE: Readonly<Record<number, string>> = {
  [TPM_ECC_CURVE.NIST_P256]: 'prime256v1',
  [TPM_ECC_CURVE.NIST_P384]: 'secp384r1',
  [TPM_ECC_CURVE.NIST_P521]: 'secp521r1',
}

/** The OAEP label of the credential seed, NUL included (Part 1 §24.4, §B.10.3). */
export const IDENTITY_LABEL = Buffer.from('IDENTITY\0', 'latin1')

/** Options that make {@link makeCredential} deterministic, for test vectors only. */
export interface MakeCredentialOptions {
  /** RSA EKs: the seed to encrypt (must be one nameAlg digest long). Default: random. */
  seed?: Uint8Array
  /** ECC EKs: the ephemeral private scalar (curve-size big-endian bytes). Default: random. */
  ephemeralPrivateKey?: Uint8Array
}

/** Parsed EK publics → KeyObject, since creating a KeyObject dominates RSA MakeCredential. */
const keyCache = new WeakMap<TpmPublic, KeyObject>()

function bad(code: 'ERR_TPM_BAD_VALUE' | 'ERR_TPM_UNSUPPORTED', message: string): never {
  throw new TpmError(code, message)
}

/** `b` left-padded with zeros to `size` bytes (ECC coordinates may arrive short). */
export function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.byteLength === size) return b
  if (b.byteLength > size) bad('ERR_TPM_BAD_VALUE', 'ECC coordinate longer than the curve size')
  const out = new Uint8Array(size)
  out.set(b, size - b.byteLength)
  return out
}

/** Validates an object Name: `nameAlg u16 ‖ digest` with the digest size of nameAlg. */
function checkName(name: Uint8Array): void {
  if (name.byteLength < 2) bad('ERR_TPM_BAD_VALUE', 'AK name is shorter than 2 bytes')
  const alg = (name[0]! << 8) | name[1]!
  const hash = kdfHashOf(alg)
  if (name.byteLength !== 2 + HASH_SIZE[hash]) {
    bad(
      'ERR_TPM_BAD_VALUE',
      `AK name has ${name.byteLength} bytes, expected ${2 + HASH_SIZE[hash]}`,
    )
  }
}

/**
 * The algorithms credential protection uses for `ekPublic` (Part 1 §24.4): its nameAlg `hash`
 * (digest size `hlen`) and its AES-CFB key size.
 *
 * @throws TpmError `ERR_TPM_UNSUPPORTED` for a nameAlg, symmetric algorithm or key size we lack
 */
export function credentialAlgorithms(ekPublic: TpmPublic): {
  hash: KdfHash
  hlen: number
  symBits: 128 | 256
} {
  const hash = kdfHashOf(ekPublic.nameAlg)
  const sym = ekPublic.symmetric
  if (sym.algorithm !== TPM_ALG_ID.AES || sym.mode !== TPM_ALG_ID.CFB) {
    bad('ERR_TPM_UNSUPPORTED', 'EK symmetric algorithm must be AES-CFB')
  }
  // The TCG EK templates use AES-128 (L-1, L-2, H-1, H-2) or AES-256 (H-3 to H-7); BoringSSL,
  // under Bun, has no AES-192-CFB.
  const symBits = sym.keyBits ?? 0
  if (symBits !== 128 && symBits !== 256) {
    bad('ERR_TPM_UNSUPPORTED', `EK AES key size ${symBits} not supported (128 or 256)`)
  }
  return { hash, hlen: HASH_SIZE[hash], symBits }
}

/** Seed and encrypted secret for an ECC EK (Part 1 §C.6.4 / §24.4 with ECDH). */
function eccSeed(
  ek: TpmPublicEcc,
  hash: KdfHash,
  priv: Uint8Array | undefined,
): { seed: Uint8Array; secret: Uint8Array } {
  const curve = ECDH_CURVE[ek.curve]
  const info = ECC_CURVE_INFO[ek.curve as keyof typeof ECC_CURVE_INFO]
  if (curve === undefined || info === undefined) {
    bad('ERR_TPM_UNSUPPORTED', `ECC curve 0x${ek.curve.toString(16)} not supported`)
  }
  const size = info.size
  const ekX = leftPad(ek.unique.x, size)
  const ekY = leftPad(ek.unique.y, size)
  if (ek.unique.x.byteLength === 0 || ek.unique.y.byteLength === 0) {
    bad('ERR_TPM_BAD_VALUE', 'EK public point is empty')
  }
  const ecdh = createECDH(curve)
  if (priv === undefined) ecdh.generateKeys()
  else ecdh.setPrivateKey(leftPad(priv, size))
  const point = new Uint8Array(1 + 2 * size)
  point[0] = 0x04
  point.set(ekX, 1)
  point.set(ekY, 1 + size)
  let z: Uint8Array
  try {
    z = ecdh.computeSecret(point)
  } catch (cause) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'EK public point is not on its curve', { cause })
  }
  const eph = ecdh.getPublicKey()
  const ephX = eph.subarray(1, 1 + size)
  const ephY = eph.subarray(1 + size, 1 + 2 * size)
  const seed = kdfe(hash, leftPad(z, size), 'IDENTITY', ephX, ekX, HASH_SIZE[hash] * 8)
  const secret = new ByteWriter().tpm2b(ephX).tpm2b(ephY).finish()
  return { seed, secret }
}

/**
 * TPM2_MakeCredential in software.
 *
 * @param ekPublic - the EK public area (a restricted decryption key with an AES-CFB symmetric
 *   definition, RSA or ECC P-256/P-384/P-521; nameAlg SHA-1/256/384/512)
 * @param akName - the Name of the AK the credential is bound to (`nameAlg ‖ digest`)
 * @param credential - the secret, 1…hlen bytes (hlen = digest size of the EK nameAlg)
 * @param options - deterministic seed / ephemeral key, for tests only
 * @returns the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET buffers; serialize them for Keylime's
 *   `blob` with `serializeCredentialBlob`
 * @throws TpmError `ERR_TPM_UNSUPPORTED` (algorithm, curve, symmetric) or `ERR_TPM_BAD_VALUE`
 *
 * @example
 * ```ts
 * const ek = parseTpm2bPublic(ekTpm)
 * const blob = serializeCredentialBlob(makeCredential(ek, computeName(ak), challenge))
 * ```
 */
export function makeCredential(
  ekPublic: TpmPublic,
  akName: Uint8Array,
  credential: Uint8Array,
  options: MakeCredentialOptions = {},
): CredentialBlob {
  const { hash, hlen, symBits } = credentialAlgorithms(ekPublic)
  checkName(akName)
  if (credential.byteLength === 0 || credential.byteLength > hlen) {
    bad('ERR_TPM_BAD_VALUE', `credential must be 1..${hlen} bytes, got ${credential.byteLength}`)
  }

  let seed: Uint8Array
  let encryptedSecret: Uint8Array
  if (ekPublic.type === 'rsa') {
    seed = options.seed ?? randomBytes(hlen)
    if (seed.byteLength !== hlen) bad('ERR_TPM_BAD_VALUE', `seed must be ${hlen} bytes`)
    let key = keyCache.get(ekPublic)
    if (key === undefined) {
      key = toKeyObject(ekPublic)
      keyCache.set(ekPublic, key)
    }
    try {
      encryptedSecret = publicEncrypt(
        {
          key,
          padding: constants.RSA_PKCS1_OAEP_PADDING,
          oaepHash: hash,
          oaepLabel: IDENTITY_LABEL,
        },
        seed,
      )
    } catch (cause) {
      // toKeyObject checked the key; OpenSSL's own checks are the backstop for what it missed.
      throw new TpmError('ERR_TPM_BAD_VALUE', 'EK RSA public key rejected by OAEP', { cause })
    }
  } else {
    const r = eccSeed(ekPublic, hash, options.ephemeralPrivateKey)
    seed = r.seed
    encryptedSecret = r.secret
  }

  // Part 1 §24.4: symmetric protection of TPM2B(credential)
  const symKey = kdfa(hash, seed, 'STORAGE', akName, new Uint8Array(0), symBits)
  const plain = new ByteWriter().tpm2b(credential).finish()
  const cipher = createCipheriv(`aes-${symBits}-cfb`, symKey, new Uint8Array(16))
  const encIdentity = Buffer.concat([cipher.update(plain), cipher.final()])

  // Part 1 §24.5: outer HMAC over encIdentity ‖ name
  const hmacKey = kdfa(hash, seed, 'INTEGRITY', new Uint8Array(0), new Uint8Array(0), hlen * 8)
  const outerHmac = createHmac(hash, hmacKey).update(encIdentity).update(akName).digest()

  const credentialBlob = new ByteWriter().tpm2b(outerHmac).bytes(encIdentity).finish()
  return { credentialBlob, encryptedSecret: new Uint8Array(encryptedSecret) }
}
