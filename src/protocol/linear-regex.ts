/**
 * A regular-expression matcher whose time is linear in the input, for patterns written by
 * operators and matched against text an agent chooses (IMA file names, boot event strings).
 *
 * JavaScript's `RegExp` backtracks: `^(?:/usr/.*\/.*\/.*\.so)` spends over two minutes on one
 * 16 KiB file name that does not match, and an agent picks its file names. Here the pattern is
 * compiled to a Thompson NFA and run as a lazily built DFA (each step's state set is cached by
 * the characters seen), so a test costs O(input × pattern) at worst and one table lookup per
 * character once warm. The cache is bounded; when full it starts again.
 *
 * Only a yes/no answer is given (no captures), which is all the policies need.
 *
 * @module
 */

import {
  type AssertKind,
  isLineTerminator,
  isWordChar,
  parseRegexPattern,
  type RegexFlags,
  type RegexNode,
  RegexUnsupported,
} from './parse-regex-pattern.ts'

/** What a compiled pattern offers; `RegExp` satisfies it too. */
export interface TextMatcher {
  /** True when the pattern matches `text` (see {@link LinearRegexOptions.anchor}). */
  test(text: string): boolean
  /** The pattern, as `RegExp.source` gives it, for messages. */
  readonly source: string
}

/** Options of {@link compileLinearRegex}. */
export interface LinearRegexOptions {
  /** Source syntax; `python` as read by `src/ima/python-regex.ts` (meaning stays JavaScript's). */
  dialect: 'js' | 'python'
  /** `RegExp` flags that apply (`i`, `s`, `m`). */
  flags: string
  /**
   * `start`: as `RegExp('^(?:…)')` — the match begins at 0 (Python `re.match`), or at a line
   * start with `m`; `full`: as `RegExp('^(?:…)$')`.
   */
  anchor: 'start' | 'full'
}

/** Largest NFA accepted; larger (a huge `{n,m}`) stays with `RegExp`. */
const MAX_PROGRAM = 20_000
/** Cache budget (transitions plus NFA pcs held by states) before the DFA cache starts again. */
const MAX_CACHE = 500_000

/** Instruction codes of the NFA program. */
const Op = { Char: 0, Split: 1, Jump: 2, Assert: 3, Match: 4 } as const
type Op = (typeof Op)[keyof typeof Op]

interface Inst {
  op: Op
  /** Char: the code-unit test. */
  test?: (c: number) => boolean
  /** Split/Jump targets. */
  x?: number
  y?: number
  /** Assert: the assertion. */
  kind?: AssertKind
}

/** What precedes a position: the start, a word character, a line terminator, anything else. */
const Prev = { Start: 0, Word: 1, Line: 2, Other: 3 } as const
type Prev = (typeof Prev)[keyof typeof Prev]

function prevOf(c: number): Prev {
  if (isWordChar(c)) return Prev.Word
  return isLineTerminator(c) ? Prev.Line : Prev.Other
}

interface DfaState {
  /** NFA pcs reached by the last character, before their ε-closure. */
  pcs: number[]
  prev: Prev
  /** ASCII code unit, not the text's last → next state (the common case, one array read). */
  ascii: Array<DfaState | typeof ACCEPT | typeof DEAD | undefined>
  /** Any other (code unit × 2 + is-last-character) → next state. */
  next: Map<number, DfaState | typeof ACCEPT | typeof DEAD>
  /** Whether the pattern matches when the text ends here (computed once). */
  endMatch?: boolean
}

const ACCEPT = 'accept' as const
const DEAD = 'dead' as const

