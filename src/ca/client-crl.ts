/**
 * Certificate revocation lists for the client certificates the admin TLS ports accept (the
 * verifier's port, the registrar's TLS port). `keylime_ca -c revoke` writes `cacrl.der` and
 * `cacrl.pem` beside `cacert.crt`; this module finds, reads and verifies them into a
 * {@link ClientCrlSet}: the PEM list `Bun.serve({ tls: { crl } })` enforces at the handshake,
 * and a checker for code that sees the peer certificate itself.
 *
 * `[verifier]` / `[registrar]` `client_crl` (keylime-ts hardening; not in upstream) names the files;
 * `resolveClientCrlFiles` in `resolve-tls-files.ts` resolves it.
 *
 * Every CRL must be signed by one of the trusted client CAs. An unreadable, unsigned or foreign
 * CRL is an error, never silently skipped: skipping it would let its revoked certificates in.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { X509Certificate, X509Crl } from '@peculiar/x509'
import { fileExists, readBounded } from './ca-files.ts'
import { CaError } from './errors.ts'
import { toPem } from './rsa-keys.ts'

/** Where the CRLs of one listener come from. */
export interface ClientCrlSources {
  /** Trusted client CA certificates (PEM), to match and verify the CRLs. */
  caPems: string[]
  /**
   * One entry per CRL: the candidate files in order of preference (the first that exists is
   * read) and whether a missing file is an error (an explicitly configured CRL) or means
   * "this CA has no CRL" (`default`).
   */
  files: Array<{ candidates: string[]; required: boolean }>
}

/** The verified CRLs of one listener. */
export interface ClientCrlSet {
  /** One PEM (`X509 CRL`) per CA that has a CRL, newest first per CA; empty: no CRL check. */
  readonly pems: readonly string[]
  /** Subjects of trusted CAs without a CRL (their clients fail the TLS check once pems is set). */
  readonly uncovered: readonly string[]
  /** CRLs whose nextUpdate has passed (TLS then refuses every client of that CA). */
  readonly expired: readonly string[]
  /** Digest of the CRL contents: equal digests, same set. */
  readonly digest: string
  /** True when `cert` is listed in the CRL of its issuer. */
  isRevoked(cert: X509Certificate): boolean
}

/** Hex serial without leading zeros, lower case (certificates and CRL entries may pad). */
function normalSerial(hex: string): string {
  return hex.toLowerCase().replace(/^0+(?=.)/, '')
}

/** Parses a CRL file given as PEM (`X509 CRL` or `CRL`) or DER. */
function parseCrl(bytes: Uint8Array, path: string): X509Crl {
  try {
    const text = Buffer.from(bytes).toString('latin1')
    return text.includes('-----BEGIN') ? new X509Crl(text) : new X509Crl(bytes)
  } catch (cause) {
    throw new CaError('ERR_CA_MALFORMED', `${path} is not a certificate revocation list`, { cause })
  }
}

/**
 * Whether Bun's TLS library (BoringSSL) decodes the CRL: keylime-ts before step 1 wrote revoked
 * entries with an empty extension list, which it refuses (and a listener given it would not start).
 */
export function tlsAcceptsCrl(der: Uint8Array): boolean {
  try {
    createSecureContext({ crl: toPem(der, 'X509 CRL') })
    return true
  } catch {
    return false
  }
}

/** Reads, verifies and indexes the CRLs of `sources`. */
export async function loadClientCrls(
  sources: ClientCrlSources,
  now: Date = new Date(),
): Promise<ClientCrlSet> {
  const cas = sources.caPems.map((pem) => new X509Certificate(pem))
  const newest = new Map<X509Certificate, X509Crl>()
  for (const entry of sources.files) {
    let path: string | undefined
    for (const c of entry.candidates) if (await fileExists(c)) path ??= c
    if (path === undefined) {
      if (entry.required) {
        throw new CaError('ERR_CA_FILE_MISSING', `CRL file not found: ${entry.candidates[0]}`)
      }
      continue
    }
    const crl = parseCrl(await readBounded(path, 'check client_crl'), path)
    const ca = cas.find((c) => c.subjectName.toString() === crl.issuerName.toString())
    if (ca === undefined || !(await crl.verify({ publicKey: ca.publicKey }))) {
      throw new CaError(
        'ERR_CA_MALFORMED',
        `${path} is not signed by a trusted client CA (check client_crl and trusted_client_ca)`,
      )
    }
    if (!tlsAcceptsCrl(new Uint8Array(crl.rawData))) {
      throw new CaError(
        'ERR_CA_MALFORMED',
        `${path} cannot be used by TLS (not strict DER); regenerate it, e.g. keylime_ca -c revoke again`,
      )
    }
    const have = newest.get(ca)
    if (have === undefined || crl.thisUpdate > have.thisUpdate) newest.set(ca, crl)
  }
  const revoked = new Map<string, Set<string>>()
  const pems: string[] = []
  const expired: string[] = []
  const hash = createHash('sha256')
  for (const [ca, crl] of newest) {
    pems.push(toPem(new Uint8Array(crl.rawData), 'X509 CRL'))
    hash.update(new Uint8Array(crl.rawData))
    revoked.set(ca.subject, new Set(crl.entries.map((e) => normalSerial(e.serialNumber))))
    if (crl.nextUpdate !== undefined && crl.nextUpdate < now) expired.push(ca.subject)
  }
  const uncovered = newest.size === 0 ? [] : cas.filter((c) => !newest.has(c)).map((c) => c.subject)
  return {
    pems,
    uncovered,
    expired,
    digest: hash.digest('hex'),
    isRevoked: (cert) => revoked.get(cert.issuer)?.has(normalSerial(cert.serialNumber)) === true,
  }
}
