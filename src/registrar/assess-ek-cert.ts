/**
 * The registrar's EK certificate verdict. Upstream leaves EK trust to the tenant
 * (`require_ek_cert`, `tpm_cert_store`); we also check at registration and store the outcome
 * in `registrarmain.ek_cert_verdict` / `ek_cert_detail` with the TPM identity from the SAN, so
 * operators and the tenant can see it in `GET /agents/{id}`.
 *
 * @module
 */
import { isEkCertError } from '../tpm/ek-cert-error.ts'
import { type CertStore, verifyEkCertChain } from '../tpm/cert-store.ts'
import type { EkCertificate, TpmInfo } from '../tpm/ek-cert.ts'

/**
 * The verdicts: `trusted` (chains to the store), `untrusted` (no chain), `expired` (outside
 * validity), `invalid` (cannot be checked: unsupported algorithm, bad intermediate), `absent` (no
 * EK certificate sent), `no_store` (the `tpm_cert_store` is missing or empty).
 */
export const EK_CERT_VERDICTS = [
  'trusted',
  'untrusted',
  'expired',
  'invalid',
  'absent',
  'no_store',
] as const

/** One EK certificate verdict. */
export type EkCertVerdict = (typeof EK_CERT_VERDICTS)[number]

/** The stored outcome of {@link assessEkCert}. */
export interface EkCertAssessment {
  verdict: EkCertVerdict
  /** Human-readable reason (subjects, issuers, error text; never key material). */
  detail: string
  /** TPM identity from the certificate SAN (empty when absent). */
  tpm: TpmInfo
}

/**
 * Checks `cert` against the trust store at `now`, using the chain certificates the agent sent.
 *
 * @param store - the loaded store, or the error loading it raised
 */
export function assessEkCert(
  cert: EkCertificate | undefined,
  store: CertStore | Error,
  now: Date,
): EkCertAssessment {
  if (cert === undefined) return { verdict: 'absent', detail: 'no EK certificate sent', tpm: {} }
  const tpm = cert.tpm
  if (store instanceof Error) return { verdict: 'no_store', detail: store.message, tpm }
  try {
    const path = verifyEkCertChain(cert, store, { now, intermediates: cert.chain })
    const anchor = path[path.length - 1]
    return {
      verdict: 'trusted',
      detail: `chains to ${anchor?.x509.subject ?? 'a trust anchor'} (${path.length - 1} link${path.length === 2 ? '' : 's'})`,
      tpm,
    }
  } catch (e) {
    if (isEkCertError(e, 'ERR_EK_CERT_CHAIN'))
      return { verdict: 'untrusted', detail: e.message, tpm }
    if (isEkCertError(e, 'ERR_EK_CERT_EXPIRED'))
      return { verdict: 'expired', detail: e.message, tpm }
    if (isEkCertError(e)) return { verdict: 'invalid', detail: e.message, tpm }
    throw e
  }
}
