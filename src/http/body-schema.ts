/**
 * Request bodies as declared schemas: a schema is a record of field specs, {@link parseBody}
 * checks a JSON object against it and returns the typed values, or throws a 400 `KeylimeError`
 * whose message the schema words (so each route keeps upstream's texts).
 *
 * First every required key must be present (its value may still be `null`), in the order listed;
 * then each field's value is read, in declaration order. Unknown keys are ignored, as upstream
 * does.
 *
 * @example
 * ```ts
 * const BODY = bodySchema(
 *   { name: string({ max: 255 }), port: optional(int({ min: 1, max: 65535 }), 80) },
 *   { required: ['name'], missing: (k) => `'${k}'`, invalid: (m) => `Exception error: ${m}` },
 * )
 * const { name, port } = parseBody(BODY, await readJsonObject(c))
 * ```
 *
 * @module
 */
import { BadRequest } from '../errors.ts'

/** Thrown by a field spec for a value it refuses; {@link parseBody} words it as a 400. */
export class FieldError extends Error {
  override readonly name = 'FieldError'
}

/** One field: how its value is read. */
export interface Field<T> {
  /** Reads the value (undefined when absent); throws {@link FieldError} to refuse it. */
  readonly parse: (value: unknown, key: string) => T
}

/** The output type of a field. */
export type FieldOutput<F> = F extends Field<infer T> ? T : never

/** The typed output of a schema's fields. */
export type BodyOf<S extends BodySchema> = { [K in keyof S['fields']]: FieldOutput<S['fields'][K]> }

/** The keys a body must have, and how a schema words its refusals. */
export interface BodyRules {
  /** Keys that must be present (their values may still be null), checked in this order first. */
  required?: readonly string[]
  /** The message for a missing required key (default: `<key> is required`). */
  missing?: (key: string) => string
  /** The message for a refused value (`message` is the field's; default: as is). */
  invalid?: (message: string) => string
}

/** A declared request body. */
export interface BodySchema {
  readonly fields: Readonly<Record<string, Field<unknown>>>
  readonly rules: BodyRules
}

/** Declares a body schema: its fields, in the order they are checked, and its rules. */
export function bodySchema<F extends Record<string, Field<unknown>>>(
  fields: F,
  rules: BodyRules = {},
): { fields: F; rules: BodyRules } {
  return { fields, rules }
}

/**
 * Checks `body` against `schema`: the required keys first, then each field in order.
 *
 * @throws BadRequest (400) worded by the schema's rules; errors other than {@link FieldError}
 *   that a field throws (e.g. a typed `KeylimeError` of its own) pass through unchanged
 */
export function parseBody<S extends BodySchema>(
  schema: S,
  body: Record<string, unknown>,
): BodyOf<S> {
  const { fields, rules } = schema
  for (const key of rules.required ?? []) {
    if (!Object.hasOwn(body, key))
      throw new BadRequest(rules.missing ? rules.missing(key) : `${key} is required`)
  }
  const out: Record<string, unknown> = {}
  for (const [key, f] of Object.entries(fields)) {
    try {
      out[key] = f.parse(Object.hasOwn(body, key) ? body[key] : undefined, key)
    } catch (err) {
      if (!(err instanceof FieldError)) throw err
      throw new BadRequest(rules.invalid ? rules.invalid(err.message) : err.message)
    }
  }
  return out as BodyOf<S>
}

/** Refusal wording of a field: a fixed text, or one made from the key. */
type Message = string | ((key: string) => string)

function refuse(message: Message, key: string): never {
  throw new FieldError(typeof message === 'string' ? message : message(key))
}

/** A field read by `parse` (which throws {@link FieldError} to refuse). */
export function custom<T>(parse: (value: unknown, key: string) => T): Field<T> {
  return { parse }
}

