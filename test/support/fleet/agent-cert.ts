/**
 * The agent's mTLS server identity, as rust-keylime creates it (wire-formats §1.6): an ECC P-256
 * key and a self-signed X.509v3 certificate, CN = agent UUID (or a fleet name when shared), SAN
 * DNS `localhost`, `localhost.domain` and IPs `127.0.0.1`, `::1` plus the contact addresses,
 * valid from now for 365 days. The verifier pins this certificate (from the registrar's
 * `mtls_cert`) and does not check host names, so one certificate can serve a whole fleet.
 *
 * @module
 */
import 'reflect-metadata'
import * as x509 from '@peculiar/x509'

/** A PEM certificate and its PKCS#8 PEM private key. */
export interface AgentCert {
  /** Self-signed certificate (PEM). */
  certPem: string
  /** ECC P-256 private key (PKCS#8 PEM). */
  keyPem: string
}

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64')
  return `-----BEGIN ${label}-----\n${b64.replace(/.{1,64}/g, '$&\n')}-----END ${label}-----\n`
}

/** Creates an agent server certificate for `commonName` with the extra SAN `ips`. */
export async function createAgentCert(
  commonName: string,
  ips: readonly string[] = [],
  now: Date = new Date(),
): Promise<AgentCert> {
  const keys = (await crypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair
  const sanIps = [...new Set(['127.0.0.1', '::1', ...ips])]
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: Buffer.from(crypto.getRandomValues(new Uint8Array(8)))
      .toString('hex')
      .replace(/^[89a-f]/, '1'),
    name: `CN=${commonName}`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 365 * 86_400_000),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: 'localhost' },
        { type: 'dns', value: 'localhost.domain' },
        ...sanIps.map((value) => ({ type: 'ip' as const, value })),
      ]),
    ],
  })
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey)
  return { certPem: cert.toString('pem'), keyPem: toPem(pkcs8, 'PRIVATE KEY') }
}
