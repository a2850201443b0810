/**
 * A software TPM identity for the fleet simulator: EK, AK and NK key pairs held in `node:crypto`,
 * a PCR bank state with extend/reset, and the two TPM operations a Keylime agent needs —
 * TPM2_Quote and TPM2_ActivateCredential — producing and consuming GENUINE TPM structures, so a
 * verifier cannot tell the quotes from a real TPM's except by the (untrusted) keys.
 *
 * - EK: RSA-2048 with the TCG default "L-1" template (attributes 0x000300b2, policy A
 *   `837197…69aa`, AES-128-CFB) or ECC P-256 "L-2" (wire-formats §6.4).
 * - AK: RSA-2048 RSASSA or ECC P-256 ECDSA, hash = the agent's `tpm_hash_alg`, attributes
 *   {@link AK_EXPECTED_ATTRS} (restricted signing key, 0x00050072).
 * - NK: RSA-2048, the payload key whose SPKI PEM the agent serves as `pubkey`.
 *
 * {@link SoftTpm.quote} builds a TPMS_ATTEST (TCG Part 2 §10.12.12: magic, TPM_ST_ATTEST_QUOTE,
 * qualifiedSigner = AK name, extraData = nonce, clockInfo with a rising clock and fixed
 * reset/restart counts, firmwareVersion, TPMS_QUOTE_INFO), signs it with the AK into a
 * TPMT_SIGNATURE, and adds the tpm2-tools PCR blob (wire-formats §1.4).
 * {@link SoftTpm.activateCredential} is `src/tpm/activate-credential.ts`, the software inverse of
 * makeCredential, with this TPM's EK.
 *
 * @module
 */

import {
  constants,
  createHash,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  privateDecrypt,
  sign,
} from 'node:crypto'
import { activateCredential } from '../../../src/tpm/activate-credential.ts'
import { ByteWriter } from '../../../src/tpm/byte-writer.ts'
import {
  AK_EXPECTED_ATTRS,
  HASH_ALG_ID,
  HASH_SIZE,
  type HashAlg,
  TPM_ALG_ID,
  TPM_ECC_CURVE,
  TPM_GENERATED_VALUE,
  TPM_ST,
} from '../../../src/tpm/constants.ts'
import { type CredentialBlob, parseCredentialBlob } from '../../../src/tpm/credential-blob.ts'
import { TpmError } from '../../../src/tpm/errors.ts'
import { serializePcrBlob } from '../../../src/tpm/pcr-blob.ts'
import { type PcrSelection, writePcrSelection } from '../../../src/tpm/pcr-selection.ts'
import {
  computeName,
  parseTpm2bPublic,
  serializeTpm2bPublic,
  type TpmPublic,
  type TpmPublicInput,
} from '../../../src/tpm/public-area.ts'
import { serializeQuoteString } from '../../../src/tpm/quote-string.ts'
import { serializeTpmtSignature, type TpmSignature } from '../../../src/tpm/signature.ts'
import { ekPublicArea } from '../../../src/tpm/ek-template.ts'
import { FleetError } from './errors.ts'

/** Key algorithm of an EK or AK. */
export type SoftKeyType = 'rsa' | 'ecc'

export { EK_ATTRS, EK_POLICY_A } from '../../../src/tpm/ek-template.ts'

/** PCRs per bank on a PC-client TPM. */
const PCR_COUNT = 24

/** PCR16: the debug PCR Keylime binds the NK to (wire-formats §1.5). */
export const NK_BINDING_PCR = 16

/** Private keys of a soft TPM; any may be shared between TPMs (`--shared-keys`). */
export interface SoftTpmKeys {
  /** EK private key (RSA-2048 or ECC P-256). */
  ek: KeyObject
  /** AK private key (RSA-2048 or ECC P-256). */
  ak: KeyObject
  /** NK private key (RSA-2048). */
  nk: KeyObject
}

/** Options of {@link SoftTpm}. */
export interface SoftTpmOptions {
  /** The private keys (see {@link generateSoftTpmKey}). */
  keys: SoftTpmKeys
  /** `tpm_hash_alg`: AK nameAlg and signature hash, and the quoted bank (default sha256). */
  hashAlg?: HashAlg
  /** PCR banks to keep (default: `[hashAlg]`); add `sha1` to also keep a SHA-1 bank. */
  banks?: readonly HashAlg[]
  /** Start value of TPMS_CLOCK_INFO.clock in ms (default 1,000,000). */
  clockStart?: bigint
  /** TPMS_CLOCK_INFO.resetCount (fixed; default 1). */
  resetCount?: number
  /** TPMS_CLOCK_INFO.restartCount (fixed; default 0). */
  restartCount?: number
  /** TPMS_ATTEST.firmwareVersion. */
  firmwareVersion?: bigint
  /** EK certificate PEM if the simulated TPM has one in NV (default none). */
  ekCertPem?: string
}

