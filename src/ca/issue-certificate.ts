/**
 * Leaf certificates signed by the CA (`keylime/ca_impl_openssl.py` `mk_signed_cert`): subject from
 * `ca.conf` with CN = the name, issuer = the CA's subject, SubjectAlternativeName (falls back to
 * `DNS:<name>` when no SAN is given, as upstream), CRL distribution point, AuthorityKeyIdentifier.
 *
 * keylime-ts adds SubjectKeyIdentifier, BasicConstraints CA:FALSE and, for the cv_ca server and
 * client certificates, ExtendedKeyUsage serverAuth / clientAuth. Certificates created with
 * `keylime_ca -c create` (`kind: 'generic'`) carry no EKU, as upstream, because they are used for
 * payloads and revocation signing.
 *
 * @module
 */
import { isIP } from 'node:net'
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  type Extension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  type JsonGeneralName,
  type X509Certificate,
} from '@peculiar/x509'
import type { CaSettings } from './ca-settings.ts'
import { CaError } from './errors.ts'
import { RSA_SIGNING_ALGORITHM } from './rsa-keys.ts'
import { buildSubjectName } from './subject-name.ts'
import { addDays, serialToHex } from './validity.ts'

/** What a leaf certificate is for. */
export type CertKind = 'server' | 'client' | 'generic'

/** Inputs of {@link issueCertificate}. */
export interface IssueCertificateParams {
  settings: CaSettings
  /** The CA certificate (its subject becomes the issuer, its key the AKI). */
  caCert: X509Certificate
  /** The CA signing key. */
  caKey: CryptoKey
  /** The subject's public key. */
  publicKey: CryptoKey
  /** Common name. */
  name: string
  serial: number
  kind: CertKind
  sanDns?: string[]
  sanIps?: string[]
  /** Start of validity (injectable clock); valid for `cert_lifetime` days. */
  now: Date
}

/** Most SAN entries accepted in one certificate. */
const MAX_SANS = 256

function sanEntries(name: string, dns: string[], ips: string[]): JsonGeneralName[] {
  const out: JsonGeneralName[] = []
  for (const d of dns) {
    if (d.length === 0 || d.length > 253 || !/^[\x21-\x7e]+$/.test(d)) {
      throw new CaError(
        'ERR_CA_INVALID_INPUT',
        `invalid DNS subject alternative name ${JSON.stringify(d.slice(0, 64))}`,
      )
    }
    out.push({ type: 'dns', value: d })
  }
  for (const ip of ips) {
    if (isIP(ip) === 0)
      throw new CaError(
        'ERR_CA_INVALID_INPUT',
        `invalid IP subject alternative name ${JSON.stringify(ip.slice(0, 64))}`,
      )
    out.push({ type: 'ip', value: ip })
  }
  if (out.length === 0) out.push({ type: 'dns', value: name })
  if (out.length > MAX_SANS)
    throw new CaError(
      'ERR_CA_INVALID_INPUT',
      `too many subject alternative names (max ${MAX_SANS})`,
    )
  return out
}

/**
 * Issues a certificate for `publicKey` signed by the CA.
 *
 * @throws {CaError} `ERR_CA_INVALID_INPUT` on a bad name, SAN or serial.
 */
export async function issueCertificate(p: IssueCertificateParams): Promise<X509Certificate> {
  const extensions: Extension[] = [
    new BasicConstraintsExtension(false, undefined, false),
    new SubjectAlternativeNameExtension(sanEntries(p.name, p.sanDns ?? [], p.sanIps ?? []), false),
    new CRLDistributionPointsExtension([p.settings.cert_crl_dist]),
    await AuthorityKeyIdentifierExtension.create(p.caCert.publicKey),
    await SubjectKeyIdentifierExtension.create(p.publicKey),
  ]
  if (p.kind === 'server')
    extensions.push(new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false))
  if (p.kind === 'client')
    extensions.push(new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth], false))
  return X509CertificateGenerator.create({
    serialNumber: serialToHex(p.serial),
    subject: buildSubjectName(p.settings, p.name),
    issuer: p.caCert.subjectName,
    notBefore: p.now,
    notAfter: addDays(p.now, p.settings.cert_lifetime),
    publicKey: p.publicKey,
    signingKey: p.caKey,
    signingAlgorithm: RSA_SIGNING_ALGORITHM,
    extensions,
  })
}
