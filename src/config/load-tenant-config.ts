/**
 * `tenant.conf` loader (`[tenant]`).
 * @module
 */

import { join } from 'node:path'
import { DEFAULT_KEYLIME_DIR, getKeylimeDir } from './get-keylime-dir.ts'
import { loadComponentConfig } from './load-component-config.ts'
import type { ConfigLoadOptions } from './read-config-files.ts'
import { TENANT_SCHEMA, type TenantConfig } from './schemas.ts'

/** Upstream's default `[tenant] tpm_cert_store`: under the default work directory. */
const DEFAULT_TPM_CERT_STORE = join(DEFAULT_KEYLIME_DIR, 'tpm_cert_store')

/**
 * Where `tpm_cert_store` is: the upstream default `/var/lib/keylime/tpm_cert_store` follows
 * `KEYLIME_DIR` (`$KEYLIME_DIR/tpm_cert_store`), as the rest of the work directory does; any
 * other value is used as written.
 *
 * @example
 * ```ts
 * resolveTpmCertStore('/var/lib/keylime/tpm_cert_store', { KEYLIME_DIR: '/srv/kl' }) // '/srv/kl/tpm_cert_store'
 * resolveTpmCertStore('/etc/keylime/ek-cas', { KEYLIME_DIR: '/srv/kl' })             // '/etc/keylime/ek-cas'
 * ```
 */
export function resolveTpmCertStore(
  value: string,
  env: Record<string, string | undefined> = process.env,
): string {
  return value === DEFAULT_TPM_CERT_STORE ? join(getKeylimeDir(env), 'tpm_cert_store') : value
}

/**
 * Loads the tenant configuration: `KEYLIME_TENANT_CONFIG`, or `tenant.conf` plus its
 * `tenant.conf.d` snippets, then `KEYLIME_TENANT_*` environment overrides, over upstream defaults.
 * `tpm_cert_store` is resolved with {@link resolveTpmCertStore}.
 *
 * @example
 * ```ts
 * const cfg = loadTenantConfig()
 * cfg.tenant.accept_tpm_hash_algs // ['sha512', 'sha384', 'sha256']
 * ```
 * @throws {@link ConfigError} on an unreadable/malformed file or an invalid value.
 */
export function loadTenantConfig(options: ConfigLoadOptions = {}): TenantConfig {
  const cfg = loadComponentConfig('tenant', TENANT_SCHEMA, options)
  return {
    ...cfg,
    tenant: {
      ...cfg.tenant,
      tpm_cert_store: resolveTpmCertStore(cfg.tenant.tpm_cert_store, options.env),
    },
  }
}
