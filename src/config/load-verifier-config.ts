/**
 * `verifier.conf` loader (`[verifier]` and `[revocations]`).
 * @module
 */

import { loadComponentConfig } from './load-component-config.ts'
import type { ConfigLoadOptions } from './read-config-files.ts'
import { VERIFIER_SCHEMA, type VerifierConfig } from './schemas.ts'

/**
 * Loads the verifier configuration: `KEYLIME_VERIFIER_CONFIG`, or `verifier.conf` plus its
 * `verifier.conf.d` snippets, then `KEYLIME_VERIFIER_*` environment overrides, over upstream
 * defaults.
 *
 * @example
 * ```ts
 * const cfg = loadVerifierConfig()
 * cfg.verifier.quote_interval // 2
 * cfg.revocations.enabled_revocation_notifications // ['agent']
 * ```
 * @throws {@link ConfigError} on an unreadable/malformed file or an invalid value.
 */
export function loadVerifierConfig(options: ConfigLoadOptions = {}): VerifierConfig {
  return loadComponentConfig('verifier', VERIFIER_SCHEMA, options)
}