function compileProgram(root: RegexNode): Inst[] {
  const prog: Inst[] = []
  const emit = (i: Inst): number => {
    if (prog.length >= MAX_PROGRAM) throw new RegexUnsupported('pattern too large')
    prog.push(i)
    return prog.length - 1
  }
  const gen = (n: RegexNode): void => {
    switch (n.t) {
      case 'empty':
        return
      case 'set':
        emit({ op: Op.Char, test: n.test })
        return
      case 'assert':
        emit({ op: Op.Assert, kind: n.kind })
        return
      case 'cat':
        for (const x of n.xs) gen(x)
        return
      case 'alt': {
        const jumps: Inst[] = []
        n.xs.forEach((x, k) => {
          if (k < n.xs.length - 1) {
            const split = { op: Op.Split, x: prog.length + 1, y: 0 }
            emit(split)
            gen(x)
            const j = { op: Op.Jump, x: 0 }
            emit(j)
            jumps.push(j)
            split.y = prog.length
          } else gen(x)
        })
        for (const j of jumps) j.x = prog.length
        return
      }
      case 'rep': {
        for (let k = 0; k < n.min; k++) gen(n.x)
        if (n.max === Number.POSITIVE_INFINITY) {
          const loop = prog.length
          const split = { op: Op.Split, x: loop + 1, y: 0 }
          emit(split)
          gen(n.x)
          emit({ op: Op.Jump, x: loop })
          split.y = prog.length
          return
        }
        const splits: Inst[] = []
        for (let k = n.min; k < n.max; k++) {
          const split = { op: Op.Split, x: prog.length + 1, y: 0 }
          emit(split)
          splits.push(split)
          gen(n.x)
        }
        for (const s of splits) s.y = prog.length
        return
      }
    }
  }
  gen(root)
  emit({ op: Op.Match })
  return prog
}

/** The matcher returned by {@link compileLinearRegex}. */
class LinearRegex implements TextMatcher {
  readonly source: string
  readonly #prog: Inst[]
  readonly #flags: RegexFlags
  #states = new Map<string, DfaState>()
  /** Transitions and state pcs cached, against {@link MAX_CACHE}. */
  #cached = 0
  #start: DfaState
  /** Scratch: generation marks for the ε-closure walk. */
  readonly #mark: Uint32Array
  #gen = 0

  constructor(prog: Inst[], flags: RegexFlags, source: string) {
    this.source = source
    this.#prog = prog
    this.#flags = flags
    this.#mark = new Uint32Array(prog.length)
    this.#start = this.#intern([0], Prev.Start)
  }

  test(text: string): boolean {
    let st = this.#start
    const n = text.length
    for (let i = 0; i < n; i++) {
      const c = text.charCodeAt(i)
      const last = i === n - 1
      const next =
        (c < 128 && !last ? st.ascii[c] : st.next.get(c * 2 + (last ? 1 : 0))) ??
        this.#step(st, c, last)
      if (next === ACCEPT) return true
      if (next === DEAD) return false
      st = next
    }
    st.endMatch ??= this.#closure(st, -1, true).match
    return st.endMatch
  }

