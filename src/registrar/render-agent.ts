/**
 * The registrar's "show" body (`RegistrarAgent.render`, keylime-api.md §1.6): `agent_id`,
 * `ek_tpm`, `ekcert` (base64 DER, also when the agent sent PEM), `aik_tpm`, `mtls_cert` (PEM, or
 * `"disabled"`), `ip`, `port`, `regcount`, plus `provider_keys` when `virtual`. The tenant requires
 * `aik_tpm`, `regcount`, `ek_tpm`, `ip` and `port` (`registrar_client.MANDATORY_FIELDS`).
 *
 * keylime-ts adds the EK certificate verdict of the registration (`ek_cert_verdict`,
 * `ek_cert_detail`) and the TPM identity from the certificate (`tpm_manufacturer`, `tpm_model`,
 * `tpm_version`); clients that do not know them ignore them.
 *
 * @module
 */
import type { registrarmain } from '../db/index.ts'

/** A `registrarmain` row. */
export type RegistrarRow = typeof registrarmain.$inferSelect

/** The JSON object returned by `GET /v{2,3}/agents/{id}`. */
export interface RenderedAgent {
  agent_id: string
  ek_tpm: string | null
  ekcert: string | null
  aik_tpm: string | null
  mtls_cert: string | null
  ip: string | null
  port: number | null
  regcount: number
  provider_keys?: unknown
  ek_cert_verdict: string | null
  ek_cert_detail: string | null
  tpm_manufacturer: string | null
  tpm_model: string | null
  tpm_version: string | null
}

/** PEM text of a base64 DER certificate, 64-column lines, trailing newline (as python-cryptography). */
export function derBase64ToPem(b64: string): string {
  const lines = b64.match(/.{1,64}/g) ?? []
  return `-----BEGIN CERTIFICATE-----\n${lines.join('\n')}\n-----END CERTIFICATE-----\n`
}

/** Renders a stored registration for the admin API. */
export function renderAgent(row: RegistrarRow): RenderedAgent {
  const mtls = row.mtls_cert
  const out: RenderedAgent = {
    agent_id: row.agent_id,
    ek_tpm: row.ek_tpm,
    ekcert: row.ekcert,
    aik_tpm: row.aik_tpm,
    mtls_cert: mtls === null || mtls === 'disabled' ? mtls : derBase64ToPem(mtls),
    ip: row.ip,
    port: row.port,
    regcount: row.regcount ?? 0,
    ek_cert_verdict: row.ek_cert_verdict,
    ek_cert_detail: row.ek_cert_detail,
    tpm_manufacturer: row.tpm_manufacturer,
    tpm_model: row.tpm_model,
    tpm_version: row.tpm_version,
  }
  if (row.virtual) out.provider_keys = row.provider_keys
  return out
}
