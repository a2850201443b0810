/**
 * EK certificates: decode what agents send, tolerate what real TPMs ship, read the TPM identity,
 * and check the certificate binds the EK.
 *
 * Accepted encodings (`ekcert` of the registration body, wire-formats §2.2;
 * upstream `keylime/models/base/types/certificate.py`):
 * - DER bytes;
 * - base64 of DER (the Python agent);
 * - PEM: the EK certificate, optionally followed by the CA chain certificates the Rust agent reads
 *   from NV 0x01c00100–0x01c001ff (`EKResult::to_pem`).
 *
 * Parsing is lenient (asn1js, via `@peculiar/x509`, accepts BER); DER conformance is checked
 * separately ({@link checkDer}) and acted on per `[registrar] malformed_cert_action`: `warn` (default)
 * logs and accepts, `reject` throws `ERR_EK_CERT_MALFORMED`, `ignore` accepts silently. Like
 * upstream, signatures are always verified over the bytes as received, never a re-encoding.
 *
 * The TPM identity is read from the SubjectAltName directoryName with the TCG attributes
 * tcg-at-tpmManufacturer 2.23.133.2.1, tcg-at-tpmModel 2.23.133.2.2 and tcg-at-tpmVersion
 * 2.23.133.2.3 (TCG EK Credential Profile 2.0 §3.2.9).
 *
 * @module
 */

import { createPublicKey, type KeyObject, timingSafeEqual } from 'node:crypto'
import { AsnConvert } from '@peculiar/asn1-schema'
import {
  AlgorithmIdentifier,
  SubjectAlternativeName,
  SubjectPublicKeyInfo,
} from '@peculiar/asn1-x509'
import { X509Certificate } from '@peculiar/x509'
import { getLogger } from '../log/logger.ts'
import { decodeBase64 } from '../protocol/decode-base64.ts'
import { ProtocolError } from '../protocol/errors.ts'
import { ECC_CURVE_INFO } from './constants.ts'
import { checkDer, derChildren, derContent } from './ek-cert-der.ts'
import { EkCertError } from './ek-cert-error.ts'
import type { TpmPublic } from './public-area.ts'

/** What to do with certificates that are not strict DER (upstream `malformed_cert_action`). */
export type MalformedCertAction = 'warn' | 'reject' | 'ignore'

/** TCG TPM identity from the SubjectAltName (values as written, e.g. `id:00001014`). */
export interface TpmInfo {
  /** tcg-at-tpmManufacturer (2.23.133.2.1), e.g. `id:4E544300`. */
  manufacturer?: string
  /** tcg-at-tpmModel (2.23.133.2.2), e.g. `NPCT75x`. */
  model?: string
  /** tcg-at-tpmVersion (2.23.133.2.3), e.g. `id:00070002`. */
  version?: string
}

/** One decoded certificate, kept with the exact bytes it was signed as. */
export interface ParsedCertificate {
  /** The DER as received, cut at the end of the outer SEQUENCE (NV padding removed). */
  der: Uint8Array
  /** `tbsCertificate` exactly as signed. */
  tbs: Uint8Array
  /** The lenient decode, for fields and extensions. */
  x509: X509Certificate
  /** The signature value (BIT STRING content without the unused-bits octet), as signed. */
  signature: Uint8Array
  /** DER violations found (empty when strict DER); see {@link checkDer}. */
  derIssues: string[]
}

/** An EK certificate with the chain certificates that came with it. */
export interface EkCertificate extends ParsedCertificate {
  /** TPM manufacturer / model / version from the SAN (fields absent if not present). */
  tpm: TpmInfo
  /** Further certificates from the same PEM bundle (Rust agent: NV chain), in order. */
  chain: ParsedCertificate[]
}

/** Options of {@link parseEkCert}. */
export interface ParseEkCertOptions {
  /** Default `warn`, as upstream. */
  malformedCertAction?: MalformedCertAction
}

/** Largest accepted certificate (DER bytes). */
export const MAX_CERT_BYTES = 64 * 1024
/** Most certificates accepted in one PEM bundle (EK + chain). */
export const MAX_BUNDLE_CERTS = 16

const OID_SAN = '2.5.29.17'
const OID_TPM_MANUFACTURER = '2.23.133.2.1'
const OID_TPM_MODEL = '2.23.133.2.2'
const OID_TPM_VERSION = '2.23.133.2.3'

const log = getLogger('tpm')

function malformed(message: string, cause?: unknown): never {
  throw new EkCertError('ERR_EK_CERT_MALFORMED', message, { cause })
}

