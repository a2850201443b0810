/**
 * `logging.conf` loader. Upstream hands the whole file to Python's `logging.config.fileConfig`
 * (`keylime/keylime_logging.py`); keylime-ts needs only the effective level of the `keylime.*`
 * loggers, computed as `fileConfig` would:
 *
 * - the logger listed in `[loggers] keys` whose `[logger_<key>]` has `qualname = keylime`
 *   supplies the level; when there is none, or its level is `NOTSET`, `[logger_root] level`;
 * - a record is printed only if the handlers that receive it let it through, so the result is
 *   raised to the lowest level among that logger's handlers (`[handler_<name>] level`; for a
 *   keylime logger without handlers, the root's handlers, since records propagate).
 *
 * Without any `logging.conf` the level is `INFO`, the template default. (Upstream's
 * `fileConfig` fails on an empty parser and falls back to `basicConfig(level=DEBUG)`; we do not
 * copy that, as DEBUG by accident is the wrong default for a security service.)
 *
 * @module
 */

import { LOG_LEVELS, type LogLevel, parseLogLevel } from '../log/logger.ts'
import { ConfigError } from './errors.ts'
import { getIniEntry, type IniStore } from './parse-ini.ts'
import { logConfigWarning } from './load-component-config.ts'
import { type ConfigLoadOptions, readConfigFiles } from './read-config-files.ts'

/** The parts of `logging.conf` keylime-ts uses. */
export interface LoggingConfig {
  /** Minimum level written by `keylime.*` loggers. */
  level: LogLevel
  /** Files actually read, in the order applied. */
  sources: string[]
}

/** Python's numeric NOTSET. */
const NOTSET = 0

function readLevel(store: IniStore, section: string): number | undefined {
  const entry = getIniEntry(store, section, 'level')
  if (entry === undefined) return undefined
  const text = entry.value.trim()
  if (text.toUpperCase() === 'NOTSET') return NOTSET
  const level = parseLogLevel(text)
  if (level === undefined) {
    throw new ConfigError(
      'ERR_CONFIG_INVALID',
      'expected a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL, NOTSET)',
      { file: entry.file, line: entry.line, section, option: 'level' },
    )
  }
  return LOG_LEVELS[level]
}

function names(store: IniStore, section: string, option: string): string[] {
  const value = getIniEntry(store, section, option)?.value ?? ''
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
}

function handlersFloor(store: IniStore, handlers: string[]): number {
  if (handlers.length === 0) return NOTSET
  return Math.min(...handlers.map((h) => readLevel(store, `handler_${h}`) ?? NOTSET))
}

function toLevel(n: number): LogLevel {
  const sorted = Object.entries(LOG_LEVELS).sort((a, b) => a[1] - b[1])
  let out: LogLevel = 'DEBUG'
  for (const [name, value] of sorted) if (n >= value) out = name as LogLevel
  return out
}

/**
 * Loads `logging.conf` (`KEYLIME_LOGGING_CONFIG`, or `/etc/keylime/logging.conf` /
 * `/usr/etc/keylime/logging.conf` plus `logging.conf.d` snippets) and returns the level for
 * {@link setLogLevel}.
 *
 * @example
 * ```ts
 * setLogLevel(loadLoggingConfig().level)
 * ```
 * @throws {@link ConfigError} on an unreadable/malformed file or an unknown level name.
 */
export function loadLoggingConfig(options: ConfigLoadOptions = {}): LoggingConfig {
  const warn = options.warn ?? logConfigWarning
  const { store, sources } = readConfigFiles('logging', { ...options, warn })
  // No file, or a file without a [loggers] section (Python's fileConfig would reject it): the
  // default level, rather than Python's silent WARNING root.
  if (sources.length === 0 || getIniEntry(store, 'loggers', 'keys') === undefined) {
    readLevel(store, 'logger_root') // still refuse an invalid level
    return { level: 'INFO', sources }
  }

  const rootLevel = readLevel(store, 'logger_root') ?? LOG_LEVELS.WARNING
  const rootHandlers = names(store, 'logger_root', 'handlers')
  let loggerLevel = rootLevel
  let handlers = rootHandlers
  for (const key of names(store, 'loggers', 'keys')) {
    if (key === 'root') continue
    const section = `logger_${key}`
    if (getIniEntry(store, section, 'qualname')?.value.trim() !== 'keylime') continue
    const own = readLevel(store, section) ?? NOTSET
    if (own !== NOTSET) loggerLevel = own
    const ownHandlers = names(store, section, 'handlers')
    if (ownHandlers.length > 0) handlers = ownHandlers
    break
  }
  return { level: toLevel(Math.max(loggerLevel, handlersFloor(store, handlers))), sources }
}
