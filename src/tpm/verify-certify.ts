/**
 * TPM2_Certify checks (TCG TPM 2.0 Library Part 3 §18.2): a signing key certifies that an object
 * lives in the same TPM, over qualifying data. Used for the push-mode proof of possession (the AK
 * certifies itself over the session challenge, as rust-keylime's `generate_tpm_auth_proof` makes
 * it and upstream's `Tpm.verify_tpm_object(ak, ak, attest, sig, qual=nonce)` checks it) and for
 * the registrar's IAK → AK binding (`registrar/verify-iak-certify.ts`).
 *
 * Order of checks, each failing with its own code:
 * 1. TPMT_SIGNATURE parse (`ERR_TPM_*`); its hash is one of `hashes` (`ERR_QUOTE_HASH_ALG`);
 *    RSASSA, RSAPSS and ECDSA are accepted (upstream's PoP accepts RSASSA/SHA-256 only);
 * 2. the signature over the TPMS_ATTEST bytes under the signer (`ERR_QUOTE_SIG_SCHEME`,
 *    `ERR_QUOTE_SIGNATURE`), before the attest is interpreted;
 * 3. TPMS_ATTEST parse: magic (`ERR_QUOTE_MAGIC`), type ATTEST_CERTIFY (`ERR_QUOTE_TYPE`);
 * 4. extraData == qualifying data, constant time (`ERR_QUOTE_NONCE`);
 * 5. the certified Name == Name(certified object) (`ERR_CERTIFY_NAME`).
 *
 * @module
 */

import { timingSafeEqual } from 'node:crypto'
import { type HashAlg, hashAlgName, TPM_ST } from './constants.ts'
import { TpmError } from './errors.ts'
import { parseTpmsAttest } from './attest.ts'
import { computeName, type TpmPublic } from './public-area.ts'
import { parseTpmtSignature } from './signature.ts'
import { verifyAkSignature } from './verify-signature.ts'

/** Hashes a proof of possession may be signed with (SHA-1 is refused). */
export const POP_HASHES: ReadonlySet<HashAlg> = new Set(['sha256', 'sha384', 'sha512'])

/** Largest TPMS_ATTEST / TPMT_SIGNATURE accepted (a certify attest is < 300 bytes). */
export const MAX_CERTIFY_BYTES = 4096

/** Input of {@link verifyCertify}. */
export interface VerifyCertifyParams {
  /** The marshalled TPMS_ATTEST (no size prefix). */
  attest: Uint8Array
  /** The marshalled TPMT_SIGNATURE. */
  signature: Uint8Array
  /** The key that signed (the AK for a proof of possession, the IAK for the registrar). */
  signer: TpmPublic
  /** The object certified (the AK). */
  certified: TpmPublic
  /** The expected TPMS_ATTEST.extraData (the verifier's challenge). */
  qualifyingData: Uint8Array
  /** Hashes the signature may use (default {@link POP_HASHES}). */
  hashes?: ReadonlySet<HashAlg>
}

function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

/**
 * Verifies that `signer` certified `certified` over `qualifyingData`; returns the signature's
 * hash and scheme (TPM_ALG_ID).
 *
 * @example
 * ```ts
 * verifyCertify({ attest, signature, signer: ak, certified: ak, qualifyingData: challenge })
 * ```
 *
 * @throws {TpmError} with a specific code per failure (see the module header).
 */
export function verifyCertify(params: VerifyCertifyParams): { hash: HashAlg; sigAlg: number } {
  const { attest, signature, signer, certified, qualifyingData } = params
  if (attest.byteLength > MAX_CERTIFY_BYTES || signature.byteLength > MAX_CERTIFY_BYTES) {
    throw new TpmError('ERR_TPM_BAD_VALUE', 'certify attestation or signature too long')
  }
  const sig = parseTpmtSignature(signature)
  const hash = hashAlgName(sig.hashAlg)
  if (hash === undefined || !(params.hashes ?? POP_HASHES).has(hash)) {
    const got = hash ?? `0x${sig.hashAlg.toString(16)}`
    throw new TpmError('ERR_QUOTE_HASH_ALG', `certify signature hash ${got} not accepted`)
  }
  verifyAkSignature(signer, sig, hash, attest, 'certify')
  const parsed = parseTpmsAttest(attest, { expectType: TPM_ST.ATTEST_CERTIFY })
  if (parsed.type !== TPM_ST.ATTEST_CERTIFY) {
    throw new TpmError('ERR_QUOTE_TYPE', 'attestation is not a certification')
  }
  if (!ctEqual(parsed.extraData, qualifyingData)) {
    throw new TpmError(
      'ERR_QUOTE_NONCE',
      'the certification does not carry the expected qualifying data',
    )
  }
  if (!ctEqual(parsed.certify.name, computeName(certified))) {
    throw new TpmError('ERR_CERTIFY_NAME', 'the certified object is not the expected one')
  }
  return { hash, sigAlg: sig.sigAlg }
}