/**
 * Decodes one DER certificate leniently and records its DER violations. Does not apply
 * `malformed_cert_action`; {@link parseEkCert} does.
 *
 * @throws EkCertError `ERR_EK_CERT_MALFORMED` if it is not a certificate at all
 */
export function parseCertificate(bytes: Uint8Array): ParsedCertificate {
  if (bytes.byteLength === 0) malformed('empty certificate')
  if (bytes.byteLength > MAX_CERT_BYTES)
    malformed(`certificate larger than ${MAX_CERT_BYTES} bytes`)
  const { end, issues } = checkDer(bytes)
  const der = bytes.slice(0, end)
  const parts = derChildren(der)
  const tbs = parts[0]
  const sigBits = parts[2]
  if (parts.length !== 3 || tbs === undefined || sigBits === undefined || sigBits[0] !== 0x03) {
    malformed('certificate is not a SEQUENCE of tbsCertificate, algorithm, signature')
  }
  const sigContent = derContent(sigBits)
  if (sigContent.byteLength < 2 || sigContent[0] !== 0) malformed('bad signature BIT STRING')
  const signature = sigContent.slice(1)
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(der)
    // Touch the lazily decoded fields so errors surface here, not later.
    void x509.notBefore
    void x509.notAfter
    void x509.subjectName
    void x509.issuerName
    void x509.publicKey.rawData
    void x509.extensions
  } catch (cause) {
    malformed('not an X.509 certificate', cause)
  }
  return { der, tbs, x509, signature, derIssues: issues }
}

/** Reads the TCG TPM attributes from the SAN directoryName(s); unknown layouts yield `{}`. */
export function readTpmInfo(cert: ParsedCertificate): TpmInfo {
  const info: TpmInfo = {}
  const ext = cert.x509.extensions.find((e) => e.type === OID_SAN)
  if (ext === undefined) return info
  try {
    const san = AsnConvert.parse(ext.value, SubjectAlternativeName)
    for (const gn of san) {
      for (const rdn of gn.directoryName ?? []) {
        for (const atv of rdn) {
          const value = atv.value.toString()
          if (atv.type === OID_TPM_MANUFACTURER) info.manufacturer = value
          else if (atv.type === OID_TPM_MODEL) info.model = value
          else if (atv.type === OID_TPM_VERSION) info.version = value
        }
      }
    }
  } catch (cause) {
    log.debug('EK certificate SAN not readable', { error: cause })
  }
  return info
}

/** Applies `malformed_cert_action` to a certificate's DER issues. */
function applyAction(cert: ParsedCertificate, what: string, action: MalformedCertAction): void {
  if (cert.derIssues.length === 0 || action === 'ignore') return
  const issuer = cert.x509.issuer
  if (action === 'reject') {
    malformed(`${what} (issued by ${issuer}) is not strict DER: ${cert.derIssues.join('; ')}`)
  }
  log.warn('certificate does not conform to strict ASN.1 DER; accepted as received', {
    certificate: what,
    subject: cert.x509.subject,
    issuer,
    issues: cert.derIssues.join('; '),
  })
}

function decodeBase64Text(text: string, what: string): Uint8Array {
  try {
    return Uint8Array.from(decodeBase64(text, { what }))
  } catch (e) {
    if (e instanceof ProtocolError) malformed(e.message, e)
    throw e
  }
}

const PEM_RE = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*?)-----END CERTIFICATE-----/g

/**
 * Decodes an agent's `ekcert` (DER bytes, base64 DER, or PEM with optional chain) and applies
 * `malformed_cert_action`.
 *
 * @throws EkCertError `ERR_EK_CERT_MISSING` (empty / `"emulator"`), `ERR_EK_CERT_MALFORMED`
 *
 * @example
 * ```ts
 * const ek = parseEkCert(body.ekcert, { malformedCertAction: config.malformed_cert_action })
 * checkEkCertKey(ek, parseTpm2bPublic(ekTpm))
 * ```
 */
