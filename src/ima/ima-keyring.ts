/**
 * IMA keyrings and IMA signature verification (upstream `keylime/ima/file_signatures.py`).
 *
 * A keyring maps a 32-bit `keyidv2` to a public key. The keyid of a key is the last 4 bytes of
 * its X.509 Subject Key Identifier when the key came in a certificate, otherwise the last 4 bytes
 * of SHA-1 over the PKCS#1 DER public key (RSA) or the uncompressed X9.62 point (EC). IMA
 * signatures (`signature_v2_hdr`: `type 03|05 ‖ version 2 ‖ hash_algo ‖ keyid u32be ‖ size u16be ‖
 * sig`) are verified over the file digest itself: RSA PKCS#1 v1.5 (DigestInfo recovered with
 * `publicDecrypt`) or ECDSA (prehashed, {@link verifyEcdsaPrehashed}). secp256k1 keys, which
 * `node:crypto` on Bun cannot load, are held as {@link Secp256k1PublicKey}.
 *
 * Keyrings serialize to upstream's JSON (`{"keyids": [...], "pubkeys": [b64 SPKI DER]}`), the
 * format of a runtime policy's `verification-keys` and of `learned_ima_keyrings`.
 *
 * @module
 */

import {
  constants,
  createHash,
  createPublicKey,
  type KeyObject,
  publicDecrypt,
  X509Certificate,
} from 'node:crypto'
import { verifyEcdsaPrehashed } from './ecdsa-prehashed.ts'
import { ImaError } from './errors.ts'
import { LINUX_HASH_ALGO } from './hash-alg.ts'
import { validateKeyringJson } from './runtime-policy.ts'
import { parseSecp256k1Pem, parseSecp256k1Spki, Secp256k1PublicKey } from './secp256k1.ts'

export { Secp256k1PublicKey } from './secp256k1.ts'

/** A public key of an IMA keyring: RSA or NIST EC in a `KeyObject`, or secp256k1. */
export type ImaKey = KeyObject | Secp256k1PublicKey

/** Serialized keyring (upstream `ImaKeyring.to_json`). */
export interface KeyringJson {
  keyids: number[]
  pubkeys: string[]
}

/** A public key usable for IMA signatures, with its keyidv2. */
export interface ImaPublicKey {
  key: ImaKey
  keyid: number
}

/** DER DigestInfo prefixes (RFC 8017 §9.2 note 1). */
const DIGEST_INFO: Readonly<Record<string, string>> = {
  md5: '3020300c06082a864886f70d020505000410',
  sha1: '3021300906052b0e03021a05000414',
  sha224: '302d300d06096086480165030402040500041c',
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
}

/** Computes keyidv2 from a public key (last 4 bytes of SHA-1 over PKCS#1 / X9.62 bytes). */
export function keyIdV2(key: ImaKey): number {
  if (key instanceof Secp256k1PublicKey) return key.keyIdV2()
  let bytes: Uint8Array
  if (key.asymmetricKeyType === 'rsa') {
    bytes = key.export({ type: 'pkcs1', format: 'der' })
  } else if (key.asymmetricKeyType === 'ec') {
    const jwk = key.export({ format: 'jwk' })
    bytes = Buffer.concat([
      Buffer.from([4]),
      Buffer.from(jwk.x as string, 'base64url'),
      Buffer.from(jwk.y as string, 'base64url'),
    ])
  } else {
    throw new ImaError('ERR_IMA_KEYRING', `unsupported key type ${key.asymmetricKeyType}`)
  }
  const d = createHash('sha1').update(bytes).digest()
  return d.readUInt32BE(16)
}

