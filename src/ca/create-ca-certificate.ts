/**
 * The self-signed CA certificate, with upstream's extensions (`keylime/ca_impl_openssl.py`
 * `mk_cacert`): BasicConstraints CA (critical), SubjectKeyIdentifier, CRL distribution point
 * `cert_crl_dist`, KeyUsage keyCertSign + cRLSign (critical), AuthorityKeyIdentifier; serial 1;
 * valid from `now` for `cert_ca_lifetime` days; signed with SHA-256.
 *
 * @module
 */
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  CRLDistributionPointsExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
  type X509Certificate,
} from '@peculiar/x509'
import type { CaSettings } from './ca-settings.ts'
import { RSA_SIGNING_ALGORITHM } from './rsa-keys.ts'
import { buildSubjectName } from './subject-name.ts'
import { addDays, serialToHex } from './validity.ts'

/** Inputs of {@link createCaCertificate}. */
export interface CreateCaCertificateParams {
  settings: CaSettings
  /** The CA key pair (RSA, `cert_bits`). */
  keys: CryptoKeyPair
  /** Start of validity (injectable clock). */
  now: Date
  /** Serial number; upstream always uses 1 for the CA. */
  serial?: number
}

/**
 * Creates the CA certificate.
 *
 * @example
 * ```ts
 * const { keys } = await generateRsaKeyPair(settings.cert_bits)
 * const cacert = await createCaCertificate({ settings, keys, now: new Date() })
 * ```
 */
export async function createCaCertificate(p: CreateCaCertificateParams): Promise<X509Certificate> {
  const name = buildSubjectName(p.settings, p.settings.cert_ca_name)
  return X509CertificateGenerator.create({
    serialNumber: serialToHex(p.serial ?? 1),
    subject: name,
    issuer: name,
    notBefore: p.now,
    notAfter: addDays(p.now, p.settings.cert_ca_lifetime),
    publicKey: p.keys.publicKey,
    signingKey: p.keys.privateKey,
    signingAlgorithm: RSA_SIGNING_ALGORITHM,
    extensions: [
      new BasicConstraintsExtension(true, undefined, true),
      await SubjectKeyIdentifierExtension.create(p.keys.publicKey),
      new CRLDistributionPointsExtension([p.settings.cert_crl_dist]),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await AuthorityKeyIdentifierExtension.create(p.keys.publicKey),
    ],
  })
}
