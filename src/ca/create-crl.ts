/**
 * The CA's certificate revocation list (`keylime/ca_impl_openssl.py` `gencrl`): an X.509 v2 CRL
 * signed with SHA-256 by the CA key, issuer = the CA subject, one entry per revoked serial.
 *
 * Fixes against upstream: upstream sets nextUpdate = thisUpdate (stale at once, so OpenSSL's
 * `-crl_check` reports "CRL has expired") and stamps every entry with the current time. keylime-ts
 * sets nextUpdate = thisUpdate + `validityDays` and keeps each serial's revocation date. It also
 * adds AuthorityKeyIdentifier and a CRL number (RFC 5280 §5.2.1, §5.2.3), and an invalidityDate
 * to each entry (§5.3.2) so that strict DER parsers accept it.
 *
 * @module
 */
import {
  AuthorityKeyIdentifierExtension,
  Extension,
  X509CrlGenerator,
  type X509Certificate,
  type X509Crl,
} from '@peculiar/x509'
import { RSA_SIGNING_ALGORITHM } from './rsa-keys.ts'
import { addDays, serialToHex } from './validity.ts'

/** One revoked certificate. */
export interface RevokedEntry {
  /** Decimal serial, as stored in `private.yml` `revoked_keys`. */
  serial: string
  /** When it was revoked. */
  date: Date
}

/** Inputs of {@link createCrl}. */
export interface CreateCrlParams {
  caCert: X509Certificate
  caKey: CryptoKey
  revoked: RevokedEntry[]
  /** thisUpdate (injectable clock). */
  now: Date
  /** Days until nextUpdate. */
  validityDays: number
}

/** OID of the cRLNumber extension. */
const ID_CE_CRL_NUMBER = '2.5.29.20'

/** DER INTEGER of a non-negative safe integer. */
function derInteger(n: number): Uint8Array {
  let hex = n.toString(16)
  if (hex.length % 2) hex = `0${hex}`
  if (Number.parseInt(hex.slice(0, 2), 16) >= 0x80) hex = `00${hex}`
  const body = Buffer.from(hex, 'hex')
  return new Uint8Array([0x02, body.length, ...body])
}

/**
 * Creates and signs the CRL. The CRL number is thisUpdate in seconds, so it grows with every
 * regeneration without extra state.
 */
export async function createCrl(p: CreateCrlParams): Promise<X509Crl> {
  return X509CrlGenerator.create({
    issuer: p.caCert.subjectName,
    thisUpdate: p.now,
    nextUpdate: addDays(p.now, p.validityDays),
    signingAlgorithm: RSA_SIGNING_ALGORITHM,
    signingKey: p.caKey,
    extensions: [
      await AuthorityKeyIdentifierExtension.create(p.caCert.publicKey),
      new Extension(
        ID_CE_CRL_NUMBER,
        false,
        derInteger(Math.max(0, Math.floor(p.now.getTime() / 1000))),
      ),
    ],
    // invalidityDate keeps each entry's extensions non-empty: @peculiar/x509 otherwise writes an
    // empty SEQUENCE, which is not DER and which BoringSSL (Bun's TLS) refuses to decode.
    entries: p.revoked.map((r) => ({
      serialNumber: serialToHex(r.serial),
      revocationDate: r.date,
      invalidity: r.date,
    })),
  })
}