/** Finds the Subject Key Identifier (OID 2.5.29.14) in a DER certificate; last 4 bytes as u32. */
function skidKeyId(der: Uint8Array): number | undefined {
  const oid = [0x06, 0x03, 0x55, 0x1d, 0x0e]
  outer: for (let i = 0; i + oid.length < der.length; i++) {
    for (let k = 0; k < oid.length; k++) if (der[i + k] !== oid[k]) continue outer
    let p = i + oid.length
    if (der[p] === 0x01) p += 3 // critical BOOLEAN
    if (der[p] !== 0x04) return undefined
    p += 2 // OCTET STRING wrapper (short form: SKIDs are small)
    if (der[p] !== 0x04) return undefined
    const len = der[p + 1] ?? 0
    if (len < 4 || p + 2 + len > der.length) return undefined
    const end = p + 2 + len
    return (
      (((der[end - 4] as number) << 24) |
        ((der[end - 3] as number) << 16) |
        ((der[end - 2] as number) << 8) |
        (der[end - 1] as number)) >>>
      0
    )
  }
  return undefined
}

function checkType(key: KeyObject): KeyObject {
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'ec') {
    throw new ImaError('ERR_IMA_KEYRING', `unsupported key type ${key.asymmetricKeyType}`)
  }
  return key
}

/**
 * Interprets `data` as a public key the way upstream `get_pubkey` does: an X.509 certificate (DER
 * or PEM; keyid from its SKID), or a public key (DER SPKI/PKCS#1 or PEM). Returns null when the
 * data is not a key at all.
 *
 * @throws {ImaError} `ERR_IMA_KEYRING` when it is a key of an unsupported type.
 */
export function getPubkey(data: Uint8Array): ImaPublicKey | null {
  if (data.length < 16) return null
  const pem = data[0] === 0x2d // '-'
  if (!pem && data[0] !== 0x30) return null
  try {
    const cert = new X509Certificate(data)
    const key = checkType(cert.publicKey)
    const der = pem ? new Uint8Array(cert.raw) : data
    return { key, keyid: skidKeyId(der) ?? keyIdV2(key) }
  } catch (e) {
    if (e instanceof ImaError) throw e
  }
  const attempts: Array<() => KeyObject> = pem
    ? [() => createPublicKey({ key: Buffer.from(data), format: 'pem' })]
    : [
        () => createPublicKey({ key: Buffer.from(data), format: 'der', type: 'spki' }),
        () => createPublicKey({ key: Buffer.from(data), format: 'der', type: 'pkcs1' }),
      ]
  for (const f of attempts) {
    let key: KeyObject
    try {
      key = f()
    } catch {
      continue
    }
    checkType(key)
    return { key, keyid: keyIdV2(key) }
  }
  const k1 = pem
    ? parseSecp256k1Pem(Buffer.from(data).toString('latin1'))
    : parseSecp256k1Spki(data)
  return k1 === null ? null : { key: k1, keyid: k1.keyIdV2() }
}

/** Loads one `pubkeys` entry of a serialized keyring (base64 SPKI DER). */
function loadSpki(b64: string): ImaKey {
  const der = Buffer.from(b64, 'base64')
  let key: KeyObject
  try {
    key = createPublicKey({ key: der, format: 'der', type: 'spki' })
  } catch (e) {
    const k1 = parseSecp256k1Spki(der)
    if (k1 !== null) return k1
    throw new ImaError('ERR_IMA_KEYRING', 'could not load a base64-decoded DER key', { cause: e })
  }
  return checkType(key)
}

/** EC curve name of a key as used by {@link verifyEcdsaPrehashed}. */
function ecPoint(key: KeyObject): { crv: string; x: bigint; y: bigint } {
  const jwk = key.export({ format: 'jwk' })
  const big = (s: string | undefined): bigint =>
    BigInt(`0x${Buffer.from(s ?? '', 'base64url').toString('hex') || '0'}`)
  return { crv: jwk.crv as string, x: big(jwk.x), y: big(jwk.y) }
}

/** A set of keys indexed by keyidv2. */
export class ImaKeyring {
  readonly keys = new Map<number, ImaKey>()
  /**
   * Keys of the document {@link ImaKeyring.fromJSON} read that did not load (upstream logs each
   * as "Could not load a base64-decoded DER key" and skips it); the owner logs them.
   */
  readonly skipped: ImaError[] = []
  #ec = new Map<number, { crv: string; x: bigint; y: bigint }>()

  /** Adds a key (keyid computed when not given). */
  add(key: ImaKey, keyid?: number): void {
    const id = keyid === undefined || keyid === 0 ? keyIdV2(key) : keyid >>> 0
    this.keys.set(id, key)
    this.#ec.delete(id)
  }

