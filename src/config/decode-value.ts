/**
 * Decodes one raw option string into its typed value, the way upstream Keylime reads it
 * (`keylime/config.py` `get`/`getint`/`getfloat`/`getboolean`/`getlist`, plus the few options
 * parsed at their point of use: `database_pool_sz_ovfl` in `keylime/db/keylime_db.py`,
 * `cert_subject_alternative_names` in `keylime/web_util.py`, `trusted_*_ca` in
 * `web_util.get_tls_options`).
 *
 * Quotes: upstream's `get` strips any leading/trailing `"` and spaces (`.strip('" ')`) — the
 * templates write `ip = "127.0.0.1"`. We apply that to every kind (Python's `getint`/`getboolean`
 * would reject a quoted number; accepting it is a deliberate leniency), and also remove one
 * matched pair of single quotes (`'x'` → `x`).
 *
 * Decoding never throws; it returns `{ ok: false, reason }` and the caller turns that into a
 * {@link ConfigError} naming the file, section, option or environment variable.
 *
 * @module
 */

import { type LogLevel, parseLogLevel } from '../log/logger.ts'
import { parsePythonLiteral } from './parse-python-literal.ts'

/** A `severity_policy` rule: events whose id matches the regex `event_id` get `severity_label`. */
export interface SeverityRule {
  /** A (Python) regular expression matched against failure event ids. */
  event_id: string
  /** One of `severity_labels`. */
  severity_label: string
}

/** `trusted_client_ca` / `trusted_server_ca`: the `default` or `all` keyword, or CA file names. */
export type TrustedCa = 'default' | 'all' | string[]

/** The value kinds an option can have, with their bounds. */
export type ValueKind =
  | { type: 'string' }
  | { type: 'int'; min?: number; max?: number }
  | { type: 'float'; min?: number; max?: number }
  | { type: 'port' }
  | { type: 'bool' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'list' }
  | { type: 'csv' }
  | { type: 'pool' }
  | { type: 'severity_policy' }
  | { type: 'trusted_ca' }
  | { type: 'log_level' }

/** The TypeScript type each {@link ValueKind} decodes to. */
export type ValueOf<K extends ValueKind> = K extends { type: 'string' }
  ? string
  : K extends { type: 'int' | 'float' | 'port' }
    ? number
    : K extends { type: 'bool' }
      ? boolean
      : K extends { type: 'enum'; values: readonly (infer V)[] }
        ? V
        : K extends { type: 'list' | 'csv' }
          ? string[]
          : K extends { type: 'pool' }
            ? [number, number]
            : K extends { type: 'severity_policy' }
              ? SeverityRule[]
              : K extends { type: 'trusted_ca' }
                ? TrustedCa
                : K extends { type: 'log_level' }
                  ? LogLevel
                  : never

/** Result of {@link decodeValue}. */
export type DecodeResult<T> = { ok: true; value: T } | { ok: false; reason: string }

/** `RawConfigParser.BOOLEAN_STATES`. */
const BOOLEAN_STATES: Readonly<Record<string, boolean>> = {
  '1': true,
  yes: true,
  true: true,
  on: true,
  '0': false,
  no: false,
  false: false,
  off: false,
}

/** What Python's `int()` accepts for base-10 text (after strip). */
const INT_TEXT = /^[+-]?\d+(?:_\d+)*$/
/** What Python's `float()` accepts, minus inf/nan (which no Keylime option can use). */
const FLOAT_TEXT =
  /^[+-]?(?:\d+(?:_\d+)*(?:\.(?:\d+(?:_\d+)*)?)?|\.\d+(?:_\d+)*)(?:[eE][+-]?\d+(?:_\d+)*)?$/

/** Removes quotes as upstream's `.strip('" ')` does, then one matched pair of single quotes. */
export function unquote(raw: string): string {
  // Index scans, not /[" ]+$/: that regex backtracks quadratically on a long inner run of spaces.
  let start = 0
  let end = raw.length
  while (start < end && (raw[start] === '"' || raw[start] === ' ')) start++
  while (end > start && (raw[end - 1] === '"' || raw[end - 1] === ' ')) end--
  const stripped = raw.slice(start, end)
  if (stripped.length >= 2 && stripped.startsWith("'") && stripped.endsWith("'")) {
    return stripped.slice(1, -1)
  }
  return stripped
}

function fail<T>(reason: string): DecodeResult<T> {
  return { ok: false, reason }
}

function decodeInt(text: string, min: number, max: number): DecodeResult<number> {
  const t = text.trim()
  if (!INT_TEXT.test(t)) return fail('expected an integer')
  const n = Number(t.replace(/_/g, ''))
  if (!Number.isSafeInteger(n)) return fail('integer out of range')
  if (n < min || n > max) return fail(`expected an integer between ${min} and ${max}`)
  return { ok: true, value: n }
}

