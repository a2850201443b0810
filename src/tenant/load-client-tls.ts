/**
 * The tenant's client TLS material from `[tenant]` of tenant.conf (`tls_dir`, `client_cert`,
 * `client_key`, `client_key_password`, `trusted_server_ca`; by default the cv_ca's
 * `client-cert.crt`, `client-private.pem` and `cacert.crt` under `KEYLIME_DIR`): what the tenant
 * and `keylime health` present to the verifier and registrar.
 *
 * Certificates are checked with `node:crypto` only, so loading stays fast (no X.509 library).
 *
 * @module
 */
import { X509Certificate } from 'node:crypto'
import { readTextBounded } from '../ca/ca-files.ts'
import { resolveTlsFiles } from '../ca/resolve-tls-files.ts'
import { decryptPrivateKeyPem } from '../ca/rsa-keys.ts'
import type { TenantConfig } from '../config/schemas.ts'
import { TenantError } from './errors.ts'

/** Client TLS material: PEM strings, the key decrypted. */
export interface ClientTls {
  cert: string
  key: string
  /** CAs trusted for server certificates (empty with `trusted_server_ca = all`). */
  ca: string[]
  /** False with `trusted_server_ca = all`: servers are not verified (upstream semantics). */
  verifyPeer: boolean
}

/**
 * Reads the client certificate, key and trusted server CAs named by `cfg`.
 *
 * @throws {TenantError} `ERR_TENANT_CONFIG` when an option is unset or a certificate is not PEM;
 *   {@link CaError} `ERR_CA_FILE_MISSING` naming a missing file (both exit 8).
 */
export async function loadClientTls(
  cfg: TenantConfig['tenant'],
  keylimeDir: string,
  env: NodeJS.ProcessEnv,
): Promise<ClientTls> {
  const files = resolveTlsFiles({
    keylimeDir,
    tlsDir: cfg.tls_dir,
    component: 'tenant',
    clientKey: cfg.client_key,
    clientKeyPassword: cfg.client_key_password,
    clientCert: cfg.client_cert,
    trustedCa: cfg.trusted_server_ca as unknown as string | string[],
    trustedCaOption: 'trusted_server_ca',
  })
  if (!files.clientCert || !files.clientKey) {
    throw new TenantError('ERR_TENANT_CONFIG', '[tenant] client_cert and client_key must be set', {
      hint: 'set them in tenant.conf (default: cv_ca/client-cert.crt and client-private.pem)',
    })
  }
  // The usual cause is a control plane started with another KEYLIME_DIR: say which one we used.
  const where = env.KEYLIME_DIR ? 'KEYLIME_DIR is' : 'KEYLIME_DIR is not set, so'
  const hint = (option: string) =>
    `${where} ${keylimeDir}; the verifier creates its cv_ca there at first start: run the command with the control plane's KEYLIME_DIR, or set [tenant] ${option} / tls_dir in tenant.conf`
  const readCert = async (path: string, option: string): Promise<string> => {
    const text = await readTextBounded(path, hint(option))
    try {
      new X509Certificate(text)
    } catch (cause) {
      throw new TenantError('ERR_TENANT_CONFIG', `no PEM certificate in ${path}`, {
        hint: hint(option),
        cause,
      })
    }
    return text
  }
  const cert = await readCert(files.clientCert, 'client_cert')
  const key = decryptPrivateKeyPem(
    await readTextBounded(files.clientKey, hint('client_key')),
    files.clientKeyPassword,
    `${files.clientKey} ([tenant] client_key, client_key_password)`,
  )
  const ca: string[] = []
  if (files.trustedCa !== 'all') {
    for (const p of files.trustedCa) ca.push(await readCert(p, 'trusted_server_ca'))
  }
  return { cert, key, ca, verifyPeer: files.trustedCa !== 'all' }
}
