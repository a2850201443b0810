/**
 * The one reader of RSA public keys sent as PEM by agents and clients, above all the agent's NK
 * (the `pubkey` of `quotes/*` answers, used for RSA-OAEP of U and V). Real agents send
 * `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo, 64-character lines): rust-keylime
 * `crypto::pkey_pub_to_pem`, the former Python agent `crypto.rsa_export_pubkey`.
 *
 * Accepted: one strict `PUBLIC KEY` block ({@link readPemBlock}) of at most
 * {@link MAX_PUBLIC_KEY_PEM} characters, holding canonical DER of an RSA key of 2048 to 8192 bits
 * with an odd public exponent below 2^32 (anything larger only makes the encryption costly).
 *
 * @module
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { ProtocolError } from './errors.ts'
import { readPemBlock } from './read-pem-block.ts'

/** Longest PEM text accepted: an 8192-bit key is ~1,500 characters. */
export const MAX_PUBLIC_KEY_PEM = 4096

const MIN_BITS = 2048
const MAX_BITS = 8192

/**
 * Reads an RSA public key from strict PEM (see the module header).
 *
 * @throws ProtocolError `ERR_PEM_*` for the encoding, `ERR_KEY_UNSUPPORTED` for the key
 *
 * @example
 * ```ts
 * const nk = readRsaPublicKeyPem(answer.pubkey) // then hash and store `answer.pubkey` as sent
 * ```
 */
export function readRsaPublicKeyPem(text: unknown): KeyObject {
  const { der } = readPemBlock(text, ['PUBLIC KEY'], MAX_PUBLIC_KEY_PEM)
  const bytes = Buffer.from(der.buffer, der.byteOffset, der.byteLength)
  let key: KeyObject
  try {
    key = createPublicKey({ key: bytes, format: 'der', type: 'spki' })
  } catch (cause) {
    throw new ProtocolError('ERR_PEM_CONTENT', 'PUBLIC KEY block is not a public key', { cause })
  }
  if (!bytes.equals(key.export({ format: 'der', type: 'spki' }))) {
    throw new ProtocolError('ERR_PEM_CONTENT', 'PUBLIC KEY block is not canonical DER')
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0
  const e = key.asymmetricKeyDetails?.publicExponent ?? 0n
  if (key.asymmetricKeyType !== 'rsa' || bits < MIN_BITS || bits > MAX_BITS) {
    throw new ProtocolError(
      'ERR_KEY_UNSUPPORTED',
      `an RSA key of ${MIN_BITS} to ${MAX_BITS} bits is needed, not ${key.asymmetricKeyType} ${bits}`,
    )
  }
  if (e < 3n || e >= 2n ** 32n || e % 2n === 0n) {
    throw new ProtocolError('ERR_KEY_UNSUPPORTED', 'RSA public exponent is not odd and below 2^32')
  }
  return key
}
