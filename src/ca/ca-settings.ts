/**
 * The `[ca]` section of `ca.conf`, with upstream Keylime's option names and defaults
 * (`keylime-api.md` §3.5; upstream `templates/2.x/ca.j2`).
 *
 * The config loader (`src/config`) produces exactly {@link CaSettings} under `cfg.ca`; this module
 * only supplies the defaults and checks the values the CA depends on.
 *
 * @module
 */
import { defaultComponentConfig } from '../config/load-component-config.ts'
import { CA_SCHEMA } from '../config/schemas.ts'
import { CaError } from './errors.ts'

/** The `[ca]` options of `ca.conf`, named as upstream names them. */
export interface CaSettings {
  /** Password of `private.yml`; `default` makes the CLI prompt (services use the literal). */
  password: string
  /** Subject C. */
  cert_country: string
  /** Subject CN of the CA certificate. */
  cert_ca_name: string
  /** Subject ST. */
  cert_state: string
  /** Subject L. */
  cert_locality: string
  /** Subject O. */
  cert_organization: string
  /** Subject OU. */
  cert_org_unit: string
  /** Validity of the CA certificate in days. */
  cert_ca_lifetime: number
  /** Validity of issued certificates in days. */
  cert_lifetime: number
  /** RSA modulus size of every generated key. */
  cert_bits: number
  /** URI written into the CRL distribution point extension. */
  cert_crl_dist: string
}

/** Upstream's defaults for every `[ca]` option (from the `ca.conf` schema of `src/config`). */
export const DEFAULT_CA_SETTINGS: Readonly<CaSettings> = (() => {
  const { version: _version, ...settings } = defaultComponentConfig(CA_SCHEMA).ca
  return Object.freeze(settings)
})()

/** Largest lifetime accepted, in days (100 years; keeps dates inside GeneralizedTime). */
const MAX_LIFETIME_DAYS = 36500

/**
 * Fills missing options with upstream defaults and validates the ones the CA uses.
 *
 * @throws {CaError} `ERR_CA_INVALID_INPUT` when a lifetime or the key size is out of range.
 */
export function resolveCaSettings(partial: Partial<CaSettings> = {}): CaSettings {
  const s: CaSettings = { ...DEFAULT_CA_SETTINGS }
  for (const [key, value] of Object.entries(partial)) {
    if (value !== undefined && key in s) (s as unknown as Record<string, unknown>)[key] = value
  }
  s.cert_ca_lifetime = Number(s.cert_ca_lifetime)
  s.cert_lifetime = Number(s.cert_lifetime)
  s.cert_bits = Number(s.cert_bits)
  for (const opt of ['cert_ca_lifetime', 'cert_lifetime'] as const) {
    const v = s[opt]
    if (!Number.isInteger(v) || v < 1 || v > MAX_LIFETIME_DAYS) {
      throw new CaError(
        'ERR_CA_INVALID_INPUT',
        `[ca] ${opt} must be a whole number of days (1..${MAX_LIFETIME_DAYS})`,
      )
    }
  }
  if (
    !Number.isInteger(s.cert_bits) ||
    s.cert_bits < 2048 ||
    s.cert_bits > 16384 ||
    s.cert_bits % 8 !== 0
  ) {
    throw new CaError(
      'ERR_CA_INVALID_INPUT',
      '[ca] cert_bits must be a multiple of 8 between 2048 and 16384',
    )
  }
  if (s.cert_country.length !== 2) {
    throw new CaError('ERR_CA_INVALID_INPUT', '[ca] cert_country must be a two-letter country code')
  }
  return s
}
