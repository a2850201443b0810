import { describe, expect, test } from 'bun:test'
import { translatePythonRegex } from '../ima/python-regex.ts'
import { compileLinearRegex, compileTextMatcher } from './linear-regex.ts'

/** The RegExp each dialect replaced: `^(?:src)$` for js/full, the exclude wrapping for python. */
function nativeOf(src: string, dialect: 'js' | 'python', flags: string): RegExp | null {
  try {
    if (dialect === 'js') return new RegExp(`^(?:${src})$`, flags)
    return new RegExp(`^(?:(${translatePythonRegex(src, new Set())}))`, flags)
  } catch {
    return null
  }
}

function linearOf(src: string, dialect: 'js' | 'python', flags: string) {
  return compileLinearRegex(src, { dialect, flags, anchor: dialect === 'js' ? 'full' : 'start' })
}

describe('compileLinearRegex agrees with RegExp', () => {
  const cases: Array<[string, 'js' | 'python', string, string, boolean]> = [
    ['/tmp/.*', 'python', '', '/tmp/x', true],
    ['/tmp', 'python', '', '/tmpfoo/x', true], // re.match: anchored at the start only
    ['/tmp', 'python', '', 'x/tmp', false],
    ['boot_aggregate$', 'python', '', 'boot_aggregate', true],
    ['boot_aggregate$', 'python', '', 'boot_aggregate\n', true], // Python $: before a final \n
    ['boot_aggregate$', 'python', '', 'boot_aggregate\n\n', false],
    ['a\\Z', 'python', '', 'a', true],
    ['\\Aa', 'python', '', 'ab', true],
    ['(?P<d>/var)/log', 'python', '', '/var/log/x', true],
    ['[]a]+x', 'python', '', ']a]x', true],
    ['(?i)/TMP/', 'python', 'i', '/tmp/x', true],
    ['/tmp', 'python', 'm', 'x\n/tmp', true], // with m, ^ is a line anchor (as the RegExp was)
    ['a.c', 'js', 's', 'a\nc', true],
    ['a.c', 'js', '', 'a\nc', false],
    ['a.c', 'js', '', 'a\rc', false],
    ['\\bfoo\\b.*', 'js', '', 'foo bar', true],
    ['.*\\Bo.*', 'js', '', 'foo', true],
    ['[^a]', 'js', 'i', 'A', false], // the class is case-folded before it is inverted
    ['\\w+', 'js', 'i', 'ſ', false],
    ['k', 'js', 'i', '\u212a', false],
    ['s', 'js', 'i', 'S', true],
    ['x{2,3}', 'js', '', 'xxxx', false],
    ['x{,3}', 'js', '', 'x{,3}', true], // not a quantifier in JavaScript
    ['\\x41\\u0042\\0', 'js', '', 'AB\0', true],
    ['[\\d-]+', 'js', '', '1-2', true],
    ['(\\b)?a', 'js', '', 'a', true],
    ['a|', 'js', '', '', true],
  ]
  for (const [src, dialect, flags, text, want] of cases) {
    test(`${dialect} ${JSON.stringify(src)} /${flags} on ${JSON.stringify(text)} → ${want}`, () => {
      expect(nativeOf(src, dialect, flags)?.test(text)).toBe(want)
      expect(linearOf(src, dialect, flags)?.test(text)).toBe(want)
    })
  }

  test('on generated patterns and texts (differential)', () => {
    let seed = 0x2545f491
    const rand = (n: number): number => {
      seed ^= seed << 13
      seed ^= seed >>> 17
      seed ^= seed << 5
      return (seed >>> 0) % n
    }
    const pick = <T>(xs: readonly T[]): T => xs[rand(xs.length)] as T
    const atoms = ['a', 'b', '.', '\\d', '\\w', '\\s', '\\W', '[ab]', '[^a]', '[a-c]', '\\.', '/']
    atoms.push('\\b', '\\B', '^', '$', '[\\d_]', '\\n', '\\x41', '{', '}', ']', '-', '[-a]')
    atoms.push('[a-]', '[\\b]', '(?:a|b)', '(?<n>ab)', 'x', 'A')
    const quants = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '{2,}', '*?', '+?', '{,2}']
    const zeroWidth = new Set(['\\b', '\\B', '^', '$'])
    const gen = (depth: number): string => {
      const k = depth > 3 ? 2 + rand(4) : rand(6)
      if (k === 0) return `${gen(depth + 1)}|${gen(depth + 1)}`
      if (k === 1) return `(${gen(depth + 1)})${pick(quants)}`
      let s = ''
      for (let n = 1 + rand(4); n > 0; n--) {
        const a = pick(atoms)
        s += zeroWidth.has(a) ? a : a + pick(quants)
      }
      return s
    }
    const chars = ['a', 'b', 'A', 'x', '/', '.', '1', '_', '\n', ' ', '-', '{', ']', '\r', 'é', 'ſ']
    let compared = 0
    for (let t = 0; t < 3000; t++) {
      const src = gen(0)
      const flags = pick(['', 'i', 's', 'm', 'is', 'ims'])
      for (const dialect of ['js', 'python'] as const) {
        const native = nativeOf(src, dialect, flags)
        const linear = native === null ? null : linearOf(src, dialect, flags)
        if (native === null || linear === null) continue
        for (let j = 0; j < 8; j++) {
          let text = ''
          for (let q = rand(8); q > 0; q--) text += pick(chars)
          compared++
          if (linear.test(text) !== native.test(text))
            throw new Error(
              `${dialect} ${JSON.stringify(src)} /${flags} on ${JSON.stringify(text)}`,
            )
        }
      }
    }
    expect(compared).toBeGreaterThan(30_000)
  })
})

