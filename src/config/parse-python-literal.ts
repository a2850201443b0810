/**
 * A bounded parser for the Python literals Keylime writes in its INI files and reads back with
 * `ast.literal_eval` (`keylime/config.py` `getlist`): `['agent']`, `["info", "notice"]`,
 * `[{"event_id": ".*", "severity_label" : "emergency"}]`, `[]`.
 *
 * Supported: single- and double-quoted strings (with `r`/`u` prefixes and the common escapes),
 * integers and floats, `True`/`False`/`None`, lists and dicts with string keys, trailing commas.
 * JSON's `true`/`false`/`null` are accepted as well, so a JSON value written by hand (the options
 * upstream documents as JSON, `severity_labels` and `severity_policy`) decodes too.
 * Adjacent string literals concatenate (`'a' 'b'`). Tuples, sets, byte strings and
 * triple-quoted strings are not needed by any Keylime option and are rejected.
 *
 * The parser never throws: it returns `{ ok: false, reason }` for bad input, and bounds nesting
 * depth ({@link MAX_LITERAL_DEPTH}) and input length ({@link MAX_LITERAL_CHARS}).
 *
 * @module
 */

/** A decoded Python literal. */
export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue }

/** Result of {@link parsePythonLiteral}. */
export type PyParseResult = { ok: true; value: PyValue } | { ok: false; reason: string }

/** Deepest nesting accepted. */
export const MAX_LITERAL_DEPTH = 32
/** Longest input accepted, in characters. */
export const MAX_LITERAL_CHARS = 256 * 1024

class LiteralSyntaxError extends Error {}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  n: '\n',
  t: '\t',
  r: '\r',
  a: '\u0007',
  b: '\b',
  f: '\f',
  v: '\v',
  '0': '\0',
  '\n': '',
}

const NUMBER = /^[+-]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?/

class Parser {
  readonly #text: string
  #pos = 0

  constructor(text: string) {
    this.#text = text
  }

  parseAll(): PyValue {
    const value = this.#value(0)
    this.#ws()
    if (this.#pos !== this.#text.length) this.#fail('unexpected text after the value')
    return value
  }

  #fail(what: string): never {
    throw new LiteralSyntaxError(`${what} at offset ${this.#pos}`)
  }

  #ws(): void {
    while (this.#pos < this.#text.length && /\s/.test(this.#text[this.#pos] as string)) this.#pos++
  }

  #value(depth: number): PyValue {
    if (depth > MAX_LITERAL_DEPTH) this.#fail('nesting too deep')
    this.#ws()
    const c = this.#text[this.#pos]
    if (c === undefined) this.#fail('unexpected end of input')
    if (c === '[') return this.#list(depth)
    if (c === '{') return this.#dict(depth)
    if (c === '(') this.#fail('tuples are not supported')
    if (this.#atString()) {
      // Adjacent literals concatenate, as in Python: 'a' "b" → 'ab'.
      let out = this.#prefixedString()
      for (;;) {
        const save = this.#pos
        this.#ws()
        if (!this.#atString()) {
          this.#pos = save
          return out
        }
        out += this.#prefixedString()
      }
    }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.#text.slice(this.#pos))
    if (word) {
      const w = word[0]
      const known: Record<string, PyValue> = {
        True: true,
        False: false,
        None: null,
        true: true,
        false: false,
        null: null,
      }
      if (!Object.hasOwn(known, w)) this.#fail(`unknown name '${w.slice(0, 32)}'`)
      this.#pos += w.length
      return known[w] as PyValue
    }
    const num = NUMBER.exec(this.#text.slice(this.#pos, this.#pos + 400))
    if (num) {
      const textual = num[0]
      if (/__|_$|_\.|\._|_[eE]/.test(textual)) this.#fail('misplaced underscore in number')
      const n = Number(textual.replace(/_/g, ''))
      if (!Number.isFinite(n)) this.#fail('number out of range')
      this.#pos += textual.length
      return n
    }
    this.#fail(`unexpected character '${c}'`)
  }

