/**
 * TPMT_PUBLIC / TPM2B_PUBLIC: parse, serialize, name, and conversion to a `node:crypto` key.
 *
 * Layout (TCG TPM 2.0 Library Part 2 §12.2.4 TPMT_PUBLIC):
 * `type u16 | nameAlg u16 | objectAttributes u32 | authPolicy TPM2B | parameters | unique`, where
 * parameters are §12.2.3.5 TPMS_RSA_PARMS (`symmetric | scheme | keyBits u16 | exponent u32`) or
 * §12.2.3.6 TPMS_ECC_PARMS (`symmetric | scheme | curveID u16 | kdf`), and unique is a TPM2B `n` or
 * a §11.2.5.2 TPMS_ECC_POINT (`TPM2B x | TPM2B y`).
 *
 * The Name of an object (Part 1 §16) is `nameAlg (u16) ‖ H_nameAlg(TPMT_PUBLIC)`
 * (upstream `keylime/tpm/tpm2_objects.py::get_tpm2b_public_name`). Only RSA and ECC objects are
 * supported; KEYEDHASH and SYMCIPHER areas throw `ERR_TPM_UNSUPPORTED`.
 *
 * @module
 */

import { createHash, createPublicKey, type KeyObject } from 'node:crypto'
import { ByteReader } from './byte-reader.ts'
import { ByteWriter } from './byte-writer.ts'
import {
  DIGEST_SIZE_BY_ALG,
  ECC_CURVE_INFO,
  hashAlgName,
  TPM_ALG_ID,
  TPMA_OBJECT,
  TPMA_OBJECT_RESERVED,
  type TpmaObjectFlag,
} from './constants.ts'
import { TpmError } from './errors.ts'

/** Part 2 §11.1.7 TPMT_SYM_DEF_OBJECT; `keyBits`/`mode` are present unless algorithm is NULL. */
export interface TpmSymDef {
  /** TPM_ALG_ID of the block cipher (AES 0x0006) or NULL (0x0010). */
  algorithm: number
  /** Key size in bits (absent for NULL). */
  keyBits?: number
  /** Block mode, e.g. CFB 0x0043 (absent for NULL). */
  mode?: number
}

/** A signing / encryption / KDF scheme: `scheme u16` plus details unless NULL. */
export interface TpmScheme {
  /** TPM_ALG_ID of the scheme (RSASSA, RSAPSS, OAEP, ECDSA, KDF1_SP800_56A, NULL, …). */
  scheme: number
  /** Hash of the scheme (absent for NULL and for RSAES, whose details are empty). */
  hashAlg?: number
  /** ECDAA commit counter (only for ECDAA). */
  count?: number
}

/** Fields common to RSA and ECC public areas. */
interface TpmPublicBase {
  /** Hash algorithm used for the Name (and the authPolicy). */
  nameAlg: number
  /** TPMA_OBJECT bits as sent. */
  objectAttributes: number
  /** The TPMA_OBJECT bits decoded by name. */
  attributes: Readonly<Record<TpmaObjectFlag, boolean>>
  /** Policy digest (empty or nameAlg-sized). */
  authPolicy: Uint8Array
  /** Symmetric algorithm for restricted decryption keys (NULL for signing keys). */
  symmetric: TpmSymDef
  /** The signing or decryption scheme. */
  scheme: TpmScheme
  /** The exact TPMT_PUBLIC bytes (no TPM2B size prefix); input of the Name hash. */
  raw: Uint8Array
}

/** An RSA public area. */
export interface TpmPublicRsa extends TpmPublicBase {
  /** Discriminant. */
  type: 'rsa'
  /** Modulus size in bits (1024, 2048, 3072 or 4096). */
  keyBits: number
  /** Public exponent as sent; 0 means 65537 (Part 2 §12.2.3.5). */
  exponent: number
  /** The modulus (empty in a template). */
  unique: { n: Uint8Array }
}

/** An ECC public area. */
export interface TpmPublicEcc extends TpmPublicBase {
  /** Discriminant. */
  type: 'ecc'
  /** TPM_ECC_CURVE identifier. */
  curve: number
  /** Key-derivation scheme (normally NULL). */
  kdf: TpmScheme
  /** The public point (coordinates may be empty in a template). */
  unique: { x: Uint8Array; y: Uint8Array }
}

