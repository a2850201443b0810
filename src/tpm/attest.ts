/**
 * TPMS_ATTEST (TCG TPM 2.0 Library Part 2 §10.12.12), the structure a TPM signs in TPM2_Quote and
 * TPM2_Certify, sent by Keylime agents without a TPM2B size prefix (wire-formats §1.4):
 *
 * ```
 * magic u32 (TPM_GENERATED_VALUE) | type u16 (TPMI_ST_ATTEST) | qualifiedSigner TPM2B_NAME
 * | extraData TPM2B_DATA | clockInfo {clock u64, resetCount u32, restartCount u32, safe u8}
 * | firmwareVersion u64 | attested (TPMU_ATTEST by type)
 * ```
 *
 * Quote (§10.12.4 TPMS_QUOTE_INFO): `pcrSelect TPML_PCR_SELECTION | pcrDigest TPM2B_DIGEST`.
 * Certify (§10.12.3 TPMS_CERTIFY_INFO): `name TPM2B_NAME | qualifiedName TPM2B_NAME`.
 *
 * @module
 */

import { ByteReader } from './byte-reader.ts'
import { TPM_GENERATED_VALUE, TPM_ST } from './constants.ts'
import { TpmError } from './errors.ts'
import { type PcrSelection, readPcrSelection } from './pcr-selection.ts'

/** Part 2 §10.11.1 TPMS_CLOCK_INFO. */
export interface ClockInfo {
  /** Milliseconds the TPM has been powered since its last clear (monotonic). */
  clock: bigint
  /** TPM resets (TPM2_Startup(CLEAR) without shutdown) since the last clear. */
  resetCount: number
  /** TPM2_Shutdown/Startup(STATE) cycles since the last reset. */
  restartCount: number
  /** True if clock has not been rolled back (TPMI_YES_NO). */
  safe: boolean
}

/** TPMS_QUOTE_INFO. */
export interface QuoteInfo {
  /** PCRs the quote covers, in the TPM's order. */
  pcrSelect: PcrSelection[]
  /** H_sig(concatenated selected PCR values). */
  pcrDigest: Uint8Array
}

/** TPMS_CERTIFY_INFO. */
export interface CertifyInfo {
  /** Name of the certified object. */
  name: Uint8Array
  /** Qualified name of the certified object. */
  qualifiedName: Uint8Array
}

/** Fields common to every TPMS_ATTEST. */
interface AttestBase {
  /** TPM_GENERATED_VALUE (checked on parse). */
  magic: number
  /** Qualified name of the signing key. */
  qualifiedSigner: Uint8Array
  /** Caller-supplied qualifying data (Keylime: the nonce). */
  extraData: Uint8Array
  /** Clock, reset and restart counters. */
  clockInfo: ClockInfo
  /** TPM vendor-defined firmware version. */
  firmwareVersion: bigint
}

/** A parsed TPMS_ATTEST (quote or certify). */
export type TpmsAttest =
  | (AttestBase & { type: typeof TPM_ST.ATTEST_QUOTE; quote: QuoteInfo })
  | (AttestBase & { type: typeof TPM_ST.ATTEST_CERTIFY; certify: CertifyInfo })

/** Max TPM2B_NAME size: u16 alg + 64-byte digest. */
const MAX_NAME = 2 + 64
/** Max TPM2B_DATA / TPM2B_DIGEST size (sizeof(TPMT_HA)). */
const MAX_DATA = 2 + 64

function limited(r: ByteReader, max: number, what: string): Uint8Array {
  const b = r.tpm2b()
  if (b.byteLength > max) throw new TpmError('ERR_TPM_BAD_VALUE', `${what} too long`)
  return b
}

/**
 * Parses a TPMS_ATTEST (no size prefix) of type quote or certify. Byte fields are views into the
 * input. With `expectType`, any other type fails as `ERR_QUOTE_TYPE` before its body is read.
 *
 * @throws {TpmError} `ERR_QUOTE_MAGIC` (not TPM-generated), `ERR_QUOTE_TYPE` (not quote/certify),
 *   `ERR_TPM_TRUNCATED`, `ERR_TPM_TRAILING_BYTES`, `ERR_TPM_BAD_VALUE`.
 */
export function parseTpmsAttest(
  bytes: Uint8Array,
  opts: { expectType?: typeof TPM_ST.ATTEST_QUOTE | typeof TPM_ST.ATTEST_CERTIFY } = {},
): TpmsAttest {
  const r = new ByteReader(bytes)
  const magic = r.u32()
  if (magic !== TPM_GENERATED_VALUE) {
    throw new TpmError('ERR_QUOTE_MAGIC', 'attestation is not TPM-generated (bad magic)')
  }
  const type = r.u16()
  if (type !== TPM_ST.ATTEST_QUOTE && type !== TPM_ST.ATTEST_CERTIFY) {
    throw new TpmError('ERR_QUOTE_TYPE', `attestation type 0x${type.toString(16)} not supported`)
  }
  if (opts.expectType !== undefined && type !== opts.expectType) {
    throw new TpmError(
      'ERR_QUOTE_TYPE',
      `attestation type 0x${type.toString(16)} is not the expected one`,
    )
  }
  const qualifiedSigner = limited(r, MAX_NAME, 'qualifiedSigner')
  const extraData = limited(r, MAX_DATA, 'extraData')
  const clock = r.u64()
  const resetCount = r.u32()
  const restartCount = r.u32()
  const safeByte = r.u8()
  if (safeByte > 1) throw new TpmError('ERR_TPM_BAD_VALUE', 'clockInfo.safe is not a TPMI_YES_NO')
  const firmwareVersion = r.u64()
  const base: AttestBase = {
    magic,
    qualifiedSigner,
    extraData,
    clockInfo: { clock, resetCount, restartCount, safe: safeByte === 1 },
    firmwareVersion,
  }
  if (type === TPM_ST.ATTEST_QUOTE) {
    const pcrSelect = readPcrSelection(r)
    const pcrDigest = limited(r, 64, 'pcrDigest')
    r.end()
    return { ...base, type, quote: { pcrSelect, pcrDigest } }
  }
  const name = limited(r, MAX_NAME, 'name')
  const qualifiedName = limited(r, MAX_NAME, 'qualifiedName')
  r.end()
  return { ...base, type, certify: { name, qualifiedName } }
}
