/**
 * Three-party key derivation and payload encryption (wire-formats.md §4, upstream
 * `keylime/cmd/user_data_encrypt.py: encrypt`, `keylime/crypto.py`):
 *
 * - K = random 32 bytes, V = random 32 bytes, U = K ⊕ V; the agent gets U, the verifier V.
 * - payload = base64(IV(16) ‖ AES-256-GCM(K, IV, no AAD) ciphertext ‖ tag(16)).
 * - auth_tag = hex HMAC-SHA384(K, agent id); the key check answers HMAC-SHA384(K, challenge).
 * - U and V travel RSA-OAEP(SHA-1, MGF1-SHA-1) encrypted to the agent's NK.
 *
 * None of these values may be printed or logged.
 *
 * @module
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  publicEncrypt,
  randomBytes,
} from 'node:crypto'
import { readRsaPublicKeyPem } from '../protocol/read-rsa-public-key-pem.ts'
import { computeAuthTag, verifyHmacProof } from '../tpm/hmac-proof.ts'

/** The key triple (never printed). */
export interface PayloadKeys {
  k: Buffer
  u: Buffer
  v: Buffer
}

/** Byte-wise XOR of equal-length buffers. */
export function xorBytes(a: Uint8Array, b: Uint8Array): Buffer {
  if (a.byteLength !== b.byteLength) throw new Error('keys differ in length')
  const out = Buffer.alloc(a.byteLength)
  for (let i = 0; i < a.byteLength; i++) out[i] = a[i]! ^ b[i]!
  return out
}

/** Fresh K, V and U = K ⊕ V. */
export function generatePayloadKeys(): PayloadKeys {
  const k = randomBytes(32)
  const v = randomBytes(32)
  return { k, v, u: xorBytes(k, v) }
}

/** Encrypts `plain` with K: base64(iv16 ‖ ct ‖ tag16). */
export function encryptPayload(k: Uint8Array, plain: Uint8Array): string {
  const iv = randomBytes(16)
  const c = createCipheriv(k.byteLength === 16 ? 'aes-128-gcm' : 'aes-256-gcm', k, iv)
  const ct = Buffer.concat([c.update(plain), c.final()])
  return Buffer.concat([iv, ct, c.getAuthTag()]).toString('base64')
}

/** Decrypts {@link encryptPayload} output (used to self-check, as upstream does). */
export function decryptPayload(k: Uint8Array, b64: string): Buffer {
  const blob = Buffer.from(b64, 'base64')
  if (blob.byteLength < 32) throw new Error('payload too short')
  const d = createDecipheriv(
    k.byteLength === 16 ? 'aes-128-gcm' : 'aes-256-gcm',
    k,
    blob.subarray(0, 16),
  )
  d.setAuthTag(blob.subarray(blob.byteLength - 16))
  return Buffer.concat([d.update(blob.subarray(16, blob.byteLength - 16)), d.final()])
}

/** `auth_tag`: hex HMAC-SHA384(K, agent id). */
export function authTag(k: Uint8Array, agentId: string): string {
  return computeAuthTag(k, agentId)
}

/** Constant-time check of the agent's `keys/verify` answer: HMAC-SHA384(K, challenge). */
export function checkKeyHmac(k: Uint8Array, challenge: string, hmacHex: unknown): boolean {
  return typeof hmacHex === 'string' && verifyHmacProof(k, challenge, hmacHex)
}

/**
 * base64(RSA-OAEP-SHA1(NK, key)) for `keys/ukey` / `keys/vkey`.
 *
 * @throws ProtocolError when `nkPem` is not one strict RSA `PUBLIC KEY` block
 */
export function encryptToNk(nkPem: string, key: Uint8Array): string {
  const pub = readRsaPublicKeyPem(nkPem)
  return publicEncrypt(
    { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
    key,
  ).toString('base64')
}
