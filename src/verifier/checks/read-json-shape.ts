/**
 * Reads a JSON object that came from an untrusted peer (an agent's answer, pushed evidence)
 * against a declared shape: each field's kind and bounds are data, and the result is either a
 * fully typed value or the first field that does not fit. Nothing of the input is called or
 * coerced (no `String(x)`, no `toString`/`valueOf`), only own properties are read (a
 * `__proto__` or `constructor` key is just an unknown key), and problems name the field and the
 * JSON type found, never the value, so a hostile value cannot reach a log line or a failure event.
 *
 * @example
 * ```ts
 * const r = readJsonShape(results, { quote: { kind: 'string', maxLength: 65536 } })
 * if (!r.ok) fail(r.problem)
 * else use(r.value.quote)
 * ```
 *
 * @module
 */

/** A string field of at most `maxLength` UTF-16 units. */
export interface StringField {
  kind: 'string'
  maxLength: number
  /** Absent or `null` reads as `undefined` (rust-keylime serialises missing options as null). */
  optional?: true
}

/** An integer field (a JSON number that is a safe integer in `[min, max]`). */
export interface IntegerField {
  kind: 'integer'
  min: number
  max: number
  /** Absent or `null` reads as `undefined`. */
  optional?: true
}

/** One declared field. */
export type FieldSpec = StringField | IntegerField

/** A declared object shape: field name → spec. Keys not named here are ignored. */
export type JsonShape = Readonly<Record<string, FieldSpec>>

type FieldValue<F extends FieldSpec> = F extends StringField ? string : number

/** The typed value of a shape. */
export type ShapeValue<S extends JsonShape> = {
  [K in keyof S]: S[K] extends { optional: true } ? FieldValue<S[K]> | undefined : FieldValue<S[K]>
}

/** Result of {@link readJsonShape}. */
export type ShapeResult<S extends JsonShape> =
  { ok: true; value: ShapeValue<S> } | { ok: false; field: string; problem: string }

/** The JSON type of a parsed value, for messages. */
export function jsonTypeOf(v: unknown): string {
  if (v === null) return 'null'
  if (Array.isArray(v)) return 'array'
  return typeof v
}

function fieldProblem(spec: FieldSpec, v: unknown): string | undefined {
  if (spec.kind === 'string') {
    if (typeof v !== 'string') return `must be a string, not ${jsonTypeOf(v)}`
    if (v.length > spec.maxLength) return `is longer than ${spec.maxLength} characters`
    return undefined
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    return `must be an integer, not ${typeof v === 'number' ? 'a non-integer number' : jsonTypeOf(v)}`
  }
  if (v < spec.min || v > spec.max) return `must be between ${spec.min} and ${spec.max}`
  return undefined
}

/**
 * Reads `input` (a parsed JSON value) as an object of `shape`. Never throws.
 */
export function readJsonShape<S extends JsonShape>(input: unknown, shape: S): ShapeResult<S> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, field: '', problem: `must be a JSON object, not ${jsonTypeOf(input)}` }
  }
  const out: Record<string, unknown> = {}
  for (const [name, spec] of Object.entries(shape)) {
    const v = Object.hasOwn(input, name) ? (input as Record<string, unknown>)[name] : undefined
    if (v === undefined || v === null) {
      if (spec.optional) {
        out[name] = undefined
        continue
      }
      return { ok: false, field: name, problem: `${name} is missing` }
    }
    const problem = fieldProblem(spec, v)
    if (problem !== undefined) return { ok: false, field: name, problem: `${name} ${problem}` }
    out[name] = v
  }
  return { ok: true, value: out as ShapeValue<S> }
}