  #intern(pcs: number[], prev: Prev): DfaState {
    const key = `${prev}:${pcs.join(',')}`
    let st = this.#states.get(key)
    if (st === undefined) {
      st = { pcs, prev, ascii: new Array(128), next: new Map() }
      this.#states.set(key, st)
      this.#cached += pcs.length + 128 // the pcs and the ASCII row
    }
    return st
  }

  /** Computes (and caches) the move from `st` on code unit `c`. */
  #step(st: DfaState, c: number, last: boolean): DfaState | typeof ACCEPT | typeof DEAD {
    const { pcs, match } = this.#closure(st, c, last)
    let next: DfaState | typeof ACCEPT | typeof DEAD
    if (match) next = ACCEPT
    else {
      const moved: number[] = []
      for (const pc of pcs) if ((this.#prog[pc] as Inst).test?.(c)) moved.push(pc + 1)
      // pc 0 (the leading `^`) is tried at every position, as RegExp.test searches; it can only
      // hold again after a line terminator with the `m` flag.
      if (moved.length === 0 && !this.#flags.m) next = DEAD
      else next = this.#intern([0, ...moved.sort(byNumber)], prevOf(c))
    }
    if (++this.#cached > MAX_CACHE) {
      this.#states = new Map()
      this.#cached = 0
      this.#start = this.#intern([0], Prev.Start)
    }
    if (c < 128 && !last) st.ascii[c] = next
    else st.next.set(c * 2 + (last ? 1 : 0), next)
    return next
  }

  /**
   * The ε-closure of `st.pcs` at a position whose next code unit is `c` (-1 at the end):
   * the Char instructions reached, and whether Match is.
   */
  #closure(st: DfaState, c: number, last: boolean): { pcs: number[]; match: boolean } {
    const gen = ++this.#gen
    const out: number[] = []
    let match = false
    const stack = [...st.pcs]
    while (stack.length > 0) {
      const pc = stack.pop() as number
      if (this.#mark[pc] === gen) continue
      this.#mark[pc] = gen
      const inst = this.#prog[pc] as Inst
      switch (inst.op) {
        case Op.Char:
          out.push(pc)
          break
        case Op.Match:
          match = true
          break
        case Op.Jump:
          stack.push(inst.x as number)
          break
        case Op.Split:
          stack.push(inst.y as number, inst.x as number)
          break
        case Op.Assert:
          if (this.#holds(inst.kind as AssertKind, st.prev, c, last)) stack.push(pc + 1)
          break
      }
    }
    return { pcs: out, match }
  }

  #holds(kind: AssertKind, prev: Prev, c: number, last: boolean): boolean {
    const m = this.#flags.m
    switch (kind) {
      case 'bol':
        return prev === Prev.Start || (m && prev === Prev.Line)
      case 'eol':
        return c < 0 || (m && isLineTerminator(c))
      case 'pyEol': // `(?=\n?$)`
        return c < 0 || (m ? isLineTerminator(c) : c === 0x0a && last)
      case 'wordB':
      case 'notWordB': {
        const boundary = (prev === Prev.Word) !== (c >= 0 && isWordChar(c))
        return kind === 'wordB' ? boundary : !boundary
      }
    }
  }
}

const byNumber = (a: number, b: number): number => a - b

/**
 * Compiles `source` (or the alternation of several sources) into a linear-time
 * {@link TextMatcher}, or returns null when a pattern needs backtracking (back-references,
 * lookaround, inline modifiers) or is too large; the caller then uses `RegExp`. Validate the
 * patterns with `RegExp` first: this function is not a syntax checker.
 *
 * @example
 * ```ts
 * const m = compileLinearRegex('/usr/.*\/.*\\.so', { dialect: 'python', flags: '', anchor: 'start' })
 * m?.test('/usr/lib/x/libc.so') // true
 * ```
 */
export function compileLinearRegex(
  source: string | readonly string[],
  o: LinearRegexOptions,
): TextMatcher | null {
  const flags = { i: o.flags.includes('i'), s: o.flags.includes('s'), m: o.flags.includes('m') }
  try {
    const xs = (typeof source === 'string' ? [source] : source).map((src) =>
      parseRegexPattern(src, flags, o.dialect),
    )
    // As `RegExp('^(?:…)')` or `RegExp('^(?:…)$')` would: with `m`, ^ and $ are line anchors.
    const body: RegexNode = xs.length === 1 ? (xs[0] as RegexNode) : { t: 'alt', xs }
    const root: RegexNode = { t: 'cat', xs: [{ t: 'assert', kind: 'bol' }, body] }
    if (o.anchor === 'full') root.xs.push({ t: 'assert', kind: 'eol' })
    const text = typeof source === 'string' ? source : source.join('|')
    return new LinearRegex(compileProgram(root), flags, text)
  } catch (err) {
    if (err instanceof RegexUnsupported) return null
    throw err
  }
}

/**
 * `new RegExp('^(?:source)$', flags)` (anchor `full`) or `'^(?:source)'` (anchor `start`) as a
 * linear-time matcher when {@link compileLinearRegex} can run it, else that `RegExp`.
 *
 * @throws SyntaxError from `RegExp` when the pattern is invalid.
 */
export function compileTextMatcher(
  source: string,
  anchor: 'start' | 'full',
  flags = '',
): TextMatcher {
  const native = new RegExp(anchor === 'full' ? `^(?:${source})$` : `^(?:${source})`, flags)
  const linear = compileLinearRegex(source, { dialect: 'js', flags, anchor })
  return linear === null ? native : { test: (text) => linear.test(text), source: native.source }
}
