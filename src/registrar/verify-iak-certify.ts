/**
 * The IAK → AK binding (TCG IDevID/IAK; upstream `tpm_main.py::verify_aik_with_iak`,
 * wire-formats §2.5): the agent runs TPM2_Certify(object = AK, signHandle = IAK) and sends the
 * TPMS_ATTEST (`iak_attest`) and its TPMT_SIGNATURE (`iak_sign`). We check:
 * - magic `TPM_GENERATED_VALUE` and type `TPM_ST_ATTEST_CERTIFY` (0x8017);
 * - `extraData` = SHA-256(agent_id) for API ≥ 2.6, the raw agent id below 2.6
 *   (keylime-api.md §1.1 version history; compared in constant time);
 * - the certified name = Name(aik_tpm);
 * - the signature over H(attest) with the IAK: RSASSA, RSAPSS or ECDSA, the hash named in the
 *   signature.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { compareApiVersions } from '../protocol/api-versions.ts'
import { isKeylimeError } from '../errors.ts'
import type { HashAlg } from '../tpm/constants.ts'
import type { TpmPublic } from '../tpm/public-area.ts'
import { verifyCertify } from '../tpm/verify-certify.ts'
import { invalidData } from './errors.ts'

/** Inputs of {@link verifyIakCertify}. */
export interface VerifyIakCertifyParams {
  agentId: string
  /** The API version of the request path (`2.6`, `3.0`, …). */
  apiVersion: string
  ak: TpmPublic
  iak: TpmPublic
  /** TPMS_ATTEST bytes (no size prefix). */
  attest: Uint8Array
  /** TPMT_SIGNATURE bytes. */
  signature: Uint8Array
}

/** The hashes an IAK signature may use: any the TPM names (as upstream). */
const IAK_HASHES: ReadonlySet<HashAlg> = new Set(['sha1', 'sha256', 'sha384', 'sha512'])

/** The qualifying data the agent must have used for this API version. */
export function iakQualifyingData(agentId: string, apiVersion: string): Uint8Array {
  const raw = Buffer.from(agentId, 'utf8')
  return compareApiVersions(apiVersion, '2.6') >= 0
    ? createHash('sha256').update(raw).digest()
    : raw
}

/**
 * Verifies that the IAK certified the AK for this agent (`tpm/verify-certify.ts`).
 *
 * @throws RegistrarError `ERR_REGISTRAR_IAK` with the reason
 */
export function verifyIakCertify(params: VerifyIakCertifyParams): void {
  const { agentId, apiVersion, ak, iak, attest, signature } = params
  try {
    verifyCertify({
      attest,
      signature,
      signer: iak,
      certified: ak,
      qualifyingData: iakQualifyingData(agentId, apiVersion),
      hashes: IAK_HASHES,
    })
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(
      `aik_tpm cannot be confirmed as created by the same TPM as the IAK: ${e.message}`,
      'ERR_REGISTRAR_IAK',
      e,
    )
  }
}