  /** The key with `keyid`, if any. */
  get(keyid: number): ImaKey | undefined {
    return this.keys.get(keyid)
  }

  /** @internal cached EC point of a key. */
  ecPointOf(keyid: number, key: KeyObject): { crv: string; x: bigint; y: bigint } {
    let p = this.#ec.get(keyid)
    if (p === undefined) {
      p = ecPoint(key)
      this.#ec.set(keyid, p)
    }
    return p
  }

  /** Upstream's JSON form. */
  toJSON(): KeyringJson {
    const keyids: number[] = []
    const pubkeys: string[] = []
    for (const [id, k] of this.keys) {
      keyids.push(id)
      const der =
        k instanceof Secp256k1PublicKey ? k.spki() : k.export({ type: 'spki', format: 'der' })
      pubkeys.push(der.toString('base64'))
    }
    return { keyids, pubkeys }
  }

  /**
   * Builds a keyring from upstream's JSON (object or string, possibly double-encoded). Keys that
   * do not load are skipped, as upstream does, and recorded in {@link ImaKeyring.skipped}; a
   * malformed document is an error.
   *
   * @throws {ImaError} `ERR_IMA_POLICY_INVALID` / `ERR_IMA_KEYRING`.
   */
  static fromJSON(value: unknown): ImaKeyring {
    let obj = value
    try {
      if (typeof obj === 'string') obj = JSON.parse(obj)
      if (typeof obj === 'string') obj = JSON.parse(obj)
    } catch (e) {
      throw new ImaError('ERR_IMA_KEYRING', 'keyring is not valid JSON', { cause: e })
    }
    validateKeyringJson(obj)
    const ring = new ImaKeyring()
    obj.pubkeys.forEach((b64, i) => {
      try {
        ring.add(loadSpki(b64), obj.keyids[i])
      } catch (e) {
        ring.skipped.push(
          e instanceof ImaError
            ? e
            : new ImaError('ERR_IMA_KEYRING', 'could not load a base64-decoded DER key', {
                cause: e,
              }),
        )
      }
    })
    return ring
  }
}

/**
 * Verifies an IMA signature (`signature_v2_hdr` + signature) over `digest` (algorithm
 * `digestAlg`) with the first keyring holding the signature's keyid, as the kernel's
 * `integrity_digsig_verify` / upstream `_asymmetric_verify` do. Never throws.
 */
export function verifyImaSignature(
  keyrings: Iterable<ImaKeyring>,
  sig: Uint8Array,
  digest: Uint8Array,
  digestAlg: string,
): boolean {
  if (sig.length < 9) return false
  const type = sig[0]
  if (type !== 3 && type !== 5) return false
  if (sig[1] !== 2) return false
  const alg = LINUX_HASH_ALGO[sig[2] as number]
  if (alg === undefined || alg !== digestAlg) return false
  const keyid =
    ((sig[3] as number) * 0x1000000 +
      (((sig[4] as number) << 16) | ((sig[5] as number) << 8) | (sig[6] as number))) >>>
    0
  const size = ((sig[7] as number) << 8) | (sig[8] as number)
  if (9 + size !== sig.length) return false
  let ring: ImaKeyring | undefined
  let key: ImaKey | undefined
  for (const r of keyrings) {
    key = r.get(keyid)
    if (key !== undefined) {
      ring = r
      break
    }
  }
  if (key === undefined || ring === undefined) return false
  const s = sig.subarray(9)
  try {
    if (key instanceof Secp256k1PublicKey) return key.verifyPrehashed(digest, s)
    if (key.asymmetricKeyType === 'rsa') {
      const prefix = DIGEST_INFO[alg]
      if (prefix === undefined) return false
      const recovered = publicDecrypt({ key, padding: constants.RSA_PKCS1_PADDING }, s)
      const expected = Buffer.concat([Buffer.from(prefix, 'hex'), digest])
      return recovered.equals(expected)
    }
    const p = ring.ecPointOf(keyid, key)
    return verifyEcdsaPrehashed(p.crv, p.x, p.y, digest, s)
  } catch {
    return false
  }
}