  #atString(): boolean {
    const c = this.#text[this.#pos]
    if (c === '"' || c === "'") return true
    return /^[rRuU]["']/.test(this.#text.slice(this.#pos, this.#pos + 2))
  }

  #prefixedString(): string {
    const c = this.#text[this.#pos]
    if (c === '"' || c === "'") return this.#string(false)
    this.#pos++
    return this.#string(c === 'r' || c === 'R')
  }

  #string(raw: boolean): string {
    const quote = this.#text[this.#pos] as string
    if (this.#text.startsWith(quote.repeat(3), this.#pos))
      this.#fail('triple-quoted strings are not supported')
    this.#pos++
    let out = ''
    for (;;) {
      const c = this.#text[this.#pos]
      if (c === undefined || c === '\n') this.#fail('unterminated string')
      this.#pos++
      if (c === quote) break
      if (c !== '\\') {
        out += c
        continue
      }
      const e = this.#text[this.#pos]
      if (e === undefined) this.#fail('unterminated string')
      if (raw) {
        out += `\\${e}`
        this.#pos++
        continue
      }
      const simple = SIMPLE_ESCAPES[e]
      if (simple !== undefined) {
        out += simple
        this.#pos++
        continue
      }
      const hexLen = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0
      if (hexLen > 0) {
        const hex = this.#text.slice(this.#pos + 1, this.#pos + 1 + hexLen)
        if (hex.length !== hexLen || !/^[0-9a-fA-F]+$/.test(hex)) this.#fail('bad escape')
        const cp = Number.parseInt(hex, 16)
        if (cp > 0x10ffff) this.#fail('bad escape')
        out += String.fromCodePoint(cp)
        this.#pos += 1 + hexLen
        continue
      }
      // Python keeps unknown escapes verbatim (with a warning).
      out += `\\${e}`
      this.#pos++
    }
    return out
  }

  #list(depth: number): PyValue[] {
    this.#pos++
    const items: PyValue[] = []
    for (;;) {
      this.#ws()
      if (this.#text[this.#pos] === ']') {
        this.#pos++
        return items
      }
      items.push(this.#value(depth + 1))
      this.#ws()
      const c = this.#text[this.#pos]
      if (c === ',') this.#pos++
      else if (c !== ']') this.#fail("expected ',' or ']'")
    }
  }

  #dict(depth: number): { [key: string]: PyValue } {
    this.#pos++
    const entries: [string, PyValue][] = []
    for (;;) {
      this.#ws()
      if (this.#text[this.#pos] === '}') {
        this.#pos++
        return Object.fromEntries(entries)
      }
      const key = this.#value(depth + 1)
      if (typeof key !== 'string') this.#fail('dict keys must be strings')
      this.#ws()
      if (this.#text[this.#pos] !== ':') this.#fail("expected ':'")
      this.#pos++
      entries.push([key, this.#value(depth + 1)])
      this.#ws()
      const c = this.#text[this.#pos]
      if (c === ',') this.#pos++
      else if (c !== '}') this.#fail("expected ',' or '}'")
    }
  }
}

/**
 * Parses `text` as one Python literal.
 *
 * @example
 * ```ts
 * parsePythonLiteral("['agent', \"webhook\"]") // { ok: true, value: ['agent', 'webhook'] }
 * parsePythonLiteral('[agent]')                // { ok: false, reason: "unknown name 'agent' at offset 1" }
 * ```
 */
export function parsePythonLiteral(text: string): PyParseResult {
  if (text.length > MAX_LITERAL_CHARS) return { ok: false, reason: 'value too long' }
  try {
    return { ok: true, value: new Parser(text).parseAll() }
  } catch (err) {
    if (err instanceof LiteralSyntaxError) return { ok: false, reason: err.message }
    throw err
  }
}