/** A parsed TPMT_PUBLIC (RSA or ECC). */
export type TpmPublic = TpmPublicRsa | TpmPublicEcc

/** Input to {@link serializeTpmtPublic}: a public area without `raw` / decoded `attributes`. */
export type TpmPublicInput =
  Omit<TpmPublicRsa, 'raw' | 'attributes'> | Omit<TpmPublicEcc, 'raw' | 'attributes'>

const RSA_KEY_BITS = new Set([1024, 2048, 3072, 4096])
const MAX_ECC_COORD = 66 // P-521
const MAX_RSA_MODULUS = 512 // RSA-4096

function bad(message: string): never {
  throw new TpmError('ERR_TPM_BAD_VALUE', message)
}

/** Decodes TPMA_OBJECT bits into named booleans. */
export function decodeObjectAttributes(bits: number): Record<TpmaObjectFlag, boolean> {
  const out = {} as Record<TpmaObjectFlag, boolean>
  for (const [name, mask] of Object.entries(TPMA_OBJECT)) {
    out[name as TpmaObjectFlag] = (bits & mask) !== 0
  }
  return out
}

function readSymDef(r: ByteReader): TpmSymDef {
  const algorithm = r.u16()
  if (algorithm === TPM_ALG_ID.NULL) return { algorithm }
  if (
    algorithm !== TPM_ALG_ID.AES &&
    algorithm !== TPM_ALG_ID.SM4 &&
    algorithm !== TPM_ALG_ID.CAMELLIA
  ) {
    bad(`symmetric algorithm 0x${algorithm.toString(16)} not allowed`)
  }
  const keyBits = r.u16()
  const mode = r.u16()
  return { algorithm, keyBits, mode }
}

function readHashAlg(r: ByteReader): number {
  const h = r.u16()
  if (DIGEST_SIZE_BY_ALG[h] === undefined) bad(`hash algorithm 0x${h.toString(16)} unknown`)
  return h
}

function readScheme(r: ByteReader, allowed: ReadonlySet<number>): TpmScheme {
  const scheme = r.u16()
  if (scheme === TPM_ALG_ID.NULL) return { scheme }
  if (!allowed.has(scheme)) bad(`scheme 0x${scheme.toString(16)} not allowed here`)
  if (scheme === TPM_ALG_ID.RSAES) return { scheme }
  const hashAlg = readHashAlg(r)
  if (scheme === TPM_ALG_ID.ECDAA) return { scheme, hashAlg, count: r.u16() }
  return { scheme, hashAlg }
}

const RSA_SCHEMES: ReadonlySet<number> = new Set([
  TPM_ALG_ID.RSASSA,
  TPM_ALG_ID.RSAPSS,
  TPM_ALG_ID.RSAES,
  TPM_ALG_ID.OAEP,
])
const ECC_SCHEMES: ReadonlySet<number> = new Set([
  TPM_ALG_ID.ECDSA,
  TPM_ALG_ID.ECDAA,
  TPM_ALG_ID.SM2,
  TPM_ALG_ID.ECSCHNORR,
  TPM_ALG_ID.ECDH,
  TPM_ALG_ID.ECMQV,
])
const KDF_SCHEMES: ReadonlySet<number> = new Set([
  TPM_ALG_ID.MGF1,
  TPM_ALG_ID.KDF1_SP800_56A,
  TPM_ALG_ID.KDF2,
  TPM_ALG_ID.KDF1_SP800_108,
])

/**
 * Reads one TPMT_PUBLIC from the reader's cursor (the reader is left after it).
 * `raw` is a view into the reader's input; {@link parseTpmtPublic} copies first.
 */
