/**
 * The IAK → AK binding (TCG IDevID/IAK; upstream `tpm_main.py::verify_aik_with_iak`,
 * wire-formats §2.5): the agent runs TPM2_Certify(object = AK, signHandle = IAK) and sends the
 * TPMS_ATTEST (`iak_attest`) and its TPMT_SIGNATURE (`iak_sign`). We check:
 * - magic `TPM_GENERATED_VALUE` and type `TPM_ST_ATTEST_CERTIFY` (0x8017);
 * - `extraData` = SHA-256(agent_id) for API ≥ 2.6, the raw agent id below 2.6
 *   (keylime-api.md §1.1 version history; compared in constant time);
 * - the certified name = Name(aik_tpm);
 * - the signature over H(attest) with the IAK: RSASSA, RSAPSS (salt = digest size) or ECDSA, the
 *   hash named in the signature.
 *
 * @module
 */
import { constants, createHash, type KeyObject, timingSafeEqual, verify } from 'node:crypto'
import { compareApiVersions } from '../protocol/api-versions.ts'
import { isKeylimeError } from '../errors.ts'
import { TPM_ALG_ID, TPM_ST, HASH_SIZE, hashAlgName } from '../tpm/constants.ts'
import { parseTpmsAttest } from '../tpm/attest.ts'
import { computeName, toKeyObject, type TpmPublic } from '../tpm/public-area.ts'
import { parseTpmtSignature, type TpmSignature } from '../tpm/signature.ts'
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

/** The qualifying data the agent must have used for this API version. */
export function iakQualifyingData(agentId: string, apiVersion: string): Uint8Array {
  const raw = Buffer.from(agentId, 'utf8')
  return compareApiVersions(apiVersion, '2.6') >= 0
    ? createHash('sha256').update(raw).digest()
    : raw
}

function ctEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

function fail(reason: string, cause?: unknown): never {
  throw invalidData(
    `aik_tpm cannot be confirmed as created by the same TPM as the IAK: ${reason}`,
    'ERR_REGISTRAR_IAK',
    cause,
  )
}

function p1363(r: Uint8Array, s: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size * 2)
  const place = (v: Uint8Array, at: number): void => {
    let i = 0
    while (i < v.byteLength - size && v[i] === 0) i++
    const t = v.subarray(i)
    if (t.byteLength > size) fail('ECDSA signature component too long')
    out.set(t, at + size - t.byteLength)
  }
  place(r, 0)
  place(s, size)
  return out
}

function checkSig(key: KeyObject, iak: TpmPublic, sig: TpmSignature, attest: Uint8Array): boolean {
  const hash = hashAlgName(sig.hashAlg)
  if (hash === undefined) fail(`signature hash 0x${sig.hashAlg.toString(16)} not supported`)
  if ('sig' in sig) {
    if (iak.type !== 'rsa') fail('RSA signature from a non-RSA IAK')
    if (sig.sigAlg === TPM_ALG_ID.RSAPSS) {
      return verify(
        hash,
        attest,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_SIZE[hash] },
        sig.sig,
      )
    }
    return verify(hash, attest, key, sig.sig)
  }
  if (sig.sigAlg !== TPM_ALG_ID.ECDSA)
    fail(`signature scheme 0x${sig.sigAlg.toString(16)} not supported`)
  if (iak.type !== 'ecc') fail('ECDSA signature from a non-ECC IAK')
  const size = iak.unique.x.byteLength
  return verify(hash, attest, { key, dsaEncoding: 'ieee-p1363' }, p1363(sig.r, sig.s, size))
}

/**
 * Verifies that the IAK certified the AK for this agent.
 *
 * @throws RegistrarError `ERR_REGISTRAR_IAK` with the reason
 */
export function verifyIakCertify(params: VerifyIakCertifyParams): void {
  const { agentId, apiVersion, ak, iak, attest, signature } = params
  let parsed: ReturnType<typeof parseTpmsAttest>
  let sig: TpmSignature
  let key: KeyObject
  try {
    parsed = parseTpmsAttest(attest, { expectType: TPM_ST.ATTEST_CERTIFY })
    sig = parseTpmtSignature(signature)
    key = toKeyObject(iak)
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    fail(e.message, e)
  }
  if (parsed.type !== TPM_ST.ATTEST_CERTIFY) fail('not a TPM2_Certify attestation')
  if (!ctEqual(parsed.extraData, iakQualifyingData(agentId, apiVersion))) {
    fail(`qualifying data is not the one API ${apiVersion} prescribes for this agent id`)
  }
  if (!ctEqual(parsed.certify.name, computeName(ak))) fail('the certified object is not aik_tpm')
  let ok: boolean
  try {
    ok = checkSig(key, iak, sig, attest)
  } catch (e) {
    if (isKeylimeError(e)) throw e
    ok = false
  }
  if (!ok) fail('signature does not verify with iak_tpm')
}
