/**
 * One line per event on stdout, in upstream Keylime's shape by default:
 *
 * ```
 * 2026-11-21 15:33:00.123 - keylime.verifier - INFO - message key=value …
 * ```
 *
 * `KEYLIME_LOG_FORMAT=json` switches to JSON lines (`{time, level, name, msg, …fields}`) for log
 * shippers. Field values whose key names a secret (K, U, V, keys, payloads, passwords), at any
 * depth, are replaced by `[redacted]` before anything is written, and every `Error` (and whatever
 * is passed as `error` or `cause`) is written as {@link describeError} describes it — never its
 * message whole, its stack or its own properties, where database errors keep query parameters —
 * so a careless call site cannot leak them. Call sites pass the caught value itself.
 *
 * @module
 */
import { describeError } from './describe-error.ts'

/** Log levels, ordered; the names are Python logging's so `logging.conf` levels apply as written. */
export const LOG_LEVELS = { DEBUG: 10, INFO: 20, WARNING: 30, ERROR: 40, CRITICAL: 50 } as const

/** A log level name. */
export type LogLevel = keyof typeof LOG_LEVELS

/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>

/** Field names never written in clear (compared lower-cased). */
const SECRET_FIELDS = new Set([
  'k',
  'u',
  'v',
  'key',
  'ukey',
  'vkey',
  'encrypted_key',
  'private_key',
  'privatekey',
  'password',
  'passphrase',
  'payload',
  'revocation_key',
  'auth_tag',
  'secret',
])

/** Where lines go; replaceable in tests. */
export type LogSink = (line: string) => void

interface LoggerState {
  level: number
  json: boolean
  sink: LogSink
}

const state: LoggerState = {
  level: LOG_LEVELS.INFO,
  json: process.env.KEYLIME_LOG_FORMAT === 'json',
  sink: (line) => process.stdout.write(`${line}\n`),
}

/** Sets the process-wide minimum level (from `logging.conf` or `KEYLIME_LOG_LEVEL`). */
export function setLogLevel(level: LogLevel): void {
  state.level = LOG_LEVELS[level]
}

/** Parses a level name as Python writes it (`INFO`, `warning`, `WARN`); undefined when unknown. */
export function parseLogLevel(name: string): LogLevel | undefined {
  const upper = name.trim().toUpperCase()
  if (upper === 'WARN') return 'WARNING'
  if (upper === 'FATAL') return 'CRITICAL'
  return upper in LOG_LEVELS ? (upper as LogLevel) : undefined
}

/** Redirects output (tests) and chooses JSON or text lines. Returns the previous sink. */
export function setLogSink(sink: LogSink, json = state.json): LogSink {
  const previous = state.sink
  state.sink = sink
  state.json = json
  return previous
}

/** Fields that conventionally hold a caught value, described whatever its type. */
const ERROR_FIELDS = new Set(['error', 'cause', 'err'])

function redact(fields: LogFields): LogFields {
  const out: LogFields = {}
  for (const [key, value] of Object.entries(fields)) {
    const k = key.toLowerCase()
    if (SECRET_FIELDS.has(k)) out[key] = '[redacted]'
    else if (value instanceof Error || (ERROR_FIELDS.has(k) && value !== undefined))
      out[key] = describeError(value)
    else out[key] = value
  }
  return out
}

/** `JSON.stringify` replacer: secrets and errors nested in field values get the same treatment. */
function safeJson(key: string, value: unknown): unknown {
  if (key !== '' && SECRET_FIELDS.has(key.toLowerCase())) return '[redacted]'
  if (value instanceof Error) return describeError(value)
  if (typeof value === 'bigint') return value.toString()
  return value
}

/** JSON text of `value`; a value JSON cannot hold (a cycle) never makes logging throw. */
function toJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, safeJson)
  } catch {
    return '"[unserializable]"'
  }
}

/** A JSON line of `record`, with any field JSON cannot hold replaced. */
function jsonLine(record: LogFields): string {
  try {
    return JSON.stringify(record, safeJson)
  } catch {
    const out: LogFields = {}
    for (const [k, v] of Object.entries(record)) {
      out[k] = toJson(v) === '"[unserializable]"' ? '[unserializable]' : v
    }
    return JSON.stringify(out, safeJson)
  }
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0')
}

function timestamp(d: Date): string {
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  )
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)
  return toJson(value) ?? `[${typeof value}]`
}

/** A named logger (`keylime.verifier`, …). */
export class Logger {
  /** The dotted logger name, as in upstream's `keylime.<component>`. */
  readonly name: string
  readonly #fields: LogFields

  constructor(name: string, fields: LogFields = {}) {
    this.name = name
    this.#fields = fields
  }

  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger {
    return new Logger(this.name, { ...this.#fields, ...fields })
  }

  /** Whether lines at `level` are written. */
  enabled(level: LogLevel): boolean {
    return LOG_LEVELS[level] >= state.level
  }

  /** Writes one line at `level`. */
  log(level: LogLevel, msg: string, fields?: LogFields): void {
    if (!this.enabled(level)) return
    const all = redact({ ...this.#fields, ...fields })
    const now = new Date()
    if (state.json) {
      state.sink(jsonLine({ time: now.toISOString(), level, name: this.name, msg, ...all }))
      return
    }
    const extra = Object.entries(all)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${formatValue(v)}`)
      .join(' ')
    const line = `${timestamp(now)} - ${this.name} - ${level} - ${msg.replace(/[\r\n]+/g, ' ')}`
    state.sink(extra ? `${line} ${extra}` : line)
  }

  /** Debug line. */
  debug(msg: string, fields?: LogFields): void {
    this.log('DEBUG', msg, fields)
  }
  /** Info line. */
  info(msg: string, fields?: LogFields): void {
    this.log('INFO', msg, fields)
  }
  /** Warning line. */
  warn(msg: string, fields?: LogFields): void {
    this.log('WARNING', msg, fields)
  }
  /** Error line. */
  error(msg: string, fields?: LogFields): void {
    this.log('ERROR', msg, fields)
  }
}

/** Returns a logger named `keylime.<component>` (or `keylime` for no component). */
export function getLogger(component?: string): Logger {
  return new Logger(component ? `keylime.${component}` : 'keylime')
}