/** A quote as the agent sends it, plus its parts for tests. */
export interface SoftQuote {
  /** Marshalled TPMS_ATTEST (no size prefix). */
  attest: Uint8Array
  /** Marshalled TPMT_SIGNATURE. */
  signature: Uint8Array
  /** tpm2-tools serialized PCR blob. */
  pcrBlob: Uint8Array
  /** The Keylime quote string `r<attest>:<sig>:<pcrblob>`. */
  quote: string
}

/**
 * Generates one private key of the given kind. RSA-2048 costs ~50 ms, ECC P-256 ~0.01 ms, so for
 * thousands of agents cache RSA keys ({@link KeyCache}) or share EK and NK.
 */
export function generateSoftTpmKey(kind: SoftKeyType): KeyObject {
  return kind === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 65537 }).privateKey
    : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
}

/** A soft TPM with fresh keys: ECC EK and AK, RSA-2048 NK (tests and benches of one agent). */
export function freshSoftTpm(opts: Omit<SoftTpmOptions, 'keys'> = {}): SoftTpm {
  return new SoftTpm({
    ...opts,
    keys: {
      ek: generateSoftTpmKey('ecc'),
      ak: generateSoftTpmKey('ecc'),
      nk: generateSoftTpmKey('rsa'),
    },
  })
}

function jwkField(v: unknown, what: string): Buffer {
  if (typeof v !== 'string') throw new FleetError('ERR_FLEET_CONFIG', `key has no ${what}`)
  return Buffer.from(v, 'base64url')
}

/** The kind of a private key, or an error for anything but RSA-2048 / ECC P-256. */
function kindOf(key: KeyObject, what: string): SoftKeyType {
  if (key.asymmetricKeyType === 'rsa' && key.asymmetricKeyDetails?.modulusLength === 2048) {
    return 'rsa'
  }
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') {
    return 'ecc'
  }
  throw new FleetError('ERR_FLEET_CONFIG', `${what} must be RSA-2048 or ECC P-256`)
}

function leftPad(b: Uint8Array, size: number): Uint8Array {
  if (b.byteLength >= size) return b
  const out = new Uint8Array(size)
  out.set(b, size - b.byteLength)
  return out
}

/** The public key parts of a private key: RSA modulus or the EC point (32-byte coordinates). */
function publicParts(key: KeyObject): { n: Uint8Array } | { x: Uint8Array; y: Uint8Array } {
  const jwk = key.export({ format: 'jwk' })
  if (jwk.kty === 'RSA') return { n: jwkField(jwk.n, 'modulus') }
  return { x: leftPad(jwkField(jwk.x, 'x'), 32), y: leftPad(jwkField(jwk.y, 'y'), 32) }
}

/** The TPMT_PUBLIC of an EK made with the TCG default template (L-1 RSA / L-2 ECC). */
function ekPublicInput(key: KeyObject): TpmPublicInput {
  return ekPublicArea(publicParts(key))
}

/** The TPMT_PUBLIC of a Keylime AK (tss-esapi `create_ak`): restricted signing key. */
function akPublicInput(key: KeyObject, hash: HashAlg): TpmPublicInput {
  const parts = publicParts(key)
  const hashAlg = HASH_ALG_ID[hash]
  const base = {
    nameAlg: hashAlg,
    objectAttributes: AK_EXPECTED_ATTRS,
    authPolicy: new Uint8Array(0),
    symmetric: { algorithm: TPM_ALG_ID.NULL },
  }
  if ('n' in parts) {
    return {
      type: 'rsa',
      ...base,
      scheme: { scheme: TPM_ALG_ID.RSASSA, hashAlg },
      keyBits: 2048,
      exponent: 0,
      unique: parts,
    }
  }
  return {
    type: 'ecc',
    ...base,
    scheme: { scheme: TPM_ALG_ID.ECDSA, hashAlg },
    curve: TPM_ECC_CURVE.NIST_P256,
    kdf: { scheme: TPM_ALG_ID.NULL },
    unique: parts,
  }
}

