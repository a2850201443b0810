/**
 * ES256 JWS in compact serialization (RFC 7515 §7.1, RFC 7518 §3.4: ECDSA P-256 with SHA-256,
 * the signature as the 64-byte `r || s`), and the public JWK of a key with its RFC 7638
 * thumbprint as `kid`. node:crypto only: relying parties check it with any JOSE library.
 *
 * @module
 */
import { createHash, createPublicKey, type KeyObject, sign } from 'node:crypto'

/** A P-256 public key as a JWK, as the JWKS serves it. */
export interface PublicJwk {
  kty: 'EC'
  crv: 'P-256'
  x: string
  y: string
  kid: string
  alg: 'ES256'
  use: 'sig'
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url')

/**
 * The RFC 7638 thumbprint of a P-256 key: SHA-256 over the required members in lexicographic
 * order, base64url.
 */
export function jwkThumbprint(jwk: { crv: string; kty: string; x: string; y: string }): string {
  const canonical = JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
  return createHash('sha256').update(canonical).digest('base64url')
}

/**
 * The public JWK of a P-256 key (private or public `KeyObject`).
 *
 * @throws Error when the key is not an EC P-256 key
 */
export function publicJwkOf(key: KeyObject): PublicJwk {
  const pub = key.type === 'private' ? createPublicKey(key) : key
  const jwk = pub.export({ format: 'jwk' })
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256' || !jwk.x || !jwk.y) {
    throw new Error('EAR signing key is not an EC P-256 key')
  }
  const base = { kty: 'EC' as const, crv: 'P-256' as const, x: jwk.x, y: jwk.y }
  return { ...base, kid: jwkThumbprint(base), alg: 'ES256', use: 'sig' }
}

/**
 * Signs `payload` as a compact JWS with header `{alg: "ES256", typ: "JWT", kid}`.
 *
 * @param key the P-256 private key
 * @param kid its thumbprint ({@link publicJwkOf})
 */
export function signJwtEs256(payload: object, key: KeyObject, kid: string): string {
  const header = b64url(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid }))
  const body = b64url(JSON.stringify(payload))
  const input = `${header}.${body}`
  const sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
  return `${input}.${b64url(sig)}`
}
