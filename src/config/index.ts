/**
 * Upstream-compatible Keylime configuration: `verifier.conf`, `registrar.conf`, `tenant.conf`,
 * `ca.conf` and `logging.conf`, read like `keylime/config.py` (RawConfigParser INI, snippets in
 * `<c>.conf.d`, `KEYLIME_<C>_CONFIG`, `KEYLIME_<C>_[<SECTION>_]<OPTION>` overrides) into typed
 * objects whose properties are the upstream option names.
 *
 * @example
 * ```ts
 * import { loadVerifierConfig, getKeylimeDir } from './index.ts'
 * const cfg = loadVerifierConfig()
 * console.log(cfg.verifier.port, cfg.verifier.database_pool_sz_ovfl, getKeylimeDir())
 * ```
 *
 * @module
 */

export type { SeverityRule, TrustedCa } from './decode-value.ts'
export {
  CONFIG_ERROR_CODES,
  ConfigError,
  type ConfigErrorCode,
  type ConfigErrorLocation,
} from './errors.ts'
export { DEFAULT_KEYLIME_DIR, getKeylimeDir, isTestMode } from './get-keylime-dir.ts'
export { loadCaConfig } from './load-ca-config.ts'
export { configEnvVar } from './load-component-config.ts'
export { type LoggingConfig, loadLoggingConfig } from './load-logging-config.ts'
export { loadRegistrarConfig } from './load-registrar-config.ts'
export { loadTenantConfig, resolveTpmCertStore } from './load-tenant-config.ts'
export { loadVerifierConfig } from './load-verifier-config.ts'
export { parseIni } from './parse-ini.ts'
export type { ConfigComponent, ConfigLoadOptions, ConfigWarn } from './read-config-files.ts'
export type { CaConfig, RegistrarConfig, TenantConfig, VerifierConfig } from './schemas.ts'