/** A field whose `read` returns the value, or undefined to refuse it with `message`. */
function checked<T>(message: Message, read: (value: unknown) => T | undefined): Field<T> {
  return custom((v, key) => read(v) ?? refuse(message, key))
}

/** `null` or absent → `fallback`; any other value goes to `field`. */
export function optional<T, D>(field: Field<T>, fallback: D): Field<T | D> {
  return custom((v, key) => (v === undefined || v === null ? fallback : field.parse(v, key)))
}

/** Options of {@link string}. */
export interface StringSpec {
  /** Refuse the empty string. */
  nonEmpty?: boolean
  /** Longest accepted length (UTF-16 units). */
  max?: number
  /** Refuse strings matching this. */
  reject?: RegExp
  /** The refusal text (default: `<key> must be a string`). */
  message?: Message
}

/** A string. */
export function string(spec: StringSpec = {}): Field<string> {
  const ok = (v: string) =>
    !(spec.nonEmpty && v === '') &&
    (spec.max === undefined || v.length <= spec.max) &&
    !spec.reject?.test(v)
  return checked(spec.message ?? ((k) => `${k} must be a string`), (v) =>
    typeof v === 'string' && ok(v) ? v : undefined,
  )
}

/** Options of {@link int}. */
export interface IntSpec {
  min?: number
  max?: number
  /** Accept a numeric string too (`"9002"`), as Python clients send. */
  fromString?: boolean
  /** The refusal text (default: `<key> must be an integer`). */
  message?: Message
}

/** An integer within bounds. */
export function int(spec: IntSpec = {}): Field<number> {
  const inBounds = (n: number) =>
    (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max)
  return checked(spec.message ?? ((k) => `${k} must be an integer`), (v) => {
    const n = spec.fromString && typeof v === 'string' ? Number(v) : v
    return typeof n === 'number' && Number.isInteger(n) && inBounds(n) ? n : undefined
  })
}

/** Options of {@link stringList}. */
export interface ListSpec {
  /** Most items accepted. */
  maxItems: number
  /** Each item shorter than this. */
  maxLength: number
  /** The refusal text (default: `<key> must be a list of strings`). */
  message?: Message
}

/** A list of short strings. */
export function stringList(spec: ListSpec): Field<string[]> {
  const short = (x: unknown) => typeof x === 'string' && x.length < spec.maxLength
  return checked(spec.message ?? ((k) => `${k} must be a list of strings`), (v) =>
    Array.isArray(v) && v.length <= spec.maxItems && v.every(short) ? (v as string[]) : undefined,
  )
}

/** Options of {@link jsonText}. */
export interface JsonTextSpec {
  /** The text must parse as JSON (a string value is not re-encoded). */
  validate?: boolean
  /** The refusal text (default: `<key> is not valid JSON`). */
  message?: Message
}

/**
 * A JSON document sent either as its text or inline: a string stays as it is, any other value is
 * serialised (Keylime clients send both forms of `tpm_policy`, `mb_policy`, `metadata`).
 */
export function jsonText(spec: JsonTextSpec = {}): Field<string> {
  const message = spec.message ?? ((k: string) => `${k} is not valid JSON`)
  return custom((v, key) => {
    const text = typeof v === 'string' ? v : JSON.stringify(v)
    if (spec.validate) {
      try {
        JSON.parse(text)
      } catch {
        refuse(message, key)
      }
    }
    return text
  })
}

/** A JSON object (not an array, not null). */
export function jsonObject(message?: Message): Field<Record<string, unknown>> {
  return checked(message ?? ((k) => `${k} must be a JSON object`), (v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined,
  )
}

/** One of `values`; anything else is refused, or read as `fallback` when one is given. */
export function oneOf<const V extends string>(
  values: readonly V[],
  fallback?: V,
  message?: Message,
): Field<V> {
  return custom((v, key) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as V
    if (fallback !== undefined) return fallback
    return refuse(message ?? ((k) => `${k} must be one of ${values.join(', ')}`), key)
  })
}
