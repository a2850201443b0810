/**
 * Describes EFI signature entries for operators: the subject, issuer and serial of X.509 entries in
 * PK/KEK/db/dbx (decoded with @peculiar/x509), or the kind of hash entry.
 *
 * @module
 */

import 'reflect-metadata'
import { X509Certificate } from '@peculiar/x509'
import { EFI_GUID } from './event-types.ts'
import type { EfiSignature } from './signature-list.ts'

/** What {@link describeSignature} reports about one signature entry. */
export interface SignatureDescription {
  /** `x509`, `sha256` or `other`. */
  kind: 'x509' | 'sha256' | 'other'
  /** Certificate subject (X.509 only). */
  subject?: string
  /** Certificate issuer (X.509 only). */
  issuer?: string
  /** Certificate serial number, hex (X.509 only). */
  serialNumber?: string
  /** Why an X.509 entry could not be decoded. */
  error?: string
}

/** Describes one signature entry of a list of type `signatureType` (decodes X.509 certificates). */
export function describeSignature(signatureType: string, sig: EfiSignature): SignatureDescription {
  if (signatureType === EFI_GUID.CERT_SHA256) return { kind: 'sha256' }
  if (signatureType !== EFI_GUID.CERT_X509) return { kind: 'other' }
  try {
    const cert = new X509Certificate(Buffer.from(sig.SignatureData, 'hex'))
    return {
      kind: 'x509',
      subject: cert.subject,
      issuer: cert.issuer,
      serialNumber: cert.serialNumber,
    }
  } catch (e) {
    return { kind: 'x509', error: e instanceof Error ? e.message.slice(0, 200) : 'undecodable' }
  }
}
