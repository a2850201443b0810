/**
 * Compiles upstream exclude lists with Python `re.match` semantics.
 *
 * Upstream (`keylime/common/validators.py: valid_exclude_list`) joins the excludes as
 * `(e1)|(e2)|…` and calls `.match(path)`: the match is anchored at the start of the path only
 * (not at the end), so `/tmp` also excludes `/tmpfoo/x`. The JavaScript equivalent is
 * `^(?:(e1)|(e2)|…)` without the `m` flag. Python-only syntax is translated: named groups
 * `(?P<n>…)` → `(?<n>…)`, back-references `(?P=n)` → `\k<n>`, `\A` → `^`, `\Z` → `$`, Python's `$`
 * (end or before a final newline) → `(?=\n?$)`, and leading global flags `(?i)`, `(?s)` → JS flags.
 * Anything JavaScript cannot compile is a typed error.
 *
 * @module
 */

import { compileLinearRegex, type TextMatcher } from '../protocol/linear-regex.ts'
import { ImaError } from './errors.ts'

/** Translates one Python pattern to JavaScript source and collects its global flags. */
export function translatePythonRegex(src: string, flags: Set<string>): string {
  let out = ''
  let i = 0
  let inClass = false
  // leading global inline flags, e.g. (?i) or (?is)
  const lead = /^\(\?([aiLmsux]+)\)/.exec(src)
  if (lead) {
    for (const f of lead[1] as string) {
      if (f === 'i' || f === 's' || f === 'm') flags.add(f)
      else if (f === 'x')
        throw new ImaError('ERR_IMA_POLICY_REGEX', 'verbose (?x) regexes are not supported')
    }
    i = lead[0].length
  }
  while (i < src.length) {
    const c = src[i] as string
    if (c === '\\') {
      const n = src[i + 1]
      if (n === undefined)
        throw new ImaError('ERR_IMA_POLICY_REGEX', 'pattern ends with a backslash')
      if (!inClass && n === 'A') out += '^'
      else if (!inClass && n === 'Z') out += '$'
      else out += c + n
      i += 2
      continue
    }
    if (inClass) {
      if (c === ']') inClass = false
      out += c
      i++
      continue
    }
    if (c === '[') {
      inClass = true
      out += c
      i++
      if (src[i] === '^') {
        out += '^'
        i++
      }
      if (src[i] === ']') {
        out += '\\]'
        i++
      }
      continue
    }
    if (src.startsWith('(?P<', i)) {
      out += '(?<'
      i += 4
      continue
    }
    if (src.startsWith('(?P=', i)) {
      const end = src.indexOf(')', i)
      if (end < 0) throw new ImaError('ERR_IMA_POLICY_REGEX', 'unterminated (?P=name)')
      out += `\\k<${src.slice(i + 4, end)}>`
      i = end + 1
      continue
    }
    if (c === '$') {
      out += '(?=\\n?$)'
      i++
      continue
    }
    out += c
    i++
  }
  return out
}

/** Excludes per linear-time automaton. */
const EXCLUDE_CHUNK = 64

/**
 * Compiles an exclude list into one matcher, or null for an empty list. Excludes run in the
 * linear-time matcher (`src/protocol/linear-regex.ts`): they are tested against file names an
 * agent chooses, and a backtracking `/usr/.*\/.*\/.*\.so` spends minutes on one long name. The
 * few that need backtracking (back-references, lookaround) stay in a `RegExp`.
 *
 * @throws {ImaError} `ERR_IMA_POLICY_REGEX` naming the index of the bad entry.
 */
export function compileExcludeList(excludes: readonly string[]): TextMatcher | null {
  if (excludes.length === 0) return null
  const flags = new Set<string>()
  const parts: string[] = []
  excludes.forEach((e, idx) => {
    const f = new Set<string>()
    let js: string
    try {
      js = translatePythonRegex(e, f)
      new RegExp(js, [...f].join(''))
    } catch (err) {
      throw new ImaError(
        'ERR_IMA_POLICY_REGEX',
        `excludes[${idx}] is not a valid regular expression`,
        {
          cause: err,
        },
      )
    }
    for (const x of f) flags.add(x)
    parts.push(`(${js})`)
  })
  const flagText = [...flags].join('')
  let combined: RegExp
  try {
    combined = new RegExp(`^(?:${parts.join('|')})`, flagText)
  } catch (err) {
    throw new ImaError('ERR_IMA_POLICY_REGEX', 'the combined exclude list does not compile', {
      cause: err,
    })
  }
  // As upstream, flags found in any exclude apply to all of them.
  const options = { dialect: 'python', flags: flagText, anchor: 'start' } as const
  const linear: string[] = []
  const backtracking: string[] = []
  excludes.forEach((e, idx) => {
    if (compileLinearRegex(e, options) === null) backtracking.push(parts[idx] as string)
    else linear.push(e)
  })
  if (backtracking.length === excludes.length) return combined
  const matchers: TextMatcher[] = []
  // One automaton per chunk keeps each program under the matcher's size limit.
  for (let k = 0; k < linear.length; k += EXCLUDE_CHUNK) {
    const chunk = linear.slice(k, k + EXCLUDE_CHUNK)
    const m = compileLinearRegex(chunk, options)
    if (m !== null) matchers.push(m)
    else for (const e of chunk) matchers.push(compileLinearRegex(e, options) as TextMatcher)
  }
  if (backtracking.length > 0) matchers.push(new RegExp(`^(?:${backtracking.join('|')})`, flagText))
  if (matchers.length === 1) return matchers[0] as TextMatcher
  return { test: (path) => matchers.some((m) => m.test(path)), source: combined.source }
}