function decodeFloat(text: string, min: number, max: number): DecodeResult<number> {
  const t = text.trim()
  if (!FLOAT_TEXT.test(t)) return fail('expected a number')
  const n = Number(t.replace(/_/g, ''))
  if (!Number.isFinite(n)) return fail('number out of range')
  if (n < min || n > max) return fail(`expected a number between ${min} and ${max}`)
  return { ok: true, value: n }
}

function decodeList(text: string): DecodeResult<unknown[]> {
  // getlist: strip('" '), then ast.literal_eval must yield a list.
  if (text === '') return { ok: true, value: [] }
  const parsed = parsePythonLiteral(text)
  if (!parsed.ok)
    return fail(`expected a Python list literal such as ['a', 'b'] (${parsed.reason})`)
  if (!Array.isArray(parsed.value)) return fail("expected a Python list literal such as ['a', 'b']")
  return { ok: true, value: parsed.value }
}

function decodeStringList(text: string): DecodeResult<string[]> {
  const list = decodeList(text)
  if (!list.ok) return list
  const out: string[] = []
  for (const item of list.value) {
    if (typeof item !== 'string') return fail('expected a list of strings')
    out.push(item.trim())
  }
  return { ok: true, value: out }
}

function decodeSeverityPolicy(text: string): DecodeResult<SeverityRule[]> {
  const list = decodeList(text)
  if (!list.ok) return list
  const out: SeverityRule[] = []
  for (const item of list.value) {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      return fail('expected a list of {"event_id": …, "severity_label": …} objects')
    }
    const rule = item as Record<string, unknown>
    const eventId = rule.event_id
    const label = rule.severity_label
    if (typeof eventId !== 'string' || typeof label !== 'string') {
      return fail('each rule needs string "event_id" and "severity_label"')
    }
    out.push({ event_id: eventId, severity_label: label })
  }
  return { ok: true, value: out }
}

function decodePool(text: string): DecodeResult<[number, number]> {
  // keylime_db.py: p_sz, m_ovfl = value.split(","); int(p_sz); int(m_ovfl)
  const parts = text.split(',')
  if (parts.length !== 2) return fail('expected "<pool size>,<max overflow>", e.g. 5,10')
  const size = decodeInt(parts[0] as string, 0, 100_000)
  const overflow = decodeInt(parts[1] as string, 0, 100_000)
  if (!size.ok || !overflow.ok) return fail('expected "<pool size>,<max overflow>", e.g. 5,10')
  return { ok: true, value: [size.value, overflow.value] }
}

/**
 * Decodes `raw` (a stripped INI value or an environment variable's text) as `kind`.
 *
 * @example
 * ```ts
 * decodeValue({ type: 'pool' }, '5,10')     // { ok: true, value: [5, 10] }
 * decodeValue({ type: 'bool' }, 'yes')      // { ok: true, value: true }
 * decodeValue({ type: 'list' }, "['agent']") // { ok: true, value: ['agent'] }
 * ```
 */
export function decodeValue<K extends ValueKind>(kind: K, raw: string): DecodeResult<ValueOf<K>> {
  return decodeAny(kind, raw) as DecodeResult<ValueOf<K>>
}

function decodeAny(kind: ValueKind, raw: string): DecodeResult<unknown> {
  const text = unquote(raw)
  switch (kind.type) {
    case 'string':
      return { ok: true, value: text }
    case 'int':
      return decodeInt(
        text,
        kind.min ?? Number.MIN_SAFE_INTEGER,
        kind.max ?? Number.MAX_SAFE_INTEGER,
      )
    case 'float':
      return decodeFloat(text, kind.min ?? -Number.MAX_VALUE, kind.max ?? Number.MAX_VALUE)
    case 'port':
      return decodeInt(text, 0, 65535)
    case 'bool': {
      const value = BOOLEAN_STATES[text.toLowerCase()]
      return value === undefined
        ? fail('expected a boolean (True/False, yes/no, on/off, 1/0)')
        : { ok: true, value }
    }
    case 'enum':
      return kind.values.includes(text)
        ? { ok: true, value: text }
        : fail(`expected one of ${kind.values.join(', ')}`)
    case 'list':
      return decodeStringList(text)
    case 'csv':
      return {
        ok: true,
        value: text
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== ''),
      }
    case 'pool':
      return decodePool(text)
    case 'severity_policy':
      return decodeSeverityPolicy(text)
    case 'trusted_ca':
      if (text === 'default' || text === 'all') return { ok: true, value: text }
      return decodeStringList(text)
    case 'log_level': {
      const level = parseLogLevel(text)
      return level === undefined
        ? fail('expected a log level (DEBUG, INFO, WARNING, ERROR, CRITICAL)')
        : { ok: true, value: level }
    }
  }
}
