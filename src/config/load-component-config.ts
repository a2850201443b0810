/**
 * The shared loader behind `loadVerifierConfig`, `loadRegistrarConfig`, `loadTenantConfig` and
 * `loadCaConfig`: reads the files ({@link readConfigFiles}), then resolves every option of the
 * component's schema with upstream's precedence (`keylime/config.py` `_get_env`):
 *
 * 1. environment variable — `KEYLIME_<C>_<OPTION>` for the component's own section
 *    (`KEYLIME_VERIFIER_QUOTE_INTERVAL`), `KEYLIME_<C>_<SECTION>_<OPTION>` for any other section
 *    (`KEYLIME_VERIFIER_REVOCATIONS_ZMQ_PORT`); the value is read even when
 *    `KEYLIME_<C>_CONFIG` selects the file, as upstream does;
 * 2. the merged files (the option's section, then `[DEFAULT]`);
 * 3. the upstream default from the schema.
 *
 * Sections and options the schema does not know are reported through `warn` and otherwise
 * ignored, so a newer upstream file still loads. An empty environment variable counts as set
 * (upstream tests `is not None`).
 *
 * Deviation, on purpose: upstream's `getboolean` silently falls back to the default for an
 * invalid boolean in the environment; we raise, like for every other invalid value.
 *
 * @module
 */

import { getLogger } from '../log/logger.ts'
import { decodeValue } from './decode-value.ts'
import { ConfigError } from './errors.ts'
import { DEFAULT_SECTION, getIniEntry } from './parse-ini.ts'
import {
  type ConfigComponent,
  type ConfigLoadOptions,
  type ConfigWarn,
  readConfigFiles,
} from './read-config-files.ts'
import type { ComponentSchema, ConfigOf } from './schemas.ts'

/** The default warning sink: WARNING lines on the `keylime.config` logger. */
export const logConfigWarning: ConfigWarn = (message, fields) =>
  getLogger('config').warn(message, fields)

/** Name of the environment variable overriding `option` of `section` in `component`'s file. */
export function configEnvVar(component: string, section: string, option: string): string {
  const sectionPart = section === component ? '' : `_${section.toUpperCase()}`
  return `KEYLIME_${component.toUpperCase()}${sectionPart}_${option.toUpperCase()}`
}

/**
 * Loads `component`'s configuration into the typed object described by `schema`.
 *
 * @throws {@link ConfigError} for unreadable or malformed files and for any value (from a file or
 *   the environment) that does not decode as its option's kind.
 */
export function loadComponentConfig<S extends ComponentSchema>(
  component: Exclude<ConfigComponent, 'logging'>,
  schema: S,
  options: ConfigLoadOptions = {},
): ConfigOf<S> {
  const env = options.env ?? process.env
  const warn = options.warn ?? logConfigWarning
  const { store, sources } = readConfigFiles(component, { ...options, warn })

  for (const [section, entries] of store.sections) {
    const known = schema[section]
    if (known === undefined) {
      warn(`unknown section [${section}] in ${component} configuration`, { component, section })
      continue
    }
    for (const [option, entry] of entries) {
      if (!Object.hasOwn(known, option)) {
        warn(`unknown option '${option}' in section [${section}] of ${component} configuration`, {
          component,
          section,
          option,
          file: entry.file,
          line: entry.line,
        })
      }
    }
  }
  for (const [option, entry] of store.defaults) {
    if (!Object.values(schema).some((sec) => Object.hasOwn(sec, option))) {
      warn(
        `unknown option '${option}' in section [${DEFAULT_SECTION}] of ${component} configuration`,
        {
          component,
          option,
          file: entry.file,
          line: entry.line,
        },
      )
    }
  }

  const out: Record<string, unknown> = {}
  for (const [section, specs] of Object.entries(schema)) {
    const values: Record<string, unknown> = {}
    for (const [option, spec] of Object.entries(specs)) {
      const envVar = configEnvVar(component, section, option)
      const fromEnv = env[envVar]
      const entry = fromEnv === undefined ? getIniEntry(store, section, option) : undefined
      const raw = fromEnv ?? entry?.value ?? spec.default
      const decoded = decodeValue(spec.kind, raw)
      if (!decoded.ok) {
        const location =
          fromEnv !== undefined
            ? { envVar, section, option }
            : entry !== undefined
              ? { file: entry.file, line: entry.line, section, option }
              : { section, option }
        throw new ConfigError('ERR_CONFIG_INVALID', decoded.reason, location)
      }
      values[option] = decoded.value
    }
    out[section] = values
  }
  out.sources = sources
  return out as ConfigOf<S>
}

/**
 * The configuration upstream's defaults alone produce (no files, no environment): the one source
 * of default values for modules that need them without loading a configuration (e.g. `src/ca`).
 */
export function defaultComponentConfig<S extends ComponentSchema>(schema: S): ConfigOf<S> {
  const out: Record<string, Record<string, unknown>> = {}
  for (const [section, specs] of Object.entries(schema)) {
    const values: Record<string, unknown> = {}
    for (const [option, spec] of Object.entries(specs)) {
      const decoded = decodeValue(spec.kind, spec.default)
      if (!decoded.ok)
        throw new ConfigError('ERR_CONFIG_INVALID', decoded.reason, { section, option })
      values[option] = decoded.value
    }
    out[section] = values
  }
  return out as ConfigOf<S>
}
