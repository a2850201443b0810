/**
 * The agent's half of Keylime's three-party key derivation (wire-formats §4, rust-keylime
 * `keys_handler.rs::try_combine_keys`): U (from the tenant, with `auth_tag` and an optional
 * payload) and V (from the verifier) arrive RSA-OAEP-encrypted to the NK; for every stored
 * (U, V) pair of equal length, K = U ⊕ V is accepted when HMAC-SHA384(K, uuid) equals the
 * auth_tag (constant-time). Then the lists are cleared and K is kept. K, U and V are never
 * logged and never leave this object except through {@link KeyExchange.onKey}.
 *
 * @module
 */

import { createHmac, timingSafeEqual } from 'node:crypto'
import { AgentError } from '../errors.ts'

/** Called once K is derived, with the payload that came with the matching U (if any). */
export type OnKey = (k: Uint8Array, payload: string | undefined) => void | Promise<void>

/** Options of {@link KeyExchange}. */
export interface KeyExchangeOptions {
  /** The agent UUID (the auth_tag message). */
  uuid: string
  /** NK decryption (RSA-OAEP-SHA1). */
  decrypt: (ciphertext: Uint8Array) => Uint8Array
  /** Hook run when K is derived. */
  onKey?: OnKey
}

const AUTH_TAG_RE = /^[0-9a-fA-F]{96}$/

/** U/V storage and the K combination. */
export class KeyExchange {
  readonly #uuid: string
  readonly #decrypt: (ciphertext: Uint8Array) => Uint8Array
  readonly #onKey: OnKey | undefined
  #u: { u: Uint8Array; authTag: Buffer; payload: string | undefined }[] = []
  #v: Uint8Array[] = []
  #k: Uint8Array | undefined

  constructor(opts: KeyExchangeOptions) {
    this.#uuid = opts.uuid
    this.#decrypt = opts.decrypt
    this.#onKey = opts.onKey
  }

  /** True once K has been derived. */
  get hasKey(): boolean {
    return this.#k !== undefined
  }

  #key(encrypted: unknown): Uint8Array {
    if (typeof encrypted !== 'string' || encrypted.length === 0) {
      throw new AgentError('ERR_AGENT_REQUEST', 'encrypted_key is required')
    }
    const key = this.#decrypt(Buffer.from(encrypted, 'base64'))
    if (key.byteLength !== 16 && key.byteLength !== 32) {
      throw new AgentError('ERR_AGENT_REQUEST', 'key must be 16 or 32 bytes')
    }
    return key
  }

  /**
   * `POST keys/ukey`: stores U with its auth_tag and payload, then tries to combine.
   *
   * @throws {AgentError} `ERR_AGENT_REQUEST` for a malformed field.
   */
  async addU(encryptedKey: unknown, authTag: unknown, payload: unknown): Promise<void> {
    if (typeof authTag !== 'string' || !AUTH_TAG_RE.test(authTag)) {
      throw new AgentError('ERR_AGENT_REQUEST', 'auth_tag must be 96 hex characters')
    }
    if (payload !== undefined && payload !== null && typeof payload !== 'string') {
      throw new AgentError('ERR_AGENT_REQUEST', 'payload must be a base64 string')
    }
    const u = this.#key(encryptedKey)
    this.#u.push({ u, authTag: Buffer.from(authTag, 'hex'), payload: payload ?? undefined })
    await this.#combine()
  }

  /** `POST keys/vkey`: stores V, then tries to combine. */
  async addV(encryptedKey: unknown): Promise<void> {
    this.#v.push(this.#key(encryptedKey))
    await this.#combine()
  }

  async #combine(): Promise<void> {
    for (const entry of this.#u) {
      for (const v of this.#v) {
        if (v.byteLength !== entry.u.byteLength) continue
        const k = new Uint8Array(v.byteLength)
        for (let i = 0; i < k.byteLength; i++) k[i] = entry.u[i]! ^ v[i]!
        const expected = createHmac('sha384', k).update(this.#uuid).digest()
        if (
          entry.authTag.byteLength !== expected.byteLength ||
          !timingSafeEqual(entry.authTag, expected)
        ) {
          k.fill(0)
          continue
        }
        this.#k = k
        for (const e of this.#u) e.u.fill(0)
        for (const x of this.#v) x.fill(0)
        this.#u = []
        this.#v = []
        await this.#onKey?.(k, entry.payload)
        return
      }
    }
  }

  /**
   * `GET keys/verify`: hex HMAC-SHA384(K, challenge), or undefined before K exists.
   */
  hmac(challenge: string): string | undefined {
    if (this.#k === undefined) return undefined
    return createHmac('sha384', this.#k).update(challenge).digest('hex')
  }
}
