/**
 * One safe, one-line description of any thrown value, for logs and error texts.
 *
 * Database errors carry the data they failed on: drizzle's `DrizzleQueryError` puts the query and
 * every parameter in its message (V, revocation keys, challenge keys…), postgres.js and PGlite
 * attach `query`/`parameters`/`params`, and PostgreSQL itself quotes values in `detail`
 * (`Failing row contains (…)`, `Key (x)=(…)`), `where` (`JSON data, line 1: …`), `hint`, and in
 * messages such as `invalid input syntax for type json: "…"`. This module keeps only what is safe
 * and useful to an operator:
 *
 * - a query error becomes `database query failed`, followed by its cause;
 * - a server error keeps its severity, SQLSTATE, the message with values removed (quoted text
 *   that is not an identifier is replaced and anything after the first colon dropped; a message
 *   raised by a database function is dropped whole) and the schema/table/column/constraint/type
 *   names and routine;
 * - any other error keeps its name, its `code` and the first line of its message with quoted text
 *   other than identifiers replaced, except a `KeylimeError`, whose message is written never to
 *   hold secrets and is kept as it is;
 * - a thrown string is treated as such a message; any other thrown value is named by its type.
 *
 * The cause chain is followed a few levels. Nothing here throws, whatever it is handed.
 *
 * @module
 */

/** Causes followed at most. */
const MAX_DEPTH = 4
/** Longest description of one level, in characters. */
const MAX_TEXT = 300

/** Fields of a PostgreSQL error or notice worth keeping, as postgres.js and PGlite name them. */
const SERVER_NAME_FIELDS: readonly (readonly [string, readonly string[]])[] = [
  ['schema', ['schema_name', 'schema']],
  ['table', ['table_name', 'table']],
  ['column', ['column_name', 'column']],
  ['constraint', ['constraint_name', 'constraint']],
  ['type', ['data_type_name', 'dataType']],
  ['routine', ['routine']],
]

/** An SQL identifier as PostgreSQL quotes it in messages (kept; anything else quoted is a value). */
const IDENTIFIER = /^[a-z_][a-z0-9_$]{0,62}$/

/**
 * Describes `value` (usually something caught) in one line without query text, parameters or
 * the values a database or library error quotes.
 *
 * @example
 * ```ts
 * } catch (err) {
 *   log.error('write failed', { error: describeError(err) }) // the logger does this by itself
 * }
 * ```
 */
export function describeError(value: unknown): string {
  const parts: string[] = []
  const seen = new Set<unknown>()
  let current = value
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (seen.has(current)) break
    seen.add(current)
    parts.push(describeOne(current))
    current = causeOf(current)
    if (current === undefined || current === null) break
  }
  return parts.join('; cause: ')
}

/**
 * The `at …` frames of an error's stack (at most `max`), joined by ` | `: never the message
 * lines that precede them, which repeat the message (drizzle's spans several lines).
 */
export function stackFrames(value: unknown, max = 5): string | undefined {
  try {
    if (!(value instanceof Error) || typeof value.stack !== 'string') return undefined
    const frames = value.stack
      .split('\n')
      .filter((l) => /^\s+at /.test(l))
      .slice(0, max)
      .map((l) => l.trim())
    return frames.length > 0 ? frames.join(' | ') : undefined
  } catch {
    return undefined
  }
}

/**
 * A PostgreSQL error or notice (fields as postgres.js or PGlite name them) described without the
 * values it quotes: `ERROR 23505: duplicate key value violates unique constraint "x" (table=t)`.
 */
export function describeServerMessage(fields: Record<string, unknown>): string {
  const code = typeof fields.code === 'string' ? fields.code : '?'
  const severity = typeof fields.severity === 'string' ? fields.severity : 'ERROR'
  const raised = code.startsWith('P0') || fields.routine === 'exec_stmt_raise'
  const message = raised
    ? 'raised by a database function'
    : withoutValues(typeof fields.message === 'string' ? fields.message : '', true)
  const names: string[] = []
  for (const [label, keys] of SERVER_NAME_FIELDS) {
    const v = keys.map((k) => fields[k]).find((x) => typeof x === 'string' && x !== '')
    if (typeof v === 'string') names.push(`${label}=${clip(v, 64)}`)
  }
  const text = `${severity} ${code}: ${message}`
  return names.length > 0 ? `${text} (${names.join(', ')})` : text
}