export function readTpmtPublic(r: ByteReader): TpmPublic {
  const start = r.offset
  const typeId = r.u16()
  if (typeId !== TPM_ALG_ID.RSA && typeId !== TPM_ALG_ID.ECC) {
    if (typeId === TPM_ALG_ID.KEYEDHASH || typeId === TPM_ALG_ID.SYMCIPHER) {
      throw new TpmError('ERR_TPM_UNSUPPORTED', `public area type 0x${typeId.toString(16)}`)
    }
    bad(`public area type 0x${typeId.toString(16)} unknown`)
  }
  const nameAlg = r.u16()
  const nameSize = DIGEST_SIZE_BY_ALG[nameAlg]
  if (nameSize === undefined && nameAlg !== TPM_ALG_ID.NULL) {
    bad(`nameAlg 0x${nameAlg.toString(16)} unknown`)
  }
  const objectAttributes = r.u32()
  if ((objectAttributes & TPMA_OBJECT_RESERVED) !== 0) bad('reserved objectAttributes bits set')
  const authPolicy = r.tpm2b()
  if (authPolicy.byteLength !== 0 && authPolicy.byteLength !== nameSize) {
    bad('authPolicy size does not match nameAlg')
  }
  const symmetric = readSymDef(r)
  const base = {
    nameAlg,
    objectAttributes,
    attributes: decodeObjectAttributes(objectAttributes),
    authPolicy,
    symmetric,
  }
  if (typeId === TPM_ALG_ID.RSA) {
    const scheme = readScheme(r, RSA_SCHEMES)
    const keyBits = r.u16()
    if (!RSA_KEY_BITS.has(keyBits)) bad(`RSA keyBits ${keyBits} not allowed`)
    const exponent = r.u32()
    // Part 2 §12.2.3.5: 0 means 65537; any other exponent must be odd and greater than 1.
    if (exponent !== 0 && ((exponent & 1) === 0 || exponent === 1)) {
      bad(`RSA exponent ${exponent} not allowed (0 for 65537, or odd and greater than 1)`)
    }
    const n = r.tpm2b()
    if (n.byteLength > MAX_RSA_MODULUS) bad('RSA modulus too long')
    if (n.byteLength !== 0 && n.byteLength !== keyBits / 8) bad('RSA modulus size != keyBits')
    return {
      type: 'rsa',
      ...base,
      scheme,
      keyBits,
      exponent,
      unique: { n },
      raw: r.source.subarray(start, r.offset),
    }
  }
  const scheme = readScheme(r, ECC_SCHEMES)
  const curve = r.u16()
  const kdf = readScheme(r, KDF_SCHEMES)
  const x = r.tpm2b()
  const y = r.tpm2b()
  if (x.byteLength > MAX_ECC_COORD || y.byteLength > MAX_ECC_COORD) bad('ECC coordinate too long')
  return {
    type: 'ecc',
    ...base,
    scheme,
    curve,
    kdf,
    unique: { x, y },
    raw: r.source.subarray(start, r.offset),
  }
}

/**
 * Parses a TPMT_PUBLIC (no size prefix), e.g. the `ak_public` of rust-keylime's agent_data.json.
 * The result owns a private copy of the bytes.
 *
 * @throws {TpmError} `ERR_TPM_TRUNCATED`, `ERR_TPM_TRAILING_BYTES`, `ERR_TPM_BAD_VALUE`,
 *   `ERR_TPM_UNSUPPORTED`.
 */
export function parseTpmtPublic(bytes: Uint8Array): TpmPublic {
  const r = new ByteReader(new Uint8Array(bytes)) // copy (Buffer#slice would not copy)
  const pub = readTpmtPublic(r)
  r.end()
  return pub
}

/**
 * Parses a TPM2B_PUBLIC (u16 size ‖ TPMT_PUBLIC), as sent in `aik_tpm` / `ek_tpm` (base64-decoded).
 * The size must cover exactly the TPMT_PUBLIC and nothing may follow it.
 */
export function parseTpm2bPublic(bytes: Uint8Array): TpmPublic {
  const outer = new ByteReader(bytes)
  const inner = outer.tpm2b()
  outer.end()
  return parseTpmtPublic(inner)
}

function writeScheme(w: ByteWriter, s: TpmScheme): void {
  w.u16(s.scheme)
  if (s.scheme === TPM_ALG_ID.NULL || s.scheme === TPM_ALG_ID.RSAES) return
  if (s.hashAlg === undefined) bad('scheme without hashAlg')
  w.u16(s.hashAlg)
  if (s.scheme === TPM_ALG_ID.ECDAA) w.u16(s.count ?? 0)
}

