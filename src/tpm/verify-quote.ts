/**
 * Quote verification: the TPM half of Keylime's `tpm_main.py::check_quote` /
 * `tpm_util.py::checkquote` (wire-formats §3.3), stricter where upstream is lax.
 *
 * Order of checks, each failing with its own code:
 * 1. quote string → parts (`ERR_QUOTE_FORMAT`);
 * 2. TPMT_SIGNATURE parse (`ERR_TPM_*`), scheme fits the AK and the expected `signAlg`
 *    (`ERR_QUOTE_SIG_SCHEME`), hash equals `hashAlg` (`ERR_QUOTE_HASH_ALG`);
 * 3. signature over the TPMS_ATTEST bytes (`ERR_QUOTE_SIGNATURE`): RSASSA-PKCS1-v1_5, RSASSA-PSS
 *    with any salt length (`RSA_PSS_SALTLEN_AUTO`), ECDSA (r, s as IEEE P1363);
 * 4. TPMS_ATTEST parse: magic (`ERR_QUOTE_MAGIC`), type quote (`ERR_QUOTE_TYPE`);
 * 5. extraData == nonce, constant time (`ERR_QUOTE_NONCE`);
 * 6. PCR blob parse (`ERR_TPM_*`), its selection == the attested selection (`ERR_QUOTE_PCR_SELECTION`,
 *    not checked upstream);
 * 7. pcrDigest == H_sig(selected PCR values in selection order), constant time (`ERR_QUOTE_PCR_DIGEST`).
 *
 * Checking the signature before interpreting the attest means a tampered attest always fails as
 * `ERR_QUOTE_SIGNATURE`. Policy checks (PCR16 binding, IMA, measured boot, clock monotonicity) are
 * the caller's; the result carries what they need.
 *
 * @module
 */

import { createHash, type KeyObject, timingSafeEqual } from 'node:crypto'
import { ByteReader } from './byte-reader.ts'
import {
  HASH_ALG_ID,
  HASH_SIZE,
  type HashAlg,
  hashAlgName,
  signAlgName,
  SIGN_ALG_ID,
  type SignAlg,
  TPM_ST,
} from './constants.ts'
import { TpmError } from './errors.ts'
import { type ClockInfo, parseTpmsAttest } from './attest.ts'
import { type PcrBank, type PcrBlob, parsePcrBlob, pcrValuesByBank } from './pcr-blob.ts'
import { type PcrSelection, samePcrSelection } from './pcr-selection.ts'
import type { TpmPublic } from './public-area.ts'
import { parseQuoteString, type QuoteParts } from './quote-string.ts'
import { readTpmtSignature } from './signature.ts'
import { akKeyObject, verifyAkSignature } from './verify-signature.ts'

/** Input of {@link verifyQuote}. */
export interface VerifyQuoteParams {
  /** The quote string `r…:…:…`, or its already-decoded parts. */
  quote: string | QuoteParts
  /** The AK: its parsed public area, or a cached `node:crypto` public KeyObject (fastest). */
  akPublic: TpmPublic | KeyObject
  /** The nonce the verifier sent; a string is compared as its UTF-8 bytes (Keylime pull mode). */
  nonce: string | Uint8Array
  /** The hash algorithm the agent reported (`hash_alg`); the signature must use it. */
  hashAlg: HashAlg
  /** If set, the signature scheme must be this one (`sign_alg`). */
  signAlg?: SignAlg
}

/** What a verified quote attests. */
export interface VerifiedQuote {
  /** PCR values by bank and index (views into the decoded blob). */
  pcrs: Map<PcrBank, Map<number, Uint8Array>>
  /** The selection covered by the quote. */
  pcrSelection: PcrSelection[]
  /** Clock, resetCount, restartCount, safe (for `check_quote_timing`). */
  clockInfo: ClockInfo
  /** TPM firmware version. */
  firmwareVersion: bigint
  /** Qualified name of the signing key as the TPM reports it. */
  qualifiedSigner: Uint8Array
  /** The quoted pcrDigest. */
  pcrDigest: Uint8Array
  /** The signature scheme used. */
  signAlg: SignAlg
}

function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

/**
 * Constant-time compare of the quote's extraData with the nonce (a string is compared as its
 * UTF-8 bytes; an ASCII one, as Keylime's nonces are, without encoding it first).
 */
