/**
 * Verification of an AK's TPMT_SIGNATURE over the TPMS_ATTEST bytes it signed, shared by quote
 * checking (`verify-quote.ts`) and proof of possession (`verify-certify.ts`): RSASSA-PKCS1-v1_5,
 * RSASSA-PSS with any salt length (`RSA_PSS_SALTLEN_AUTO`), and ECDSA (r, s as IEEE P1363) on
 * P-256, P-384 and P-521 (TCG TPM 2.0 Library Part 2 §11.3.4).
 *
 * @module
 */

import { constants, KeyObject, verify } from 'node:crypto'
import type { HashAlg } from './constants.ts'
import { TPM_ALG_ID } from './constants.ts'
import { TpmError } from './errors.ts'
import { type TpmPublic, toKeyObject } from './public-area.ts'
import type { TpmSignature, TpmSignatureEcc } from './signature.ts'

/** Per-key facts derived once and cached with the KeyObject. */
interface KeyInfo {
  kind: 'rsa' | 'ec'
  /** ECDSA coordinate size in bytes (0 for RSA). */
  coordSize: number
}

const keyObjects = new WeakMap<TpmPublic, KeyObject>()
const keyInfos = new WeakMap<KeyObject, KeyInfo>()
const CURVE_SIZES: Record<string, number> = {
  prime256v1: 32,
  'P-256': 32,
  secp384r1: 48,
  'P-384': 48,
  secp521r1: 66,
  'P-521': 66,
}

/** The `node:crypto` key of an AK, converted once per parsed public area. */
export function akKeyObject(ak: TpmPublic | KeyObject): KeyObject {
  if (ak instanceof KeyObject) return ak
  let k = keyObjects.get(ak)
  if (k === undefined) {
    k = toKeyObject(ak)
    keyObjects.set(ak, k)
  }
  return k
}

function infoFor(key: KeyObject): KeyInfo {
  let info = keyInfos.get(key)
  if (info !== undefined) return info
  if (key.type !== 'public') throw new TpmError('ERR_TPM_BAD_VALUE', 'AK must be a public key')
  const t = key.asymmetricKeyType
  if (t === 'rsa') info = { kind: 'rsa', coordSize: 0 }
  else if (t === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? ''
    const size = CURVE_SIZES[curve]
    if (size === undefined) throw new TpmError('ERR_TPM_UNSUPPORTED', `AK curve ${curve}`)
    info = { kind: 'ec', coordSize: size }
  } else throw new TpmError('ERR_TPM_UNSUPPORTED', `AK key type ${String(t)}`)
  keyInfos.set(key, info)
  return info
}

function p1363(sig: TpmSignatureEcc, size: number): Uint8Array {
  const out = new Uint8Array(size * 2)
  const place = (v: Uint8Array, at: number): void => {
    let i = 0
    while (i < v.byteLength - size && v[i] === 0) i++ // tolerate leading zero bytes
    const trimmed = v.subarray(i)
    if (trimmed.byteLength > size)
      throw new TpmError('ERR_QUOTE_SIGNATURE', 'ECDSA component too long for the AK curve')
    out.set(trimmed, at + size - trimmed.byteLength)
  }
  place(sig.r, 0)
  place(sig.s, size)
  return out
}

/**
 * Verifies `sig`, made with hash `hash`, over `signed` under the AK `key`. `what` names the
 * signed structure in the message (`quote`, `certify`).
 *
 * @throws {TpmError} `ERR_QUOTE_SIG_SCHEME` (the scheme does not fit the key type),
 *   `ERR_TPM_UNSUPPORTED` (ECSCHNORR, SM2, ECDAA), `ERR_QUOTE_SIGNATURE` (does not verify).
 */
export function verifyAkSignature(
  key: TpmPublic | KeyObject,
  sig: TpmSignature,
  hash: HashAlg,
  signed: Uint8Array,
  what = 'quote',
): void {
  const k = akKeyObject(key)
  const info = infoFor(k)
  let ok: boolean
  if ('sig' in sig) {
    if (info.kind !== 'rsa')
      throw new TpmError('ERR_QUOTE_SIG_SCHEME', 'RSA signature for a non-RSA AK')
    const input: Parameters<typeof verify>[2] =
      sig.sigAlg === TPM_ALG_ID.RSAPSS
        ? {
            key: k,
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength: constants.RSA_PSS_SALTLEN_AUTO,
          }
        : k
    ok = verify(hash, signed, input, sig.sig)
  } else {
    if (sig.sigAlg !== TPM_ALG_ID.ECDSA) {
      throw new TpmError('ERR_TPM_UNSUPPORTED', `ECC signature scheme 0x${sig.sigAlg.toString(16)}`)
    }
    if (info.kind !== 'ec')
      throw new TpmError('ERR_QUOTE_SIG_SCHEME', 'ECDSA signature for a non-EC AK')
    ok = verify(hash, signed, { key: k, dsaEncoding: 'ieee-p1363' }, p1363(sig, info.coordSize))
  }
  if (!ok)
    throw new TpmError('ERR_QUOTE_SIGNATURE', `${what} signature does not verify with the AK`)
}
