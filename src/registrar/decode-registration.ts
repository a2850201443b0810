/**
 * Decodes a registration body (wire-formats §2.2) into typed values, field by field, with
 * a 400 naming the field for anything malformed. No policy is applied here (identity rules,
 * trust, re-registration): see `service.ts`.
 *
 * Accepted quirks of real agents:
 * - rust-keylime sends `iak_cert` / `idevid_cert` as `null` when absent, omits `ek_tpm` when empty,
 *   and sends `ekcert` as PEM with the NV chain appended; the Python agent sent base64 DER or
 *   `"emulator"`. `null`, `""` and `"emulator"` all mean "absent" here.
 * - `mtls_cert` is PEM (or base64 DER) or the literal `"disabled"`.
 * - `port` may be a JSON number or a decimal string (upstream casts with `int()`).
 *
 * @module
 */
import { type EkCertificate, type MalformedCertAction, parseEkCert } from '../tpm/ek-cert.ts'
import { isKeylimeError } from '../errors.ts'
import { decodeBase64 } from '../protocol/decode-base64.ts'
import { ProtocolError } from '../protocol/errors.ts'
import { parseTpm2bPublic, type TpmPublic } from '../tpm/public-area.ts'
import { invalidData } from './errors.ts'

/** A decoded TPM2B_PUBLIC with the exact bytes it came from. */
export interface DecodedPublic {
  /** The TPM2B_PUBLIC bytes (u16 size ‖ TPMT_PUBLIC). */
  bytes: Uint8Array
  /** The parsed public area. */
  pub: TpmPublic
}

/** `mtls_cert`: a certificate or the literal `"disabled"`. */
export type DecodedMtlsCert = { kind: 'disabled' } | { kind: 'cert'; cert: EkCertificate }

/**
 * The decoded body. `undefined` means the field was absent (or `null` / `""`): upstream leaves
 * absent fields of an existing registration unchanged.
 */
export interface DecodedRegistration {
  aik: DecodedPublic
  ek?: DecodedPublic
  ekcert?: EkCertificate
  iak?: DecodedPublic
  idevid?: DecodedPublic
  iakCert?: EkCertificate
  idevidCert?: EkCertificate
  /** TPMS_ATTEST of TPM2_Certify(AK) by the IAK. */
  iakAttest?: Uint8Array
  /** TPMT_SIGNATURE over `iakAttest`. */
  iakSign?: Uint8Array
  ip?: string
  port?: number
  mtlsCert?: DecodedMtlsCert
}

/** Options of {@link decodeRegistration}. */
export interface DecodeRegistrationOptions {
  /** `[registrar] malformed_cert_action` for every certificate field. */
  malformedCertAction: MalformedCertAction
}

/** Largest base64 text accepted for a TPM structure (a TPM2B is at most 64 KiB). */
const MAX_B64_TPM = 4096
/** Longest `ip` (upstream `String(255)` after migration 8da20383f6e1). */
const MAX_IP_LENGTH = 255

function isAbsent(v: unknown): boolean {
  return v === undefined || v === null || v === ''
}

function b64(
  body: Record<string, unknown>,
  field: string,
  max = MAX_B64_TPM,
): Uint8Array | undefined {
  const v = body[field]
  if (isAbsent(v)) return undefined
  if (typeof v !== 'string') throw invalidData(`${field} must be a base64 string`)
  let bytes: Uint8Array
  try {
    bytes = Uint8Array.from(decodeBase64(v, { what: field, maxLength: max }))
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    throw invalidData(e.message, undefined, e)
  }
  if (bytes.byteLength === 0) return undefined
  return bytes
}

function tpmPublic(body: Record<string, unknown>, field: string): DecodedPublic | undefined {
  const bytes = b64(body, field)
  if (bytes === undefined) return undefined
  try {
    return { bytes, pub: parseTpm2bPublic(bytes) }
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(
      `${field} must be a valid TPM2B_PUBLIC structure (${e.message})`,
      undefined,
      e,
    )
  }
}

function certificate(
  body: Record<string, unknown>,
  field: string,
  action: MalformedCertAction,
): EkCertificate | undefined {
  const v = body[field]
  if (isAbsent(v) || v === 'emulator') return undefined
  if (typeof v !== 'string') throw invalidData(`${field} must be a PEM or base64 DER string`)
  try {
    return parseEkCert(v, { malformedCertAction: action })
  } catch (e) {
    if (!isKeylimeError(e)) throw e
    throw invalidData(
      `${field} must be a valid X.509 certificate (${e.message})`,
      'ERR_REGISTRAR_INVALID_DATA',
      e,
    )
  }
}

function port(v: unknown): number | undefined {
  if (isAbsent(v)) return undefined
  const n = typeof v === 'string' && /^\d{1,5}$/.test(v.trim()) ? Number(v.trim()) : v
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    throw invalidData('port must be an integer from 0 to 65535')
  }
  return n
}

function ip(v: unknown): string | undefined {
  if (isAbsent(v)) return undefined
  // A host name or an IPv4/IPv6 literal (zone ids and brackets allowed); nothing else reaches the
  // database (a NUL byte there would be a server error, not a 400).
  if (typeof v !== 'string' || v.length > MAX_IP_LENGTH || !/^[A-Za-z0-9._:%[\]-]+$/.test(v)) {
    throw invalidData(`ip must be a host name or address of at most ${MAX_IP_LENGTH} characters`)
  }
  return v
}

/**
 * Decodes and structurally validates every field of a registration body.
 *
 * @throws RegistrarError `ERR_REGISTRAR_INVALID_DATA` naming the first bad field
 */
export function decodeRegistration(
  body: Record<string, unknown>,
  options: DecodeRegistrationOptions,
): DecodedRegistration {
  const action = options.malformedCertAction
  const aik = tpmPublic(body, 'aik_tpm')
  if (aik === undefined) throw invalidData('aik_tpm is required')
  const out: DecodedRegistration = { aik }
  out.ek = tpmPublic(body, 'ek_tpm')
  out.ekcert = certificate(body, 'ekcert', action)
  out.iak = tpmPublic(body, 'iak_tpm')
  out.idevid = tpmPublic(body, 'idevid_tpm')
  out.iakCert = certificate(body, 'iak_cert', action)
  out.idevidCert = certificate(body, 'idevid_cert', action)
  out.iakAttest = b64(body, 'iak_attest')
  out.iakSign = b64(body, 'iak_sign')
  out.ip = ip(body.ip)
  out.port = port(body.port)
  if (body.mtls_cert === 'disabled') out.mtlsCert = { kind: 'disabled' }
  else {
    const cert = certificate(body, 'mtls_cert', action)
    if (cert !== undefined) out.mtlsCert = { kind: 'cert', cert }
  }
  return out
}
