/**
 * DSSE envelopes for signed runtime policies (upstream `keylime/dsse/*`, `keylime/signing.py`):
 * `{"payload": b64, "payloadType": "application/vnd.keylime+json", "signatures": [{keyid?, sig}]}`,
 * signatures over `PAE = "DSSEv1 <len(type)> <type> <len(payload)> <payload>"` with ECDSA P-256
 * SHA-256 (DER). Backends: `ecdsa` (keyid = sha256 hex of the SPKI PEM) and `x509` (keyid = base64
 * of the certificate PEM; the verifier then uses the certificates carried in the envelope).
 *
 * @module
 */

import {
  createHash,
  createPublicKey,
  type KeyObject,
  sign,
  verify,
  X509Certificate,
} from 'node:crypto'
import { ImaError } from './errors.ts'

/** The payload type upstream writes. */
export const KEYLIME_PAYLOAD_TYPE = 'application/vnd.keylime+json'

/** A parsed DSSE envelope. */
export interface DsseEnvelope {
  payload: Uint8Array
  payloadType: string
  signatures: Array<{ keyid?: string; sig: Uint8Array }>
}

/** Pre-authentication encoding (DSSE v1). */
export function pae(payloadType: string, payload: Uint8Array): Uint8Array {
  const t = Buffer.from(payloadType, 'utf8')
  return Buffer.concat([
    Buffer.from(`DSSEv1 ${t.length} `),
    t,
    Buffer.from(` ${payload.length} `),
    payload,
  ])
}

/** Upstream `b64dec`: hex first, then standard base64, then URL-safe base64. */
function b64dec(s: string, what: string): Uint8Array {
  if (/^([0-9a-fA-F]{2})+$/.test(s)) return Buffer.from(s, 'hex')
  if (/^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0) return Buffer.from(s, 'base64')
  if (/^[A-Za-z0-9_-]*={0,2}$/.test(s)) return Buffer.from(s, 'base64url')
  throw new ImaError('ERR_IMA_POLICY_SIGNATURE', `${what} is not base64`, { status: 401 })
}

/**
 * The payload of an envelope that is not verified (upstream `deserialize_runtime_policy`:
 * `dsse.b64dec(envelope["payload"])`, signatures not looked at).
 *
 * @throws {ImaError} `ERR_IMA_POLICY_INVALID` when the payload is not a base64 string.
 */
export function dssePayload(v: unknown): Uint8Array {
  const p = (v as { payload?: unknown }).payload
  try {
    if (typeof p === 'string') return b64dec(p, 'payload')
  } catch {
    // reported below
  }
  throw new ImaError('ERR_IMA_POLICY_INVALID', 'DSSE payload is not a base64 string')
}

/** True when a parsed JSON value looks like a DSSE envelope (upstream: has a truthy `payload`). */
export function isDsseEnvelope(v: unknown): boolean {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    Boolean((v as { payload?: unknown }).payload)
  )
}

/**
 * Parses an envelope object.
 *
 * @throws {ImaError} `ERR_IMA_POLICY_SIGNATURE` when fields are missing or malformed.
 */
export function parseDsseEnvelope(v: unknown): DsseEnvelope {
  const o = v as Record<string, unknown>
  if (
    typeof o?.payload !== 'string' ||
    typeof o.payloadType !== 'string' ||
    !Array.isArray(o.signatures)
  ) {
    throw new ImaError(
      'ERR_IMA_POLICY_SIGNATURE',
      'DSSE envelope needs payload, payloadType and signatures',
      { status: 401 },
    )
  }
  const signatures = o.signatures.map((s: unknown, i: number) => {
    const r = s as Record<string, unknown>
    if (typeof r?.sig !== 'string')
      throw new ImaError('ERR_IMA_POLICY_SIGNATURE', `signatures[${i}].sig missing`, {
        status: 401,
      })
    if (r.keyid !== undefined && r.keyid !== null && typeof r.keyid !== 'string') {
      throw new ImaError('ERR_IMA_POLICY_SIGNATURE', `signatures[${i}].keyid must be a string`, {
        status: 401,
      })
    }
    return {
      ...(typeof r.keyid === 'string' ? { keyid: r.keyid } : {}),
      sig: b64dec(r.sig, `signatures[${i}].sig`),
    }
  })
  return { payload: b64dec(o.payload, 'payload'), payloadType: o.payloadType, signatures }
}

/** keyid of the `ecdsa` backend: sha256 hex of the SPKI PEM. */
export function ecdsaKeyId(pub: KeyObject): string {
  return createHash('sha256')
    .update(pub.export({ type: 'spki', format: 'pem' }))
    .digest('hex')
}

/**
 * Verifies an envelope as upstream `verify_dsse_envelope` does: with `key` (PEM public EC key, or
 * an x509 certificate PEM) every signature is tried against it; without a key, the certificates
 * carried as base64 PEM in each signature's `keyid` are used. Returns the payload.
 *
 * @throws {ImaError} `ERR_IMA_POLICY_SIGNATURE` when no signature verifies.
 */
export function verifyDsseEnvelope(env: DsseEnvelope, key?: string | Uint8Array): Uint8Array {
  const msg = pae(env.payloadType, env.payload)
  const verifiers: KeyObject[] = []
  if (key !== undefined && key.length > 0) {
    const text = typeof key === 'string' ? key : Buffer.from(key).toString('utf8')
    try {
      verifiers.push(
        text.includes('CERTIFICATE') ? new X509Certificate(text).publicKey : createPublicKey(text),
      )
    } catch (e) {
      throw new ImaError('ERR_IMA_POLICY_SIGNATURE', 'runtime policy key does not load', {
        cause: e,
        status: 401,
      })
    }
  } else {
    for (const s of env.signatures) {
      if (s.keyid === undefined) continue
      try {
        verifiers.push(new X509Certificate(Buffer.from(s.keyid, 'base64')).publicKey)
      } catch {
        // not a certificate: cannot verify with it
      }
    }
  }
  for (const v of verifiers) {
    if (v.asymmetricKeyType !== 'ec') continue
    for (const s of env.signatures) {
      try {
        if (verify('sha256', msg, { key: v, dsaEncoding: 'der' }, s.sig)) return env.payload
      } catch {
        // malformed signature: try the next
      }
    }
  }
  throw new ImaError('ERR_IMA_POLICY_SIGNATURE', 'no valid DSSE signature found', { status: 401 })
}

/** Signs `payload` into an envelope JSON string (upstream `dsse.Sign` output shape). */
export function signDsse(
  payload: Uint8Array,
  privateKey: KeyObject,
  keyid: string | undefined,
  payloadType = KEYLIME_PAYLOAD_TYPE,
): string {
  const sig = sign('sha256', pae(payloadType, payload), { key: privateKey, dsaEncoding: 'der' })
  const s: Record<string, string> = {}
  if (keyid) s.keyid = keyid
  s.sig = sig.toString('base64')
  return JSON.stringify({
    payload: Buffer.from(payload).toString('base64'),
    payloadType,
    signatures: [s],
  })
}
