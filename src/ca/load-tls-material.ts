/**
 * Reads the files found by {@link resolveTlsFiles} into the PEM strings `Bun.serve({ tls })` and
 * `fetch(url, { tls })` take. Private keys are decrypted in memory (with `server_key_password` /
 * `client_key_password`) to unencrypted PKCS#8 PEM; nothing decrypted is written to disk.
 *
 * @module
 */
import { X509Certificate } from '@peculiar/x509'
import { getLogger, type Logger } from '../log/logger.ts'
import { readTextBounded } from './ca-files.ts'
import { CaError } from './errors.ts'
import type { TlsFiles } from './resolve-tls-files.ts'
import { decryptPrivateKeyPem } from './rsa-keys.ts'
import { ClientCrlWatcher } from './watch-client-crl.ts'

/** PEM material for one component. */
export interface TlsMaterial {
  /** Unencrypted PKCS#8 PEM. */
  serverKey?: string
  serverCert?: string
  /** Unencrypted PKCS#8 PEM. */
  clientKey?: string
  clientCert?: string
  /** Trusted CA certificates (PEM, one entry per file); empty with `verifyPeer: false`. */
  ca: string[]
  /** False when the trusted CA option is `all` (upstream: peer verification disabled). */
  verifyPeer: boolean
  /** Client CRLs of a server, kept current (absent: no CRL applies). */
  crl?: ClientCrlWatcher
}

/** Which parts to load (default: whatever is set in `files`). */
export interface LoadTlsMaterialOptions {
  server?: boolean
  client?: boolean
  /** Logger for the client-CRL watcher of a server (default: the `ca` logger). */
  log?: Logger
}

/** True when `text` starts a parseable PEM certificate (the first one of a bundle is checked). */
function isCertPem(text: string): boolean {
  const first = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/.exec(text)
  if (!first) return false
  try {
    new X509Certificate(first[0])
    return true
  } catch {
    return false
  }
}

/**
 * Loads and checks the TLS files.
 *
 * @throws {CaError} `ERR_CA_FILE_MISSING` naming the file and the option to check (a configured
 *   client CRL too);
 *   `ERR_CA_KEY_PASSWORD` when a key is encrypted and its password is missing or wrong;
 *   `ERR_CA_MALFORMED` when a certificate file holds no certificate, or a client CRL is malformed
 *   or not signed by a trusted client CA.
 */
export async function loadTlsMaterial(
  files: TlsFiles,
  opts: LoadTlsMaterialOptions = {},
): Promise<TlsMaterial> {
  const where = files.component ? `[${files.component}] ` : ''
  const readCert = async (path: string, option: string) => {
    const text = await readTextBounded(path, `check ${where}${option} and tls_dir`)
    if (!isCertPem(text))
      throw new CaError(
        'ERR_CA_MALFORMED',
        `no PEM certificate in ${path} (check ${where}${option})`,
      )
    return text
  }
  const readKey = async (path: string, option: string, password: string | undefined) => {
    const text = await readTextBounded(path, `check ${where}${option} and tls_dir`)
    return decryptPrivateKeyPem(text, password, `${path} (${where}${option}, ${option}_password)`)
  }
  const out: TlsMaterial = { ca: [], verifyPeer: files.trustedCa !== 'all' }
  const wantServer =
    opts.server ?? (files.serverCert !== undefined || files.serverKey !== undefined)
  const wantClient =
    opts.client ?? (files.clientCert !== undefined || files.clientKey !== undefined)
  if (wantServer) {
    if (!files.serverCert || !files.serverKey) {
      throw new CaError('ERR_CA_FILE_MISSING', `${where}server_cert and server_key must be set`)
    }
    out.serverCert = await readCert(files.serverCert, 'server_cert')
    out.serverKey = await readKey(files.serverKey, 'server_key', files.serverKeyPassword)
  }
  if (wantClient) {
    if (!files.clientCert || !files.clientKey) {
      throw new CaError('ERR_CA_FILE_MISSING', `${where}client_cert and client_key must be set`)
    }
    out.clientCert = await readCert(files.clientCert, 'client_cert')
    out.clientKey = await readKey(files.clientKey, 'client_key', files.clientKeyPassword)
  }
  if (files.trustedCa !== 'all') {
    for (const path of files.trustedCa) out.ca.push(await readCert(path, files.trustedCaOption))
  }
  if (wantServer && out.verifyPeer && files.clientCrl.length > 0) {
    out.crl = await ClientCrlWatcher.start({
      sources: { caPems: out.ca, files: files.clientCrl },
      log: opts.log ?? getLogger('ca'),
      name: files.component ?? 'server',
    })
  }
  return out
}
