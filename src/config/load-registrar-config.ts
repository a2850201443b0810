/**
 * `registrar.conf` loader (`[registrar]`).
 * @module
 */

import { loadComponentConfig } from './load-component-config.ts'
import type { ConfigLoadOptions } from './read-config-files.ts'
import { REGISTRAR_SCHEMA, type RegistrarConfig } from './schemas.ts'

/**
 * Loads the registrar configuration: `KEYLIME_REGISTRAR_CONFIG`, or `registrar.conf` plus its
 * `registrar.conf.d` snippets, then `KEYLIME_REGISTRAR_*` environment overrides, over upstream defaults.
 *
 * @example
 * ```ts
 * const cfg = loadRegistrarConfig()
 * cfg.registrar.tls_port // 8891
 * ```
 * @throws {@link ConfigError} on an unreadable/malformed file or an invalid value.
 */
export function loadRegistrarConfig(options: ConfigLoadOptions = {}): RegistrarConfig {
  return loadComponentConfig('registrar', REGISTRAR_SCHEMA, options)
}