/** Decodes a PCR mask (`0x…` or bare hex, as the agent's `mask` query) into PCR indices. */
export function maskToPcrs(mask: number): number[] {
  const out: number[] = []
  for (let i = 0; i < PCR_COUNT; i++) if ((mask >>> i) & 1) out.push(i)
  return out
}

/**
 * One software TPM. Cheap to construct when its keys are shared or cached: all derived public
 * structures are computed once here.
 *
 * @example
 * ```ts
 * const tpm = new SoftTpm({ keys: { ek: generateSoftTpmKey('rsa'), ak: generateSoftTpmKey('ecc'),
 *   nk: generateSoftTpmKey('rsa') } })
 * const { quote } = tpm.quote('nonce123', [10, 16])
 * ```
 */
export class SoftTpm {
  /** `tpm_hash_alg` of this TPM (AK scheme hash, quoted bank). */
  readonly hashAlg: HashAlg
  /** EK key algorithm (`rsa` / `ecc`). */
  readonly ekType: SoftKeyType
  /** AK key algorithm (`rsa` / `ecc`). */
  readonly akType: SoftKeyType
  /** EK public area (parsed, with `raw`). */
  readonly ekPublic: TpmPublic
  /** EK as TPM2B_PUBLIC bytes (`ek_tpm` before base64). */
  readonly ekTpm2b: Uint8Array
  /** AK public area. */
  readonly akPublic: TpmPublic
  /** AK as TPM2B_PUBLIC bytes (`aik_tpm` before base64). */
  readonly akTpm2b: Uint8Array
  /** AK Name: `nameAlg ‖ H(TPMT_PUBLIC)`. */
  readonly akName: Uint8Array
  /** The NK public key as the agent serves it: SPKI PEM, 64-char lines, trailing newline. */
  readonly nkPem: string
  /** EK certificate PEM, if any. */
  readonly ekCertPem: string | undefined
  readonly #keys: SoftTpmKeys
  readonly #pcrs = new Map<HashAlg, Uint8Array[]>()
  readonly #resetCount: number
  readonly #restartCount: number
  readonly #firmwareVersion: bigint
  readonly #clockStart: bigint
  readonly #t0 = performance.now()
  #lastClock = -1n

