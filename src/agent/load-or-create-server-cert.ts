/**
 * The agent's mTLS server identity (wire-formats §1.6, rust-keylime `crypto/x509.rs`): an ECC
 * P-256 key (`server_key`, default `server-private.pem`, 0600, optionally encrypted with
 * `server_key_password`) and a self-signed X.509v3 certificate (`server_cert`, default
 * `server-cert.crt`): CN = agent UUID, SAN DNS `localhost`, `localhost.domain`, IP `127.0.0.1`,
 * `::1` and `contact_ip`, valid for 365 days. Created once and kept; the verifier pins it.
 * Everything is node:crypto plus a small DER writer (create-self-signed-cert.ts): no X.509
 * library is loaded, so the first start is as lean as a restart.
 *
 * @module
 */

import { createPrivateKey, generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { createSelfSignedCert } from './create-self-signed-cert.ts'
import { AgentError } from './errors.ts'

/** Key and certificate PEM for Bun.serve. */
export interface ServerIdentity {
  /** Certificate PEM (what the agent registers as `mtls_cert`). */
  certPem: string
  /** Private key PEM (decrypted, in memory only). */
  keyPem: string
}

/** Loads the server key and certificate, creating them if missing. */
export async function loadOrCreateServerCert(opts: {
  keyPath: string
  certPath: string
  password: string
  uuid: string
  contactIp: string
  now?: Date
}): Promise<ServerIdentity> {
  const passphrase = opts.password === '' ? undefined : opts.password
  if (existsSync(opts.keyPath) && existsSync(opts.certPath)) {
    try {
      const key = createPrivateKey({ key: readFileSync(opts.keyPath), passphrase })
      const certPem = readFileSync(opts.certPath, 'utf8')
      const cert = new X509Certificate(certPem)
      if (!cert.checkPrivateKey(key)) throw new Error('key does not match the certificate')
      chmodSync(opts.keyPath, 0o600)
      return { certPem, keyPem: String(key.export({ format: 'pem', type: 'pkcs8' })) }
    } catch (cause) {
      throw new AgentError(
        'ERR_AGENT_CONFIG',
        `option server_key/server_cert: ${opts.keyPath} and ${opts.certPath} do not form a key pair`,
        { cause },
      )
    }
  }
  const now = opts.now ?? new Date()
  const { publicKey, privateKey: key } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const ips = [...new Set(['127.0.0.1', '::1', ...(isIP(opts.contactIp) ? [opts.contactIp] : [])])]
  const certPem = createSelfSignedCert({
    commonName: opts.uuid,
    spkiDer: publicKey.export({ format: 'der', type: 'spki' }),
    privateKey: key,
    serial: randomBytes(8),
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + 365 * 86_400_000),
    dnsNames: ['localhost', 'localhost.domain'],
    ipAddresses: ips,
  })
  const keyPem = String(key.export({ format: 'pem', type: 'pkcs8' }))
  const stored =
    passphrase === undefined
      ? keyPem
      : String(key.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase }))
  writeFileSync(opts.keyPath, stored, { mode: 0o600 })
  chmodSync(opts.keyPath, 0o600)
  writeFileSync(opts.certPath, certPem, { mode: 0o644 })
  return { certPem, keyPem }
}
