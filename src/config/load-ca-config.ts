/**
 * `ca.conf` loader (`[ca]`).
 * @module
 */

import { loadComponentConfig } from './load-component-config.ts'
import type { ConfigLoadOptions } from './read-config-files.ts'
import { CA_SCHEMA, type CaConfig } from './schemas.ts'

/**
 * Loads the ca configuration: `KEYLIME_CA_CONFIG`, or `ca.conf` plus its
 * `ca.conf.d` snippets, then `KEYLIME_CA_*` environment overrides, over upstream defaults.
 *
 * @example
 * ```ts
 * const cfg = loadCaConfig()
 * cfg.ca.cert_bits // 2048
 * ```
 * @throws {@link ConfigError} on an unreadable/malformed file or an invalid value.
 */
export function loadCaConfig(options: ConfigLoadOptions = {}): CaConfig {
  return loadComponentConfig('ca', CA_SCHEMA, options)
}
