/**
 * secp256k1 public keys for IMA signatures. Bun 1.4.5's `node:crypto` (BoringSSL) and WebCrypto
 * do not know the curve: `createPublicKey` on a secp256k1 SPKI fails with
 * `UNSUPPORTED_ALGORITHM`, `generateKeyPairSync('ec', {namedCurve: 'secp256k1'})` with
 * `UNKNOWN_GROUP`. Upstream (Python `cryptography` over OpenSSL) loads such keys, so a runtime
 * policy's `verification-keys` may hold them. This module decodes the SPKI itself (RFC 5480 §2,
 * SEC 1 §2.3.3/§2.3.4 point encodings, read by `@noble/curves`) and verifies with
 * {@link verifyEcdsaPrehashed}, as the keyring does for prehashed NIST-curve signatures.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { secp256k1 } from '@noble/curves/secp256k1.js'
import { verifyEcdsaPrehashed } from './ecdsa-prehashed.ts'

/** DER of `AlgorithmIdentifier { id-ecPublicKey, secp256k1 (1.3.132.0.10) }`. */
const ALG_ID = Buffer.from('301006072a8648ce3d020106052b8104000a', 'hex')

/** A secp256k1 public key (what `node:crypto` cannot hold in a `KeyObject` on Bun). */
export class Secp256k1PublicKey {
  /** Mirrors `KeyObject.asymmetricKeyType` so callers can switch on one field. */
  readonly asymmetricKeyType = 'secp256k1' as const
  readonly x: bigint
  readonly y: bigint

  constructor(x: bigint, y: bigint) {
    this.x = x
    this.y = y
  }

  /** The uncompressed X9.62 point `04 ‖ x ‖ y` (the keyidv2 input). */
  point(): Buffer {
    return Buffer.from(
      `04${this.x.toString(16).padStart(64, '0')}${this.y.toString(16).padStart(64, '0')}`,
      'hex',
    )
  }

  /** SubjectPublicKeyInfo DER with the uncompressed point (as `cryptography` serializes it). */
  spki(): Buffer {
    return Buffer.concat([
      Buffer.from('3056', 'hex'),
      ALG_ID,
      Buffer.from('034200', 'hex'),
      this.point(),
    ])
  }

  /** keyidv2: last 4 bytes of SHA-1 over the uncompressed point. */
  keyIdV2(): number {
    return createHash('sha1').update(this.point()).digest().readUInt32BE(16)
  }

  /** Verifies a DER ECDSA signature over `digest` (prehashed). Never throws. */
  verifyPrehashed(digest: Uint8Array, derSig: Uint8Array): boolean {
    return verifyEcdsaPrehashed('secp256k1', this.x, this.y, digest, derSig)
  }
}

/** Decodes a SEC 1 point (uncompressed or compressed); null when malformed or off the curve. */
function decodePoint(pt: Uint8Array): Secp256k1PublicKey | null {
  try {
    const { x, y } = secp256k1.Point.fromBytes(pt).toAffine()
    return new Secp256k1PublicKey(x, y)
  } catch {
    return null
  }
}

/**
 * Decodes a DER SubjectPublicKeyInfo holding a secp256k1 key; null when `der` is anything else
 * (another algorithm or curve, malformed, or a point not on the curve).
 */
export function parseSecp256k1Spki(der: Uint8Array): Secp256k1PublicKey | null {
  // SEQUENCE (short length) { ALG_ID, BIT STRING (short length) { 00, point } }
  if (der.length < 2 + ALG_ID.length + 3 || der[0] !== 0x30 || der[1] !== der.length - 2) {
    return null
  }
  if (!Buffer.from(der.subarray(2, 2 + ALG_ID.length)).equals(ALG_ID)) return null
  const p = 2 + ALG_ID.length
  if (der[p] !== 0x03 || der[p + 1] !== der.length - p - 2 || der[p + 2] !== 0) return null
  return decodePoint(der.subarray(p + 3))
}

/** The secp256k1 OID (1.3.132.0.10) as a DER OBJECT IDENTIFIER. */
const OID = Buffer.from('06052b8104000a', 'hex')

/**
 * The public key of a SEC 1 `ECPrivateKey` (SEC 1 §C.4) on secp256k1, read from its trailing
 * `[1] publicKey BIT STRING` (upstream `get_pubkey` accepts private keys too); null otherwise.
 */
function sec1PublicKey(der: Uint8Array): Secp256k1PublicKey | null {
  const tail = 5 + 65 // a1 44 03 42 00 ‖ uncompressed point
  if (der.length < tail || der[0] !== 0x30) return null
  const at = der.length - tail
  if (!Buffer.from(der.subarray(at, at + 5)).equals(Buffer.from('a144034200', 'hex'))) return null
  if (Buffer.from(der.subarray(0, at)).indexOf(OID) < 0) return null
  return decodePoint(der.subarray(at + 5))
}

/**
 * Decodes a PEM `PUBLIC KEY` or `EC PRIVATE KEY` (its public part) on secp256k1; null otherwise.
 */
export function parseSecp256k1Pem(pem: string): Secp256k1PublicKey | null {
  const block = (label: string): Buffer | null => {
    const m = new RegExp(`-----BEGIN ${label}-----([A-Za-z0-9+/=\\s]+)-----END ${label}-----`).exec(
      pem,
    )
    return m === null ? null : Buffer.from((m[1] as string).replace(/\s+/g, ''), 'base64')
  }
  const pub = block('PUBLIC KEY')
  if (pub !== null) return parseSecp256k1Spki(pub)
  const priv = block('EC PRIVATE KEY')
  return priv === null ? null : sec1PublicKey(priv)
}
