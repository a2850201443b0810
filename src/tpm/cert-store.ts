/**
 * The TPM vendor trust store (`[tenant] tpm_cert_store`, `[registrar] tpm_cert_store`) and EK
 * certificate chain verification.
 *
 * Upstream (`keylime/tpm_ek_ca.py::cert_loader`, `keylime/cert_utils.py::verify_cert`) loads every
 * `*.pem` file of the directory and accepts an EK certificate directly signed by one of them. We
 * also build a path through intermediates — those sent by the agent (the Rust agent's NV chain, see
 * `parseEkCert`) or present in the store — with at most {@link MAX_CHAIN_DEPTH} links. Every link
 * is checked for subject/issuer name, signature (over the bytes as received, so non-DER vendor
 * certificates still verify), and validity at the injected `now`; intermediates must be CAs.
 * Trust-store certificates are anchors whatever their extensions, as upstream.
 *
 * @module
 */

import { verify as cryptoVerify, constants } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { BasicConstraintsExtension, KeyUsageFlags, KeyUsagesExtension } from '@peculiar/x509'
import { getLogger } from '../log/logger.ts'
import { certPublicKey, type ParsedCertificate, parseCertificate, parseEkCert } from './ek-cert.ts'
import { EkCertError } from './ek-cert-error.ts'

/** Longest path searched: leaf, up to 6 intermediates, anchor. */
export const MAX_CHAIN_DEPTH = 8

/** Trust anchors loaded from a `tpm_cert_store`. */
export interface CertStore {
  /** The certificates, in file-name order. */
  anchors: ParsedCertificate[]
  /** Files skipped because they held no usable certificate, with the reason. */
  skipped: { file: string; reason: string }[]
}

/** Options of {@link verifyEkCertChain}. */
export interface VerifyChainOptions {
  /** The time to check validity at (STYLE rule 9: always injected). */
  now: Date
  /** Untrusted intermediates, e.g. `ekCert.chain`; PEM/base64/DER inputs are parsed. */
  intermediates?: ReadonlyArray<ParsedCertificate | string | Uint8Array>
}

const log = getLogger('tpm')

/** Splits a PEM text into certificates; bad blocks are reported, not thrown. */
function certsFromPem(text: string): ParsedCertificate[] {
  const c = parseEkCert(text, { malformedCertAction: 'ignore' })
  const first = {
    der: c.der,
    tbs: c.tbs,
    x509: c.x509,
    signature: c.signature,
    derIssues: c.derIssues,
  }
  return [first, ...c.chain]
}

/**
 * Builds a store from PEM texts (each may hold several certificates).
 *
 * @throws EkCertError `ERR_EK_CERT_STORE` if no certificate could be read
 */
export function certStoreFromPem(texts: ReadonlyArray<{ file: string; text: string }>): CertStore {
  const store: CertStore = { anchors: [], skipped: [] }
  for (const { file, text } of texts) {
    try {
      store.anchors.push(...certsFromPem(text))
    } catch (e) {
      const reason = e instanceof Error ? e.message : String(e)
      store.skipped.push({ file, reason })
      log.warn('ignoring certificate file in tpm_cert_store', { file, reason })
    }
  }
  if (store.anchors.length === 0) {
    throw new EkCertError('ERR_EK_CERT_STORE', 'tpm_cert_store holds no usable certificate')
  }
  return store
}

/**
 * Loads every `*.pem` file of a `tpm_cert_store` directory (as upstream `cert_loader`), skipping
 * unreadable or non-certificate files with a warning.
 *
 * @throws EkCertError `ERR_EK_CERT_STORE` if the directory is unreadable or has no certificate
 */
export function loadCertStore(dir: string): CertStore {
  let names: string[]
  try {
    names = readdirSync(dir)
      .filter((n) => n.endsWith('.pem'))
      .sort()
  } catch (cause) {
    throw new EkCertError('ERR_EK_CERT_STORE', `cannot read tpm_cert_store ${dir}`, { cause })
  }
  const texts: { file: string; text: string }[] = []
  for (const n of names) {
    try {
      texts.push({ file: n, text: readFileSync(join(dir, n), 'utf8') })
    } catch (e) {
      log.warn('ignoring unreadable file in tpm_cert_store', { file: n, error: e })
    }
  }
  return certStoreFromPem(texts)
}

/** A comparable key of a distinguished name: RDNs in order, attributes sorted, values folded. */
function nameKey(name: { toJSON(): Record<string, string[]>[] }): string {
  return JSON.stringify(
    name.toJSON().map((rdn) =>
      Object.entries(rdn)
        .flatMap(([type, values]) =>
          values.map((v) => `${type}=${v.trim().replace(/\s+/g, ' ').toLowerCase()}`),
        )
        .sort(),
    ),
  )
}

const HASHES: Readonly<Record<string, string>> = {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
}

/**
 * True if `issuer`'s key verifies `cert`'s signature over its tbsCertificate as received.
 * Supports RSASSA-PKCS1-v1_5, RSASSA-PSS and ECDSA with SHA-1/256/384/512.
 *
 * @throws EkCertError `ERR_EK_CERT_UNSUPPORTED` for other signature algorithms
 */
