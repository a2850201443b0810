/**
 * The certificate authority: CA core, `cv_ca` bootstrap, TLS file resolution and the
 * `keylime_ca` command. Entry points for other modules:
 *
 * - {@link ensureCvCa} — `tls_dir = generate` bootstrap at service start.
 * - {@link resolveTlsFiles} + {@link loadTlsMaterial} — TLS files for `Bun.serve` / `fetch`.
 * - {@link CertAuthority} — open a CA directory; `createCert`, `certPackage`, `revoke`.
 * - {@link runCaCli} — the `keylime_ca` command.
 *
 * @module
 */
export { CA_FILES, certFileNames } from './ca-files.ts'
export { type CaSettings, DEFAULT_CA_SETTINGS, resolveCaSettings } from './ca-settings.ts'
export {
  CertAuthority,
  assertCertName,
  type CertPackage,
  type CreateCertOptions,
  type IssuedCert,
} from './cert-authority.ts'
export { ensureCvCa, type EnsureCvCaOptions, type EnsureCvCaResult } from './ensure-cv-ca.ts'
export { CA_ERROR_CODES, CaError, type CaErrorCode } from './errors.ts'
export { loadTlsMaterial, type TlsMaterial } from './load-tls-material.ts'
export {
  parseListOption,
  resolveTlsFiles,
  type ResolveTlsFilesParams,
  type TlsFiles,
} from './resolve-tls-files.ts'
export { decryptPrivateKeyPem, encryptPrivateKeyPem } from './rsa-keys.ts'
export { CA_CLI_USAGE, type CaCliContext, runCaCli } from './run-ca-cli.ts'
export { getSanEntries, parseSanConfig } from './san-entries.ts'