export function parseEkCert(
  input: string | Uint8Array,
  options: ParseEkCertOptions = {},
): EkCertificate {
  const action = options.malformedCertAction ?? 'warn'
  let ders: Uint8Array[]
  if (typeof input === 'string') {
    const text = input.trim()
    if (text === '' || text === 'emulator') {
      throw new EkCertError('ERR_EK_CERT_MISSING', 'no EK certificate given')
    }
    if (text.length > MAX_CERT_BYTES * 2 * MAX_BUNDLE_CERTS)
      malformed('EK certificate text too large')
    if (text.startsWith('-----BEGIN')) {
      ders = [...text.matchAll(PEM_RE)].map((m, i) =>
        decodeBase64Text(m[1] ?? '', `PEM block ${i}`),
      )
      if (ders.length === 0) malformed('no CERTIFICATE block in PEM text')
      if (ders.length > MAX_BUNDLE_CERTS) malformed(`more than ${MAX_BUNDLE_CERTS} certificates`)
    } else {
      ders = [decodeBase64Text(text, 'EK certificate')]
    }
  } else {
    if (input.byteLength === 0)
      throw new EkCertError('ERR_EK_CERT_MISSING', 'no EK certificate given')
    ders = [input]
  }
  const [first, ...rest] = ders.map((d) => parseCertificate(d))
  if (first === undefined) malformed('no certificate')
  applyAction(first, 'ekcert', action)
  rest.forEach((c, i) => {
    applyAction(c, `ekcert chain certificate ${i + 1}`, action)
  })
  return { ...first, tpm: readTpmInfo(first), chain: rest }
}

/** id-RSAES-OAEP (RFC 4055), which the TCG EK profile allows for RSA EK certificates. */
const OID_RSAES_OAEP = '1.2.840.113549.1.1.7'
/** rsaEncryption (RFC 8017). */
const OID_RSA_ENCRYPTION = '1.2.840.113549.1.1.1'

/**
 * The certificate's public key as a `node:crypto` KeyObject. An RSA key labelled id-RSAES-OAEP
 * (allowed by the TCG EK Credential Profile, unknown to BoringSSL) is imported as rsaEncryption.
 *
 * @throws EkCertError `ERR_EK_CERT_UNSUPPORTED` if the key cannot be imported
 */
export function certPublicKey(cert: ParsedCertificate): KeyObject {
  let spki = new Uint8Array(cert.x509.publicKey.rawData)
  try {
    const info = AsnConvert.parse(spki, SubjectPublicKeyInfo)
    if (info.algorithm.algorithm === OID_RSAES_OAEP) {
      info.algorithm = new AlgorithmIdentifier({
        algorithm: OID_RSA_ENCRYPTION,
        parameters: new Uint8Array([0x05, 0x00]).buffer,
      })
      spki = new Uint8Array(AsnConvert.serialize(info))
    }
    return createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
  } catch (cause) {
    throw new EkCertError('ERR_EK_CERT_UNSUPPORTED', 'certificate public key not usable', { cause })
  }
}

function stripZeros(b: Uint8Array): Uint8Array {
  let i = 0
  while (i < b.byteLength - 1 && b[i] === 0) i++
  return b.subarray(i)
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

/**
 * Checks the EK certificate certifies `ekPublic` (the `ek_tpm` of the registration): same RSA
 * modulus and exponent, or same ECC curve and point (upstream `_check_key_against_cert`).
 *
 * @throws EkCertError `ERR_EK_CERT_KEY_MISMATCH`
 */
export function checkEkCertKey(cert: ParsedCertificate, ekPublic: TpmPublic): void {
  const jwk = certPublicKey(cert).export({ format: 'jwk' })
  const mismatch = (why: string): never => {
    throw new EkCertError(
      'ERR_EK_CERT_KEY_MISMATCH',
      `EK certificate key differs from ek_tpm: ${why}`,
    )
  }
  if (ekPublic.type === 'rsa') {
    if (jwk.kty !== 'RSA' || jwk.n === undefined || jwk.e === undefined) mismatch('not an RSA key')
    const n = stripZeros(Buffer.from(jwk.n!, 'base64url'))
    const e = Buffer.from(jwk.e!, 'base64url').reduce((acc, b) => acc * 256 + b, 0)
    const want = ekPublic.exponent === 0 ? 65537 : ekPublic.exponent
    if (!sameBytes(n, stripZeros(ekPublic.unique.n)) || e !== want) mismatch('RSA modulus/exponent')
    return
  }
  const info = ECC_CURVE_INFO[ekPublic.curve as keyof typeof ECC_CURVE_INFO]
  if (jwk.kty !== 'EC' || info === undefined || jwk.crv !== info.crv) mismatch('ECC curve')
  const x = stripZeros(Buffer.from(jwk.x ?? '', 'base64url'))
  const y = stripZeros(Buffer.from(jwk.y ?? '', 'base64url'))
  if (
    !sameBytes(x, stripZeros(ekPublic.unique.x)) ||
    !sameBytes(y, stripZeros(ekPublic.unique.y))
  ) {
    mismatch('ECC point')
  }
}