function nonceEqual(extra: Uint8Array, nonce: string | Uint8Array): boolean {
  if (typeof nonce !== 'string') return ctEqual(extra, nonce)
  if (extra.byteLength !== nonce.length) return ctEqual(extra, Buffer.from(nonce, 'utf8'))
  let diff = 0
  let high = 0
  for (let i = 0; i < nonce.length; i++) {
    const c = nonce.charCodeAt(i)
    high |= c
    diff |= c ^ (extra[i] as number)
  }
  return high < 0x80 ? diff === 0 : ctEqual(extra, Buffer.from(nonce, 'utf8'))
}

/** Computes a quote's pcrDigest: H(concatenation of the values in order). */
export function computePcrDigest(
  hash: HashAlg,
  values: readonly { value: Uint8Array }[],
): Uint8Array {
  const h = createHash(hash)
  for (const v of values) h.update(v.value)
  return h.digest()
}

/**
 * Verifies a Keylime quote against the AK, the nonce and the hash algorithm, and returns the
 * attested PCR values and clock info.
 *
 * @example
 * ```ts
 * const ak = toKeyObject(parseTpm2bPublic(Buffer.from(agent.aik_tpm, 'base64'))) // cache this
 * const { pcrs, clockInfo } = verifyQuote({ quote: resp.quote, akPublic: ak, nonce, hashAlg: 'sha256' })
 * ```
 *
 * @throws {TpmError} with a specific code per failure (see the module header).
 */
export function verifyQuote(params: VerifyQuoteParams): VerifiedQuote {
  const parts = typeof params.quote === 'string' ? parseQuoteString(params.quote) : params.quote
  const key = akKeyObject(params.akPublic)

  const sr = new ByteReader(parts.signature)
  const sig = readTpmtSignature(sr)
  sr.end()
  const signAlg = signAlgName(sig.sigAlg)
  if (signAlg === undefined) {
    throw new TpmError('ERR_TPM_UNSUPPORTED', `signature scheme 0x${sig.sigAlg.toString(16)}`)
  }
  if (params.signAlg !== undefined && SIGN_ALG_ID[params.signAlg] !== sig.sigAlg) {
    throw new TpmError('ERR_QUOTE_SIG_SCHEME', `signature scheme is not ${params.signAlg}`)
  }
  if (sig.hashAlg !== HASH_ALG_ID[params.hashAlg]) {
    const got = hashAlgName(sig.hashAlg) ?? `0x${sig.hashAlg.toString(16)}`
    // upstream's wording (tpm_util.checkquote), which /verify/evidence answers carry
    const message = `Quote was expected to use ${params.hashAlg} but used ${got} instead`
    throw new TpmError('ERR_QUOTE_HASH_ALG', message)
  }
  verifyAkSignature(key, sig, params.hashAlg, parts.attest)

  const attest = parseTpmsAttest(parts.attest, { expectType: TPM_ST.ATTEST_QUOTE })
  if (attest.type !== TPM_ST.ATTEST_QUOTE)
    throw new TpmError('ERR_QUOTE_TYPE', 'attestation is not a quote')
  if (!nonceEqual(attest.extraData, params.nonce))
    throw new TpmError(
      'ERR_QUOTE_NONCE',
      'The nonce from the attestation differs from the expected nonce',
    )

  const blob: PcrBlob = parsePcrBlob(parts.pcrBlob)
  if (!samePcrSelection(blob.selection, attest.quote.pcrSelect)) {
    throw new TpmError(
      'ERR_QUOTE_PCR_SELECTION',
      'PCR blob selection differs from the quoted selection',
    )
  }
  if (attest.quote.pcrDigest.byteLength !== HASH_SIZE[params.hashAlg]) {
    throw new TpmError('ERR_QUOTE_PCR_DIGEST', 'pcrDigest has the wrong size')
  }
  if (!ctEqual(computePcrDigest(params.hashAlg, blob.values), attest.quote.pcrDigest)) {
    throw new TpmError('ERR_QUOTE_PCR_DIGEST', 'PCR values do not match the quoted pcrDigest')
  }
  return {
    pcrs: pcrValuesByBank(blob.values),
    pcrSelection: blob.selection,
    clockInfo: attest.clockInfo,
    firmwareVersion: attest.firmwareVersion,
    qualifiedSigner: attest.qualifiedSigner,
    pcrDigest: attest.quote.pcrDigest,
    signAlg,
  }
}
