/**
 * ECDSA verification over a *prehashed* digest for NIST P-256, P-384, P-521 and secp256k1, through
 * `@noble/curves` (audited, pure JS). IMA signs the file digest itself (the kernel's
 * `public_key_verify_signature` gets the digest, like `Prehashed` in upstream Python), and
 * `node:crypto` can only verify ECDSA over a message it hashes itself; Bun's BoringSSL also lacks
 * secp256k1, which upstream's `cryptography` loads.
 *
 * @module
 */
import { p256, p384, p521 } from '@noble/curves/nist.js'
import { secp256k1 } from '@noble/curves/secp256k1.js'

/** The curves IMA keys use, by the names `node:crypto` JWKs give (`crv`), plus secp256k1. */
const CURVES = { 'P-256': p256, 'P-384': p384, 'P-521': p521, secp256k1 } as const

/** Field size in bytes of each curve (the width of a coordinate in a SEC 1 point). */
const FIELD_BYTES: Readonly<Record<keyof typeof CURVES, number>> = {
  'P-256': 32,
  'P-384': 48,
  'P-521': 66,
  secp256k1: 32,
}

/**
 * Verifies a DER ECDSA signature over `digest` with the public point (`x`, `y`) on `curve` (high-S
 * signatures accepted, as OpenSSL does). Returns false for anything malformed or unknown.
 */
export function verifyEcdsaPrehashed(
  curve: string,
  x: bigint,
  y: bigint,
  digest: Uint8Array,
  derSig: Uint8Array,
): boolean {
  if (!Object.hasOwn(CURVES, curve)) return false
  const name = curve as keyof typeof CURVES
  const width = FIELD_BYTES[name] * 2
  const point = Buffer.from(
    `04${x.toString(16).padStart(width, '0')}${y.toString(16).padStart(width, '0')}`,
    'hex',
  )
  try {
    return CURVES[name].verify(derSig, digest, point, {
      prehash: false,
      format: 'der',
      lowS: false,
    })
  } catch {
    return false
  }
}
