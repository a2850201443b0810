/**
 * RSA key handling for the CA: generation (WebCrypto, so keys plug straight into @peculiar/x509),
 * PKCS#8 PEM import/export, and password protection of private keys.
 *
 * Encrypted keys are PKCS#8 `ENCRYPTED PRIVATE KEY` (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC), the
 * format Python `cryptography`'s `BestAvailableEncryption` writes and OpenSSL/Bun.serve read.
 *
 * @module
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto'
import { CaError } from './errors.ts'

/** Algorithm used for every CA signature: RSASSA-PKCS1-v1_5 with SHA-256 (as upstream). */
export const RSA_SIGNING_ALGORITHM = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } as const

/** A freshly generated or imported RSA key pair with its PEM forms. */
export interface RsaKeyPair {
  /** WebCrypto key pair usable with @peculiar/x509 generators. */
  keys: CryptoKeyPair
  /** Unencrypted PKCS#8 PEM of the private key. */
  privatePem: string
  /** SubjectPublicKeyInfo PEM of the public key. */
  publicPem: string
}

/** Wraps DER bytes as PEM with 64-character lines. */
export function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const b64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString('base64')
  const lines = b64.match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`
}

/**
 * Generates an RSA key pair of `bits` (public exponent 65537).
 *
 * @example
 * ```ts
 * const { privatePem, publicPem } = await generateRsaKeyPair(2048)
 * ```
 */
export async function generateRsaKeyPair(bits: number): Promise<RsaKeyPair> {
  const keys = (await crypto.subtle.generateKey(
    { ...RSA_SIGNING_ALGORITHM, modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]) },
    true,
    ['sign', 'verify'],
  )) as CryptoKeyPair
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey)
  const spki = await crypto.subtle.exportKey('spki', keys.publicKey)
  return { keys, privatePem: toPem(pkcs8, 'PRIVATE KEY'), publicPem: toPem(spki, 'PUBLIC KEY') }
}

function loadPrivate(pem: string, password: string | undefined, what: string): KeyObject {
  const encrypted = pem.includes('ENCRYPTED')
  if (encrypted && !password) {
    throw new CaError('ERR_CA_KEY_PASSWORD', `${what} is encrypted; a password is required`)
  }
  try {
    return createPrivateKey(
      encrypted ? { key: pem, format: 'pem', passphrase: password } : { key: pem, format: 'pem' },
    )
  } catch (cause) {
    if (encrypted)
      throw new CaError('ERR_CA_KEY_PASSWORD', `cannot decrypt ${what}: wrong password`, { cause })
    throw new CaError('ERR_CA_MALFORMED', `${what} is not a valid PEM private key`, { cause })
  }
}

/**
 * Returns the unencrypted PKCS#8 PEM of a private key PEM (PKCS#1, PKCS#8 or encrypted PKCS#8).
 *
 * @param what names the key in error messages (e.g. the file path).
 * @throws {CaError} `ERR_CA_KEY_PASSWORD` if encrypted and the password is missing or wrong.
 */
export function decryptPrivateKeyPem(pem: string, password?: string, what = 'private key'): string {
  return String(loadPrivate(pem, password, what).export({ format: 'pem', type: 'pkcs8' }))
}

/** Encrypts an (unencrypted) private key PEM with `password` as PKCS#8 PBES2/AES-256-CBC. */
export function encryptPrivateKeyPem(pem: string, password: string, what = 'private key'): string {
  if (!password) throw new CaError('ERR_CA_KEY_PASSWORD', 'an empty password cannot protect a key')
  return String(
    loadPrivate(pem, undefined, what).export({
      format: 'pem',
      type: 'pkcs8',
      cipher: 'aes-256-cbc',
      passphrase: password,
    }),
  )
}

/** Returns the SubjectPublicKeyInfo PEM of a private key PEM. */
export function publicPemOf(privatePem: string, password?: string): string {
  return String(
    createPublicKey(loadPrivate(privatePem, password, 'private key')).export({
      format: 'pem',
      type: 'spki',
    }),
  )
}

/**
 * Imports an unencrypted private key PEM as a WebCrypto signing key (RSASSA-PKCS1-v1_5/SHA-256).
 *
 * @throws {CaError} `ERR_CA_MALFORMED` if the PEM is not an RSA private key.
 */
export async function importRsaSigningKey(
  pem: string,
  what = 'CA private key',
): Promise<CryptoKey> {
  const key = loadPrivate(pem, undefined, what)
  if (key.asymmetricKeyType !== 'rsa')
    throw new CaError('ERR_CA_MALFORMED', `${what} is not an RSA key`)
  const der = key.export({ format: 'der', type: 'pkcs8' })
  return crypto.subtle.importKey('pkcs8', new Uint8Array(der), RSA_SIGNING_ALGORITHM, false, [
    'sign',
  ])
}
