/**
 * Parses the regular expressions operators put in policies (runtime-policy `excludes`, measured-boot
 * `kernel_cmdline` and rule-policy field patterns) into a small tree for {@link compileLinearRegex}.
 *
 * The meaning is that of the JavaScript `RegExp` (no `u` flag) the policy code compiled before, so
 * a pattern matches exactly what it matched then: `.`, `\d`, `\w`, `\s`, `\b`, `^`/`$` with the
 * `m` flag and case folding with `i` follow ECMAScript. In the `python` dialect the syntax of
 * `python-regex.ts`'s translation is read directly: `(?P<name>…)`, `\A`, `\Z`, Python's `$` (end
 * or before a final newline), `]` first in a class, a leading `(?aiLmsux)` flag group.
 *
 * Constructs a finite automaton cannot express — back-references, lookaround, inline modifiers —
 * and anything unusual enough not to be worth emulating raise {@link RegexUnsupported}; the caller
 * then keeps the backtracking `RegExp` for that pattern. The caller validates every pattern with
 * `RegExp` first, so this parser never decides what is a syntax error.
 *
 * @module
 */

/** Thrown when a pattern uses a construct this parser leaves to the backtracking engine. */
export class RegexUnsupported extends Error {
  constructor(what: string) {
    super(`unsupported in the linear-time matcher: ${what}`)
    this.name = 'RegexUnsupported'
  }
}

/** Zero-width assertions. `pyEol` is Python's `$`, translated as `(?=\n?$)`. */
export type AssertKind = 'bol' | 'eol' | 'pyEol' | 'wordB' | 'notWordB'

/** A parsed pattern. `set` matches one UTF-16 code unit. */
export type RegexNode =
  | { t: 'empty' }
  | { t: 'set'; test: (c: number) => boolean }
  | { t: 'assert'; kind: AssertKind }
  | { t: 'cat'; xs: RegexNode[] }
  | { t: 'alt'; xs: RegexNode[] }
  | { t: 'rep'; x: RegexNode; min: number; max: number }

/** Flags as in `RegExp`: case-insensitive, dot-all, multiline. */
export interface RegexFlags {
  i: boolean
  s: boolean
  m: boolean
}

/** ECMAScript LineTerminator. */
export function isLineTerminator(c: number): boolean {
  return c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029
}

/** ECMAScript `\w` without the `u` flag. */
export function isWordChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x5f
  )
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39
}

/** ECMAScript `\s`: WhiteSpace and LineTerminator. */
function isSpace(c: number): boolean {
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0) return true
  if (c < 0x1680) return false
  return (
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  )
}

/** ECMAScript Canonicalize for `i` without `u`: upper case, never non-ASCII to ASCII. */
function canonicalize(c: number): number {
  const up = String.fromCharCode(c).toUpperCase()
  if (up.length !== 1) return c
  const u = up.charCodeAt(0)
  return c >= 128 && u < 128 ? c : u
}

/** Wraps a code-unit predicate so it matches case-insensitively. */
function foldCase(test: (c: number) => boolean): (c: number) => boolean {
  return (c) => {
    if (test(c)) return true
    const canon = canonicalize(c)
    if (canon !== c && test(canon)) return true
    const low = String.fromCharCode(canon).toLowerCase()
    if (low.length !== 1) return false
    const l = low.charCodeAt(0)
    return l !== c && canonicalize(l) === canon && test(l)
  }
}

const CLASS_ESCAPES: Record<string, (c: number) => boolean> = {
  d: isDigit,
  D: (c) => !isDigit(c),
  w: isWordChar,
  W: (c) => !isWordChar(c),
  s: isSpace,
  S: (c) => !isSpace(c),
}

const CONTROL_ESCAPES: Record<string, number> = { f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09, v: 0x0b }

const HEX2 = /^[0-9a-fA-F]{2}$/
const HEX4 = /^[0-9a-fA-F]{4}$/
const PY_FLAGS = /^\(\?[aiLmsux]+\)/

class PatternParser {
  readonly #src: string
  readonly #flags: RegexFlags
  readonly #python: boolean
  #pos = 0

  constructor(src: string, flags: RegexFlags, python: boolean) {
    this.#src = src
    this.#flags = flags
    this.#python = python
  }