  constructor(opts: SoftTpmOptions) {
    this.hashAlg = opts.hashAlg ?? 'sha256'
    this.#keys = opts.keys
    this.ekType = kindOf(opts.keys.ek, 'EK')
    this.akType = kindOf(opts.keys.ak, 'AK')
    if (kindOf(opts.keys.nk, 'NK') !== 'rsa') {
      throw new FleetError('ERR_FLEET_CONFIG', 'NK must be RSA-2048')
    }
    this.ekTpm2b = serializeTpm2bPublic(ekPublicInput(opts.keys.ek))
    this.ekPublic = parseTpm2bPublic(this.ekTpm2b)
    this.akTpm2b = serializeTpm2bPublic(akPublicInput(opts.keys.ak, this.hashAlg))
    this.akPublic = parseTpm2bPublic(this.akTpm2b)
    this.akName = computeName(this.akPublic)
    this.nkPem = String(createPublicKey(opts.keys.nk).export({ format: 'pem', type: 'spki' }))
    this.ekCertPem = opts.ekCertPem
    this.#resetCount = opts.resetCount ?? 1
    this.#restartCount = opts.restartCount ?? 0
    this.#firmwareVersion = opts.firmwareVersion ?? 0x20240125_00120000n
    this.#clockStart = opts.clockStart ?? 1_000_000n
    for (const bank of new Set([this.hashAlg, ...(opts.banks ?? [])])) {
      this.#pcrs.set(
        bank,
        Array.from({ length: PCR_COUNT }, () => new Uint8Array(HASH_SIZE[bank])),
      )
    }
  }

  /** The PCR banks this TPM keeps. */
  get banks(): HashAlg[] {
    return [...this.#pcrs.keys()]
  }

  #bank(bank: HashAlg): Uint8Array[] {
    const values = this.#pcrs.get(bank)
    if (values === undefined) throw new TpmError('ERR_TPM_UNSUPPORTED', `no ${bank} PCR bank`)
    return values
  }

  #index(index: number): number {
    if (!Number.isInteger(index) || index < 0 || index >= PCR_COUNT) {
      throw new TpmError('ERR_TPM_BAD_VALUE', `PCR index ${index} out of range`)
    }
    return index
  }

  /** Reads one PCR value (a copy). */
  readPcr(bank: HashAlg, index: number): Uint8Array {
    return new Uint8Array(this.#bank(bank)[this.#index(index)]!)
  }

  /**
   * Sets a PCR to a value, as if the TPM had been powered up and extended to it (the fleet uses
   * this to start every agent at the PCR10 value of the shared IMA list without replaying it).
   */
  restorePcr(bank: HashAlg, index: number, value: Uint8Array): void {
    const values = this.#bank(bank)
    if (value.byteLength !== HASH_SIZE[bank]) {
      throw new TpmError('ERR_TPM_BAD_VALUE', `${bank} PCR values are ${HASH_SIZE[bank]} bytes`)
    }
    values[this.#index(index)] = new Uint8Array(value)
  }

  /** TPM2_PCR_Reset: sets the PCR to zero in every bank. */
  resetPcr(index: number): void {
    const i = this.#index(index)
    for (const [bank, values] of this.#pcrs) values[i] = new Uint8Array(HASH_SIZE[bank])
  }

  /** Extends one bank's PCR with a digest of that bank's size: `PCR = H(PCR ‖ digest)`. */
  extend(bank: HashAlg, index: number, digest: Uint8Array): void {
    const values = this.#bank(bank)
    const i = this.#index(index)
    if (digest.byteLength !== HASH_SIZE[bank]) {
      throw new TpmError(
        'ERR_TPM_BAD_VALUE',
        `${bank} extend needs a ${HASH_SIZE[bank]}-byte digest`,
      )
    }
    values[i] = createHash(bank).update(values[i]!).update(digest).digest()
  }

  /** TPM2_PCR_Event-like: extends every bank with `H_bank(data)`. */
  extendData(index: number, data: Uint8Array | string): void {
    for (const bank of this.#pcrs.keys()) {
      this.extend(bank, index, createHash(bank).update(data).digest())
    }
  }

  /**
   * Binds the NK to PCR16 as rust-keylime does before every quote (wire-formats §1.5):
   * `PCR_Reset(16)` then extend every bank with `H_bank(NK PEM)` (`pem`: what a hostile agent
   * sends instead).
   */
  bindNk(pem: string = this.nkPem): void {
    this.resetPcr(NK_BINDING_PCR)
    this.extendData(NK_BINDING_PCR, pem)
  }

  /** The next TPMS_CLOCK_INFO.clock: milliseconds since start, strictly rising per call. */
  #nextClock(): bigint {
    const now = this.#clockStart + BigInt(Math.floor(performance.now() - this.#t0))
    this.#lastClock = now > this.#lastClock ? now : this.#lastClock + 1n
    return this.#lastClock
  }

  /**
   * TPM2_Quote with the AK over the given PCRs of bank `hashAlg` (the AK's scheme hash), with
   * `nonce` as qualifying data. Returns the genuine structures and the Keylime quote string.
   *
   * @throws {TpmError} `ERR_TPM_UNSUPPORTED` if `hashAlg` is not the AK's hash or bank is absent;
   *   `ERR_TPM_BAD_VALUE` for a nonce over 64 bytes or a bad PCR index.
   */
  quote(
    nonce: string | Uint8Array,
    pcrs: readonly number[],
    hashAlg: HashAlg = this.hashAlg,
  ): SoftQuote {
    if (hashAlg !== this.hashAlg) {
      throw new TpmError('ERR_TPM_UNSUPPORTED', `the AK signs with ${this.hashAlg}, not ${hashAlg}`)
    }
    const extraData = typeof nonce === 'string' ? Buffer.from(nonce, 'utf8') : nonce
    if (extraData.byteLength > 64) throw new TpmError('ERR_TPM_BAD_VALUE', 'nonce over 64 bytes')
    const bank = this.#bank(hashAlg)
    const indices = [...new Set(pcrs.map((i) => this.#index(i)))].sort((a, b) => a - b)
    const selection: PcrSelection[] = [{ hashAlg: HASH_ALG_ID[hashAlg], pcrs: indices }]
    const values = indices.map((i) => bank[i]!)
    const digest = createHash(hashAlg)
    for (const v of values) digest.update(v)

    const w = new ByteWriter({ capacity: 160 })
    w.u32(TPM_GENERATED_VALUE).u16(TPM_ST.ATTEST_QUOTE)
    w.tpm2b(this.akName).tpm2b(extraData)
    w.u64(this.#nextClock()).u32(this.#resetCount).u32(this.#restartCount).u8(1)
    w.u64(this.#firmwareVersion)
    writePcrSelection(w, selection)
    w.tpm2b(digest.digest())
    const attest = w.finish()

    const signature = serializeTpmtSignature(this.#sign(attest))
    const pcrBlob = serializePcrBlob(selection, values)
    return {
      attest,
      signature,
      pcrBlob,
      quote: serializeQuoteString({ attest, signature, pcrBlob }),
    }
  }

  /**
   * TPM2_Certify of the AK by itself (TCG Part 2 §18.2) over `qualifyingData`: the push agent's
   * proof of possession (push-protocol.md §1.5.4). Returns TPMS_ATTEST and TPMT_SIGNATURE.
   */
  certifyAk(qualifyingData: Uint8Array): { attest: Uint8Array; signature: Uint8Array } {
    if (qualifyingData.byteLength > 64)
      throw new TpmError('ERR_TPM_BAD_VALUE', 'data over 64 bytes')
    const w = new ByteWriter({ capacity: 160 })
    w.u32(TPM_GENERATED_VALUE).u16(TPM_ST.ATTEST_CERTIFY)
    w.tpm2b(this.akName).tpm2b(qualifyingData)
    w.u64(this.#nextClock()).u32(this.#resetCount).u32(this.#restartCount).u8(1)
    w.u64(this.#firmwareVersion)
    // TPMS_CERTIFY_INFO: name and qualifiedName (a primary-less key: the Name stands for both)
    w.tpm2b(this.akName).tpm2b(this.akName)
    const attest = w.finish()
    return { attest, signature: serializeTpmtSignature(this.#sign(attest)) }
  }

  /**
   * Signs any TPMS_ATTEST bytes with the AK (a TPMT_SIGNATURE): fuzzing re-signs mutated quotes so
   * they get past the signature check and reach the checks behind it.
   */
  signAttest(attest: Uint8Array): Uint8Array {
    return serializeTpmtSignature(this.#sign(attest))
  }

  #sign(attest: Uint8Array): TpmSignature {
    const hashAlg = HASH_ALG_ID[this.hashAlg]
    if (this.akType === 'rsa') {
      return { sigAlg: TPM_ALG_ID.RSASSA, hashAlg, sig: sign(this.hashAlg, attest, this.#keys.ak) }
    }
    const rs = sign(this.hashAlg, attest, { key: this.#keys.ak, dsaEncoding: 'ieee-p1363' })
    return { sigAlg: TPM_ALG_ID.ECDSA, hashAlg, r: rs.subarray(0, 32), s: rs.subarray(32) }
  }

  /** The PCR16 value this TPM reports after {@link bindNk} in `bank`. */
  expectedPcr16(bank: HashAlg = this.hashAlg): Uint8Array {
    const zero = new Uint8Array(HASH_SIZE[bank])
    const h = createHash(bank).update(this.nkPem).digest()
    return createHash(bank).update(zero).update(h).digest()
  }

  /**
   * TPM2_ActivateCredential in software: recovers the credential MakeCredential bound to this
   * TPM's EK and `akName` (default: this TPM's AK). Accepts the tpm2-tools file (§2.3, magic
   * `BADCC0DE`) or the two TPM2B buffers.
   *
   * @throws {TpmError} `ERR_TPM_HMAC` if the outer HMAC does not verify (wrong EK or AK name, or
   *   a tampered blob); `ERR_TPM_BAD_VALUE` for malformed input or a seed that does not decrypt.
   */
  activateCredential(
    blob: Uint8Array | CredentialBlob,
    akName: Uint8Array = this.akName,
  ): Uint8Array {
    const parsed = blob instanceof Uint8Array ? parseCredentialBlob(blob) : blob
    return activateCredential(this.ekPublic, this.#keys.ek, akName, parsed)
  }

  /** RSA-OAEP (SHA-1, MGF1-SHA-1, no label) decryption with the NK: how U and V arrive (§4). */
  decryptWithNk(ciphertext: Uint8Array): Uint8Array {
    try {
      return privateDecrypt(
        { key: this.#keys.nk, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
        ciphertext,
      )
    } catch (cause) {
      throw new TpmError('ERR_TPM_BAD_VALUE', 'key does not decrypt with the NK', { cause })
    }
  }
}