function describeOne(value: unknown): string {
  try {
    if (value instanceof Error) return describeErrorObject(value)
    if (value === null) return 'null'
    if (typeof value === 'object') return `a thrown ${constructorName(value)}`
    switch (typeof value) {
      case 'string':
        return clip(withoutValues(value))
      case 'number':
      case 'boolean':
      case 'bigint':
      case 'undefined':
        return String(value)
      case 'symbol':
        return 'a thrown symbol'
      default:
        return 'a thrown function'
    }
  } catch {
    return 'an undescribable thrown value'
  }
}

function describeErrorObject(e: Error): string {
  const fields = e as unknown as Record<string, unknown>
  // PGlite's server errors carry the query and its params too: test for them first
  if (isServerError(fields)) return clip(describeServerMessage(fields))
  if (isQueryError(e)) return 'database query failed'
  const name = typeof e.name === 'string' && e.name !== '' ? e.name : 'Error'
  const message = typeof e.message === 'string' ? e.message : ''
  // KeylimeError messages are written for operators and hold no secrets (src/errors.ts).
  const text = isKeylimeErrorLike(fields) ? firstLine(message) : withoutValues(message)
  const code = typeof fields.code === 'string' && !text.includes(fields.code) ? fields.code : ''
  const head = code ? `${name} [${clip(code, 40)}]` : name
  if (e instanceof AggregateError && Array.isArray(e.errors) && e.errors.length > 0) {
    const inner = e.errors.slice(0, 3).map((x) => describeOne(x))
    return clip(`${head}: ${text} [${inner.join(' | ')}]`)
  }
  return clip(text ? `${head}: ${text}` : head)
}

/** drizzle's DrizzleQueryError, or any error that carries the statement and its parameters. */
function isQueryError(e: Error): boolean {
  return (
    e.name === 'DrizzleQueryError' ||
    e.constructor?.name === 'DrizzleQueryError' ||
    Object.hasOwn(e, 'params') ||
    (typeof e.message === 'string' && e.message.startsWith('Failed query:'))
  )
}

/** An error PostgreSQL sent (postgres.js `PostgresError`, PGlite `DatabaseError`). */
function isServerError(f: Record<string, unknown>): boolean {
  return (
    typeof f.code === 'string' &&
    /^[0-9A-Z]{5}$/.test(f.code) &&
    (typeof f.severity === 'string' || typeof f.routine === 'string')
  )
}

/** A keylime-ts typed error (duck-typed: src/log depends on nothing above it). */
function isKeylimeErrorLike(f: Record<string, unknown>): boolean {
  return typeof f.code === 'string' && f.code.startsWith('ERR_') && typeof f.status === 'number'
}

function causeOf(value: unknown): unknown {
  try {
    return value instanceof Error ? value.cause : undefined
  } catch {
    return undefined
  }
}

function constructorName(value: object): string {
  const name = Object.getPrototypeOf(value)?.constructor?.name
  return typeof name === 'string' && /^[A-Za-z_$][\w$]{0,40}$/.test(name) ? name : 'object'
}

/**
 * A message without the values it may carry: its first line with quoted text other than
 * identifiers replaced; with `cut`, also everything from the first `: ` (where PostgreSQL puts
 * the offending input, quoted or not).
 */
function withoutValues(message: string, cut = false): string {
  let text = firstLine(message)
  const colon = cut ? text.search(/:\s/) : -1
  if (colon >= 0) text = text.slice(0, colon)
  return text.replace(/"([^"]*)"|'([^']*)'/g, (whole, dq?: string, sq?: string) =>
    IDENTIFIER.test(dq ?? sq ?? '') ? whole : '"…"',
  )
}

function firstLine(text: string): string {
  const nl = text.search(/[\r\n]/)
  return clip(nl >= 0 ? text.slice(0, nl) : text)
}

function clip(text: string, max = MAX_TEXT): string {
  return text.length > max ? `${text.slice(0, max)}…` : text
}