  parse(): RegexNode {
    if (this.#python) this.#pos = PY_FLAGS.exec(this.#src)?.[0].length ?? 0
    const node = this.#alternation()
    if (this.#pos !== this.#src.length) throw new RegexUnsupported('unbalanced )')
    return node
  }

  #peek(k = 0): string | undefined {
    return this.#src[this.#pos + k]
  }

  #alternation(): RegexNode {
    const xs = [this.#sequence()]
    while (this.#peek() === '|') {
      this.#pos++
      xs.push(this.#sequence())
    }
    return xs.length === 1 ? (xs[0] as RegexNode) : { t: 'alt', xs }
  }

  #sequence(): RegexNode {
    const xs: RegexNode[] = []
    for (let c = this.#peek(); c !== undefined && c !== '|' && c !== ')'; c = this.#peek()) {
      const atom = this.#atom()
      xs.push(atom.t === 'assert' ? atom : this.#quantified(atom))
    }
    if (xs.length === 0) return { t: 'empty' }
    return xs.length === 1 ? (xs[0] as RegexNode) : { t: 'cat', xs }
  }

  /** Applies a following `*`, `+`, `?` or `{n,m}` (and a lazy `?`, irrelevant to a yes/no match). */
  #quantified(x: RegexNode): RegexNode {
    let min: number
    let max: number
    const c = this.#peek()
    if (c === '*' || c === '+' || c === '?') {
      this.#pos++
      min = c === '+' ? 1 : 0
      max = c === '?' ? 1 : Number.POSITIVE_INFINITY
    } else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.#src.slice(this.#pos, this.#pos + 24))
      if (m === null) return x // a literal `{`, read as an atom next
      this.#pos += m[0].length
      min = Number(m[1])
      max = m[2] === undefined ? min : m[3] === '' ? Number.POSITIVE_INFINITY : Number(m[3])
      if (!Number.isSafeInteger(min) || max < min) throw new RegexUnsupported('repetition count')
    } else {
      return x
    }
    if (this.#peek() === '?') this.#pos++
    else if (this.#python && this.#peek() === '+')
      throw new RegexUnsupported('possessive quantifier')
    const c2 = this.#peek()
    if (c2 === '*' || c2 === '+' || c2 === '?') throw new RegexUnsupported('stacked quantifiers')
    return { t: 'rep', x, min, max }
  }

  #atom(): RegexNode {
    const c = this.#peek() as string
    this.#pos++
    switch (c) {
      case '.': {
        const test = this.#flags.s ? () => true : (k: number) => !isLineTerminator(k)
        return { t: 'set', test }
      }
      case '^':
        return { t: 'assert', kind: 'bol' }
      case '$':
        return { t: 'assert', kind: this.#python ? 'pyEol' : 'eol' }
      case '(':
        return this.#group()
      case '[': {
        const negate = this.#peek() === '^'
        if (negate) this.#pos++
        return this.#set(this.#classBody(), negate)
      }
      case '\\':
        return this.#escapeAtom()
      case '*':
      case '+':
      case '?':
        throw new RegexUnsupported('nothing to repeat')
      default:
        return this.#literal(c.charCodeAt(0))
    }
  }

  #literal(code: number): RegexNode {
    return this.#set((k) => k === code)
  }

  /** A set node; with `i` the members are case-folded before an inverted class is negated. */
  #set(members: (c: number) => boolean, negate = false): RegexNode {
    const test = this.#flags.i ? foldCase(members) : members
    return { t: 'set', test: negate ? (c) => !test(c) : test }
  }

  #group(): RegexNode {
    if (this.#peek() === '?') {
      const rest = this.#src.slice(this.#pos, this.#pos + 3)
      if (rest.startsWith('?:')) this.#pos += 2
      else if (this.#python && rest === '?P<') this.#skipGroupName(3)
      else if (!this.#python && rest.startsWith('?<') && rest !== '?<=' && rest !== '?<!')
        this.#skipGroupName(2)
      else throw new RegexUnsupported('lookaround, back-reference or inline flags')
    }
    const inner = this.#alternation()
    if (this.#peek() !== ')') throw new RegexUnsupported('unterminated group')
    this.#pos++
    // Wrapped so that a group holding only an assertion, `(\b)?`, still takes its quantifier.
    return { t: 'cat', xs: [inner] }
  }

  #skipGroupName(prefix: number): void {
    const end = this.#src.indexOf('>', this.#pos + prefix)
    if (end < 0) throw new RegexUnsupported('group name')
    this.#pos = end + 1
  }

  #escapeAtom(): RegexNode {
    const c = this.#peek()
    if (c === undefined) throw new RegexUnsupported('trailing backslash')
    if (c === 'b' || c === 'B') {
      this.#pos++
      return { t: 'assert', kind: c === 'b' ? 'wordB' : 'notWordB' }
    }
    if (this.#python && (c === 'A' || c === 'Z')) {
      this.#pos++
      return { t: 'assert', kind: c === 'A' ? 'bol' : 'eol' }
    }
    const cls = CLASS_ESCAPES[c]
    if (cls !== undefined) {
      this.#pos++
      return this.#set(cls)
    }
    return this.#literal(this.#escapeCode())
  }