describe('compileLinearRegex runs in linear time (finding 9 audit)', () => {
  // Each pattern backtracks super-linearly in RegExp on the text given (seconds to hours).
  const hostile: Array<[string, (n: number) => string]> = [
    ['/usr/.*/.*/.*\\.so', (n) => `/usr/${'a/'.repeat(n / 2)}x`],
    ['(a+)+b', (n) => `${'a'.repeat(n)}c`],
    ['(a|a)*b', (n) => `${'a'.repeat(n)}c`],
    ['(.*)*x', (n) => 'a'.repeat(n)],
    ['(x+x+)+y', (n) => 'x'.repeat(n)],
    ['.*a.*a.*a.*b', (n) => 'a'.repeat(n)],
    ['(\\w|\\d)+$', (n) => `${'1'.repeat(n)}!`],
    ['\\s*[=:]\\s*x', (n) => ' '.repeat(n)],
  ]
  for (const [src, make] of hostile) {
    test(`${JSON.stringify(src)} on 16 KiB`, () => {
      for (const dialect of ['js', 'python'] as const) {
        const m = linearOf(src, dialect, '')
        expect(m).not.toBeNull()
        const t0 = performance.now()
        const got = m?.test(make(16 * 1024))
        expect(performance.now() - t0).toBeLessThan(100)
        expect(got).toBe(false)
      }
    })
  }

  test('a text of many distinct code units keeps the DFA cache bounded and the answer right', () => {
    const m = linearOf('.*[\u0100-\uffff]{3}z', 'js', 's') as { test(s: string): boolean }
    let text = ''
    for (let c = 0x100; c < 0x100 + 60_000; c++) text += String.fromCharCode(c)
    const t0 = performance.now()
    expect(m.test(text)).toBe(false)
    expect(m.test(`${text}z`)).toBe(true)
    expect(performance.now() - t0).toBeLessThan(1000)
  })
})

test('a pattern whose DFA is exponential (.*a.{12}) restarts its cache and stays right', () => {
  const m = linearOf('.*a.{12}', 'js', '') as { test(s: string): boolean }
  let seed = 1
  for (let k = 0; k < 40; k++) {
    let text = ''
    for (let i = 0; i < 4096; i++) {
      seed = (seed * 1103515245 + 12345) >>> 0
      text += seed & 0x10000 ? 'a' : 'b'
    }
    expect(m.test(text)).toBe(/^(?:.*a.{12})$/.test(text))
  }
})

describe('compileLinearRegex leaves backtracking constructs to RegExp', () => {
  for (const src of [
    '(a)\\1',
    '(?P<d>x)(?P=d)',
    'a(?=b)',
    'a(?!b)',
    '(?<=a)b',
    '(?i:a)',
    'a{99999}',
  ]) {
    test(JSON.stringify(src), () => {
      expect(compileLinearRegex(src, { dialect: 'python', flags: '', anchor: 'start' })).toBeNull()
    })
  }

  test('compileTextMatcher falls back to the RegExp and rejects invalid patterns', () => {
    expect(compileTextMatcher('(a)\\1', 'full').test('aa')).toBe(true)
    expect(compileTextMatcher('a+', 'full').test('aaa')).toBe(true)
    expect(compileTextMatcher('a+', 'full').source).toBe('^(?:a+)$')
    expect(() => compileTextMatcher('(', 'full')).toThrow(SyntaxError)
  })
})
