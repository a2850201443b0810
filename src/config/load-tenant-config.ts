/**
 * `tenant.conf` loader (`[tenant]`).
 * @module
 */

import { loadComponentConfig } from './load-component-config.ts'
import type { ConfigLoadOptions } from './read-config-files.ts'
import { TENANT_SCHEMA, type TenantConfig } from './schemas.ts'

/**
 * Loads the tenant configuration: `KEYLIME_TENANT_CONFIG`, or `tenant.conf` plus its
 * `tenant.conf.d` snippets, then `KEYLIME_TENANT_*` environment overrides, over upstream defaults.
 *
 * @example
 * ```ts
 * const cfg = loadTenantConfig()
 * cfg.tenant.accept_tpm_hash_algs // ['sha512', 'sha384', 'sha256']
 * ```
 * @throws {@link ConfigError} on an unreadable/malformed file or an invalid value.
 */
export function loadTenantConfig(options: ConfigLoadOptions = {}): TenantConfig {
  return loadComponentConfig('tenant', TENANT_SCHEMA, options)
}