  /** Reads a character escape after `\` and returns its code unit. */
  #escapeCode(): number {
    const c = this.#peek() as string
    this.#pos++
    const control = CONTROL_ESCAPES[c]
    if (control !== undefined) return control
    if (c === '0' && !isDigit(this.#src.charCodeAt(this.#pos))) return 0
    if (isDigit(c.charCodeAt(0))) throw new RegexUnsupported('back-reference or octal escape')
    if (c === 'k' || c === 'c' || c === 'p' || c === 'P')
      throw new RegexUnsupported(`\\${c} escape`)
    if (c === 'x' || c === 'u') {
      const n = c === 'x' ? 2 : 4
      const hex = this.#src.slice(this.#pos, this.#pos + n)
      if ((n === 2 ? HEX2 : HEX4).test(hex)) {
        this.#pos += n
        return Number.parseInt(hex, 16)
      }
    }
    return c.charCodeAt(0) // identity escape (Annex B)
  }

  /** Reads a class body after `[` (and `^`) up to and including `]`: its members' predicate. */
  #classBody(): (c: number) => boolean {
    const ranges: number[] = []
    const escapes: Array<(c: number) => boolean> = []
    let first = true
    for (;;) {
      const c = this.#peek()
      if (c === undefined) throw new RegexUnsupported('unterminated class')
      if (c === ']' && !(first && this.#python)) break
      first = false
      const lo = this.#classAtom(escapes)
      if (lo === undefined) continue
      if (this.#peek() === '-' && this.#peek(1) !== ']' && this.#peek(1) !== undefined) {
        this.#pos++
        const hi = this.#classAtom(escapes)
        if (hi === undefined || hi < lo) throw new RegexUnsupported('class range')
        ranges.push(lo, hi)
      } else {
        ranges.push(lo, lo)
      }
    }
    this.#pos++
    return (k: number): boolean => {
      for (let j = 0; j < ranges.length; j += 2)
        if (k >= (ranges[j] as number) && k <= (ranges[j + 1] as number)) return true
      for (const e of escapes) if (e(k)) return true
      return false
    }
  }

  /** One class member: a code unit, or undefined after adding a class escape to `escapes`. */
  #classAtom(escapes: Array<(c: number) => boolean>): number | undefined {
    const c = this.#peek() as string
    this.#pos++
    if (c !== '\\') return c.charCodeAt(0)
    const e = this.#peek()
    if (e === undefined) throw new RegexUnsupported('trailing backslash')
    const cls = CLASS_ESCAPES[e]
    if (cls !== undefined) {
      this.#pos++
      if (this.#peek() === '-' && this.#peek(1) !== ']') throw new RegexUnsupported('class range')
      escapes.push(cls)
      return undefined
    }
    if (e === 'b') {
      this.#pos++
      return 0x08
    }
    if (e === '-') {
      this.#pos++
      return 0x2d
    }
    if (this.#python && (e === 'A' || e === 'Z' || e === 'B'))
      throw new RegexUnsupported(`\\${e} in a class`)
    return this.#escapeCode()
  }
}

/**
 * Parses `src` into a {@link RegexNode}.
 *
 * @param dialect - `js`: the pattern is JavaScript source; `python`: it is Python source as
 *   `translatePythonRegex` reads it (its leading flag group is skipped: pass its flags in `flags`).
 * @throws {@link RegexUnsupported} when the pattern needs the backtracking engine.
 */
export function parseRegexPattern(
  src: string,
  flags: RegexFlags,
  dialect: 'js' | 'python',
): RegexNode {
  return new PatternParser(src, flags, dialect === 'python').parse()
}
