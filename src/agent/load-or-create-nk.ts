/**
 * The NK: the agent's RSA-2048 payload key (`payload-private.pem` under keylime_dir). U and V
 * arrive encrypted to it and its SPKI PEM is bound into PCR16 on every quote. Created once
 * (file mode 0600) and kept, so a restarted agent keeps answering with the same `pubkey`.
 *
 * @module
 */

import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
} from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { AgentError } from './errors.ts'

/** The NK private key and its PEM as served in `pubkey`. */
export interface PayloadKey {
  /** RSA-2048 private key. */
  privateKey: KeyObject
  /** SPKI PEM (64-character lines, trailing newline). */
  publicPem: string
  /** RSA-OAEP-SHA1 decryption (wire-formats §4). */
  decrypt(ciphertext: Uint8Array): Uint8Array
}

/** Wraps an RSA-2048 private key as a {@link PayloadKey}. */
export function payloadKeyFrom(privateKey: KeyObject): PayloadKey {
  if (
    privateKey.asymmetricKeyType !== 'rsa' ||
    privateKey.asymmetricKeyDetails?.modulusLength !== 2048
  ) {
    throw new AgentError('ERR_AGENT_CONFIG', 'payload key must be RSA-2048')
  }
  return {
    privateKey,
    publicPem: String(createPublicKey(privateKey).export({ format: 'pem', type: 'spki' })),
    decrypt(ciphertext: Uint8Array): Uint8Array {
      try {
        return privateDecrypt(
          { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
          ciphertext,
        )
      } catch (cause) {
        throw new AgentError('ERR_AGENT_REQUEST', 'encrypted_key does not decrypt with the NK', {
          cause,
        })
      }
    },
  }
}

/**
 * Loads the NK from `path`, or creates it there (PKCS#8 PEM, mode 0600).
 *
 * @throws {AgentError} `ERR_AGENT_CONFIG` if the file holds anything but an RSA-2048 key.
 */
export function loadOrCreateNk(path: string): PayloadKey {
  if (existsSync(path)) {
    let key: KeyObject
    try {
      key = createPrivateKey(readFileSync(path))
    } catch (cause) {
      throw new AgentError('ERR_AGENT_CONFIG', `payload key ${path} is not a private key`, {
        cause,
      })
    }
    chmodSync(path, 0o600)
    return payloadKeyFrom(key)
  }
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 })
  writeFileSync(path, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  chmodSync(path, 0o600)
  return payloadKeyFrom(privateKey)
}
