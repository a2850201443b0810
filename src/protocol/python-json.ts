/**
 * Python's `json.dumps` with its default separators (`", "` between items, `": "` after keys), the
 * form upstream Keylime signs (revocation messages), sends (the tenant's `tpm_policy`, `metadata`)
 * and prints (the tenant's result lines). Keys keep their insertion order, as Python dicts do.
 *
 * What it does not emulate: numbers are written as JavaScript writes them (`1` where Python's
 * float prints `1.0`, `1e-7` for `1e-07`), since every value Keylime serialises this way is an
 * integer, a string, a boolean or null.
 *
 * @module
 */

/** Options of {@link pythonJsonDumps}. */
export interface PythonJsonOptions {
  /**
   * Python's `ensure_ascii` (default `true`, as `json.dumps`): every character outside
   * U+0020–U+007E is written as `\uXXXX` (astral characters as a surrogate pair).
   */
  ensureAscii?: boolean
}

/** A JSON string literal with Python's `ensure_ascii=True` escaping. */
function asciiString(s: string): string {
  return JSON.stringify(s).replace(
    /[\u007f-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )
}

/**
 * Serialises `value` as Python's `json.dumps(value)` would. `undefined` is dropped from objects
 * and written as `null` in arrays, as `JSON.stringify` does.
 *
 * @example
 * pythonJsonDumps({ a: [1, 'é'] }) // '{"a": [1, "\\u00e9"]}'
 */
export function pythonJsonDumps(value: unknown, options: PythonJsonOptions = {}): string {
  const str = options.ensureAscii === false ? JSON.stringify : asciiString
  const dump = (v: unknown): string => {
    if (v === null || v === undefined) return 'null'
    if (Array.isArray(v)) return `[${v.map(dump).join(', ')}]`
    if (typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>).filter(
        ([, x]) => x !== undefined,
      )
      return `{${entries.map(([k, x]) => `${str(k)}: ${dump(x)}`).join(', ')}}`
    }
    if (typeof v === 'string') return str(v)
    return JSON.stringify(v)
  }
  return dump(value)
}