/** Marshals a public area into TPMT_PUBLIC bytes (templates included). */
export function serializeTpmtPublic(pub: TpmPublicInput): Uint8Array {
  const w = new ByteWriter({ capacity: 64 + (pub.type === 'rsa' ? pub.unique.n.byteLength : 140) })
  w.u16(pub.type === 'rsa' ? TPM_ALG_ID.RSA : TPM_ALG_ID.ECC)
  w.u16(pub.nameAlg)
  w.u32(pub.objectAttributes >>> 0)
  w.tpm2b(pub.authPolicy)
  w.u16(pub.symmetric.algorithm)
  if (pub.symmetric.algorithm !== TPM_ALG_ID.NULL) {
    w.u16(pub.symmetric.keyBits ?? 0).u16(pub.symmetric.mode ?? TPM_ALG_ID.NULL)
  }
  writeScheme(w, pub.scheme)
  if (pub.type === 'rsa') {
    w.u16(pub.keyBits).u32(pub.exponent).tpm2b(pub.unique.n)
  } else {
    w.u16(pub.curve)
    writeScheme(w, pub.kdf)
    w.tpm2b(pub.unique.x).tpm2b(pub.unique.y)
  }
  return w.finish()
}

/** Marshals a public area into TPM2B_PUBLIC bytes (u16 size ‖ TPMT_PUBLIC). */
export function serializeTpm2bPublic(pub: TpmPublicInput): Uint8Array {
  return new ByteWriter().tpm2b(serializeTpmtPublic(pub)).finish()
}

/**
 * The object's Name: `nameAlg (u16 BE) ‖ H_nameAlg(TPMT_PUBLIC)` (TCG Part 1 §16).
 *
 * @throws {TpmError} `ERR_TPM_UNSUPPORTED` if nameAlg is not SHA-1/256/384/512.
 */
export function computeName(pub: Pick<TpmPublic, 'nameAlg' | 'raw'>): Uint8Array {
  const h = hashAlgName(pub.nameAlg)
  if (h === undefined) {
    throw new TpmError('ERR_TPM_UNSUPPORTED', `nameAlg 0x${pub.nameAlg.toString(16)} not supported`)
  }
  const digest = createHash(h).update(pub.raw).digest()
  const out = new Uint8Array(2 + digest.byteLength)
  out[0] = pub.nameAlg >> 8
  out[1] = pub.nameAlg & 0xff
  out.set(digest, 2)
  return out
}

function b64url(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url')
}

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.byteLength === size) return b
  const out = new Uint8Array(size)
  out.set(b, size - b.byteLength)
  return out
}

/**
 * Converts the public area to a `node:crypto` public KeyObject (RSA from n/e; ECC P-256, P-384,
 * P-521 from x/y). Cache the result: creating it is far slower than a verification.
 *
 * @throws {TpmError} `ERR_TPM_UNSUPPORTED` for other curves; `ERR_TPM_BAD_VALUE` for an empty
 *   or invalid key (a template, a short or even RSA modulus, a point not on the curve).
 */
export function toKeyObject(pub: TpmPublic): KeyObject {
  if (pub.type === 'rsa') {
    const n = pub.unique.n
    if (n.byteLength !== pub.keyBits / 8 || (n[0] ?? 0) < 0x80) bad('RSA modulus missing or short')
    // An even modulus is no RSA key: OpenSSL would refuse it only when the key is used.
    if (((n[n.byteLength - 1] ?? 0) & 1) === 0) bad('RSA modulus is even')
    const e = pub.exponent === 0 ? 65537 : pub.exponent
    const eb = new Uint8Array([e >>> 24, (e >>> 16) & 0xff, (e >>> 8) & 0xff, e & 0xff])
    let i = 0
    while (i < 3 && eb[i] === 0) i++
    try {
      return createPublicKey({
        key: { kty: 'RSA', n: b64url(n), e: b64url(eb.subarray(i)) },
        format: 'jwk',
      })
    } catch (cause) {
      throw new TpmError('ERR_TPM_BAD_VALUE', 'RSA public key rejected', { cause })
    }
  }
  const info = ECC_CURVE_INFO[pub.curve as keyof typeof ECC_CURVE_INFO]
  if (info === undefined) {
    throw new TpmError('ERR_TPM_UNSUPPORTED', `ECC curve 0x${pub.curve.toString(16)} not supported`)
  }
  const { x, y } = pub.unique
  if (
    x.byteLength === 0 ||
    y.byteLength === 0 ||
    x.byteLength > info.size ||
    y.byteLength > info.size
  ) {
    bad('ECC point missing or oversized')
  }
  try {
    return createPublicKey({
      key: {
        kty: 'EC',
        crv: info.crv,
        x: b64url(leftPad(x, info.size)),
        y: b64url(leftPad(y, info.size)),
      },
      format: 'jwk',
    })
  } catch (cause) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'ECC point rejected', { cause })
  }
}
