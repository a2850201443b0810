/**
 * A reader of push request bodies that records every problem with its JSON pointer (upstream's
 * 422 `source.pointer`s) instead of stopping at the first. Only own properties are read, nothing
 * is coerced, and every string and list has a bound, so a hostile body costs bounded work.
 *
 * @module
 */
import { invalidData, type PushProblem } from './json-api.ts'

/** Longest string member read (base64 quotes, keys); logs have their own bounds. */
export const MAX_FIELD = 64 * 1024
/** Most list entries read (algorithms, formats, keys, evidence items). */
export const MAX_LIST = 64

type Obj = Record<string, unknown>

/** Collects problems under a pointer base. */
export class BodyReader {
  readonly problems: PushProblem[] = []

  /** Adds a problem at `pointer`. */
  problem(pointer: string, detail: string): void {
    if (this.problems.length < 32) this.problems.push({ pointer, detail })
  }

  /** Throws upstream's 422 when any problem was found. */
  done(): void {
    if (this.problems.length > 0) throw invalidData(this.problems)
  }

  /** The object at `key` of `o`, or undefined (problem added unless optional). */
  obj(o: Obj, key: string, at: string, optional = false): Obj | undefined {
    const v = own(o, key)
    if (v === undefined || v === null) {
      if (!optional) this.problem(`${at}/${key}`, 'is required')
      return undefined
    }
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.problem(`${at}/${key}`, 'must be an object')
      return undefined
    }
    return v as Obj
  }

  /** The string at `key`, at most `max` long. */
  str(o: Obj, key: string, at: string, optional = false, max = MAX_FIELD): string | undefined {
    const v = own(o, key)
    if (v === undefined || v === null) {
      if (!optional) this.problem(`${at}/${key}`, 'is required')
      return undefined
    }
    if (typeof v !== 'string' || v.length > max) {
      this.problem(`${at}/${key}`, `must be a string of at most ${max} characters`)
      return undefined
    }
    return v
  }

  /** The non-negative safe integer at `key`. */
  uint(o: Obj, key: string, at: string, optional = false): number | undefined {
    const v = own(o, key)
    if (v === undefined || v === null) {
      if (!optional) this.problem(`${at}/${key}`, 'is required')
      return undefined
    }
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      this.problem(`${at}/${key}`, 'must be a non-negative integer')
      return undefined
    }
    return v
  }

  /** The boolean at `key`. */
  bool(o: Obj, key: string, at: string, optional = false): boolean | undefined {
    const v = own(o, key)
    if (v === undefined || v === null) {
      if (!optional) this.problem(`${at}/${key}`, 'is required')
      return undefined
    }
    if (typeof v !== 'boolean') {
      this.problem(`${at}/${key}`, 'must be a boolean')
      return undefined
    }
    return v
  }

  /** The list of short strings at `key`. */
  strList(o: Obj, key: string, at: string, optional = false): string[] | undefined {
    const v = this.list(o, key, at, optional)
    if (v === undefined) return undefined
    if (!v.every((s) => typeof s === 'string' && s.length <= 256)) {
      this.problem(`${at}/${key}`, 'must be a list of strings')
      return undefined
    }
    return v as string[]
  }

  /** The list at `key` (at most {@link MAX_LIST} entries). */
  list(o: Obj, key: string, at: string, optional = false): unknown[] | undefined {
    const v = own(o, key)
    if (v === undefined || v === null) {
      if (!optional) this.problem(`${at}/${key}`, 'is required')
      return undefined
    }
    if (!Array.isArray(v) || v.length > MAX_LIST) {
      this.problem(`${at}/${key}`, `must be a list of at most ${MAX_LIST} entries`)
      return undefined
    }
    return v
  }
}

/** An own property of `o` (never one inherited from `Object.prototype`). */
export function own(o: Obj, key: string): unknown {
  return Object.hasOwn(o, key) ? o[key] : undefined
}

/** Whether `v` is a plain JSON object. */
export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}
