/**
 * Errors raised while reading Keylime configuration (`verifier.conf`, `registrar.conf`, …).
 *
 * A {@link ConfigError} always names where the bad input came from — the file and line, the
 * section and option, or the environment variable — so an operator can fix it without reading
 * our source. Values themselves are never echoed: a config option may hold a password.
 *
 * @module
 */

import { KeylimeError } from '../errors.ts'

/** Stable codes of {@link ConfigError}. */
export const CONFIG_ERROR_CODES = {
  /** A file is not valid INI in the RawConfigParser sense (syntax, duplicates, encoding, size). */
  syntax: 'ERR_CONFIG_SYNTAX',
  /** A value (from a file or the environment) does not decode as its option's type. */
  invalid: 'ERR_CONFIG_INVALID',
  /** A file exists but could not be read (permissions, I/O). */
  read: 'ERR_CONFIG_READ',
} as const

/** One of the {@link CONFIG_ERROR_CODES}. */
export type ConfigErrorCode = (typeof CONFIG_ERROR_CODES)[keyof typeof CONFIG_ERROR_CODES]

/** Where a bad configuration input came from; every field is optional. */
export interface ConfigErrorLocation {
  /** The file path, when the input came from a file. */
  file?: string
  /** 1-based line number in {@link file}. */
  line?: number
  /** The INI section (`verifier`, `revocations`, …). */
  section?: string
  /** The option name, lower-cased as RawConfigParser stores it. */
  option?: string
  /** The environment variable, when the input came from the environment. */
  envVar?: string
}

/**
 * A configuration file or value is unusable. Status 500: it is an operator error, never a
 * client's.
 *
 * @example
 * ```ts
 * throw new ConfigError('ERR_CONFIG_INVALID', 'not an integer', { file, line: 12, section: 'verifier', option: 'port' })
 * // message: "/etc/keylime/verifier.conf:12: [verifier] port: not an integer"
 * ```
 */
export class ConfigError extends KeylimeError {
  /** Where the bad input came from. */
  readonly location: ConfigErrorLocation
  /** The reason without the location prefix. */
  readonly reason: string

  constructor(
    code: ConfigErrorCode,
    reason: string,
    location: ConfigErrorLocation = {},
    options: { cause?: unknown } = {},
  ) {
    super(code, `${describeLocation(location)}${reason}`, { status: 500, cause: options.cause })
    this.name = 'ConfigError'
    this.location = location
    this.reason = reason
  }
}

function describeLocation(loc: ConfigErrorLocation): string {
  const parts: string[] = []
  if (loc.envVar !== undefined) parts.push(`environment variable ${loc.envVar}`)
  if (loc.file !== undefined)
    parts.push(loc.line === undefined ? loc.file : `${loc.file}:${loc.line}`)
  if (loc.section !== undefined || loc.option !== undefined) {
    const section = loc.section === undefined ? '' : `[${loc.section}]`
    const option = loc.option === undefined ? '' : ` ${loc.option}`
    parts.push(`${section}${option}`.trim())
  }
  return parts.length === 0 ? '' : `${parts.join(': ')}: `
}