export function verifyCertSignature(cert: ParsedCertificate, issuer: ParsedCertificate): boolean {
  const alg = cert.x509.signatureAlgorithm as {
    name: string
    hash?: { name?: string }
    saltLength?: number
  }
  const hash = HASHES[alg.hash?.name ?? '']
  if (hash === undefined) {
    throw new EkCertError(
      'ERR_EK_CERT_UNSUPPORTED',
      `signature algorithm ${alg.name} not supported`,
    )
  }
  const key = certPublicKey(issuer)
  try {
    if (alg.name === 'RSA-PSS') {
      return cryptoVerify(
        hash,
        cert.tbs,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: alg.saltLength ?? 20 },
        cert.signature,
      )
    }
    if (alg.name === 'RSASSA-PKCS1-v1_5' || alg.name === 'ECDSA') {
      return cryptoVerify(hash, cert.tbs, key, cert.signature)
    }
  } catch {
    // A key of the wrong type for the algorithm, or a garbled signature: not a match.
    return false
  }
  throw new EkCertError('ERR_EK_CERT_UNSUPPORTED', `signature algorithm ${alg.name} not supported`)
}

function validAt(cert: ParsedCertificate, now: Date): boolean {
  const t = now.getTime()
  return t >= cert.x509.notBefore.getTime() && t <= cert.x509.notAfter.getTime()
}

/** An intermediate must be a CA (basicConstraints cA) allowed to sign certificates. */
function isCa(cert: ParsedCertificate): boolean {
  const bc = cert.x509.getExtension(BasicConstraintsExtension)
  if (bc === null || !bc.ca) return false
  const ku = cert.x509.getExtension(KeyUsagesExtension)
  return ku === null || (ku.usages & KeyUsageFlags.keyCertSign) !== 0
}

function sameDer(a: ParsedCertificate, b: ParsedCertificate): boolean {
  return Buffer.from(a.der).equals(b.der)
}

/**
 * Verifies that `cert` chains to a trust anchor of `store` at `options.now`.
 *
 * @returns the path, leaf first, anchor last
 * @throws EkCertError `ERR_EK_CERT_EXPIRED` (the leaf, or every otherwise good path, is outside its
 *   validity), `ERR_EK_CERT_CHAIN` (no path), `ERR_EK_CERT_MALFORMED` (bad intermediate input)
 *
 * @example
 * ```ts
 * const ek = parseEkCert(body.ekcert)
 * verifyEkCertChain(ek, loadCertStore('/var/lib/keylime/tpm_cert_store'), {
 *   now: new Date(),
 *   intermediates: ek.chain,
 * })
 * ```
 */
export function verifyEkCertChain(
  cert: ParsedCertificate,
  store: CertStore,
  options: VerifyChainOptions,
): ParsedCertificate[] {
  const { now } = options
  if (!validAt(cert, now)) {
    throw new EkCertError(
      'ERR_EK_CERT_EXPIRED',
      `EK certificate is valid ${cert.x509.notBefore.toISOString()} to ${cert.x509.notAfter.toISOString()}, not at ${now.toISOString()}`,
    )
  }
  if (store.anchors.some((a) => sameDer(a, cert))) return [cert]

  const pool: ParsedCertificate[] = []
  for (const i of options.intermediates ?? []) {
    if (typeof i === 'string' || i instanceof Uint8Array) {
      const parsed = typeof i === 'string' ? certsFromPem(i) : [parseCertificate(i)]
      pool.push(...parsed)
    } else {
      pool.push(i)
    }
  }
  if (pool.length > 4 * MAX_CHAIN_DEPTH) {
    throw new EkCertError('ERR_EK_CERT_CHAIN', 'too many intermediate certificates')
  }
  let expiredLink = false

  const build = (
    c: ParsedCertificate,
    depth: number,
    used: Set<ParsedCertificate>,
  ): ParsedCertificate[] | undefined => {
    const issuerKey = nameKey(c.x509.issuerName)
    for (const anchor of store.anchors) {
      if (nameKey(anchor.x509.subjectName) !== issuerKey || !verifyCertSignature(c, anchor))
        continue
      if (!validAt(anchor, now)) {
        expiredLink = true
        continue
      }
      return [c, anchor]
    }
    if (depth + 2 >= MAX_CHAIN_DEPTH) return undefined
    for (const inter of pool) {
      if (used.has(inter) || nameKey(inter.x509.subjectName) !== issuerKey) continue
      if (!isCa(inter) || !verifyCertSignature(c, inter)) continue
      if (!validAt(inter, now)) {
        expiredLink = true
        continue
      }
      const rest = build(inter, depth + 1, new Set([...used, inter]))
      if (rest !== undefined) return [c, ...rest]
    }
    return undefined
  }

  const path = build(cert, 0, new Set())
  if (path !== undefined) return path
  if (expiredLink) {
    throw new EkCertError(
      'ERR_EK_CERT_EXPIRED',
      `an issuer of ${cert.x509.issuer} is not valid at ${now.toISOString()}`,
    )
  }
  throw new EkCertError('ERR_EK_CERT_CHAIN', `no trusted issuer found for ${cert.x509.issuer}`)
}
