import { describe, expect, test } from 'bun:test'
import { ConfigError } from './errors.ts'
import { createIniStore, getIniEntry, parseIni } from './parse-ini.ts'

function value(text: string, section: string, option: string): string | undefined {
  return getIniEntry(parseIni(text, 'x.conf'), section, option)?.value
}

function syntaxError(text: string): ConfigError {
  try {
    parseIni(text, 'bad.conf')
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('ERR_CONFIG_SYNTAX')
    return err as ConfigError
  }
  throw new Error('expected a ConfigError')
}

describe('parseIni', () => {
  test('reads sections with = and : delimiters, lower-cases option names, strips values', () => {
    const store = parseIni('[verifier]\nPort = 8881\nIP:  "127.0.0.1"  \n[Other]\nk=v\n', 'a.conf')
    expect(getIniEntry(store, 'verifier', 'port')).toEqual({
      value: '8881',
      file: 'a.conf',
      line: 2,
    })
    expect(getIniEntry(store, 'verifier', 'ip')?.value).toBe('"127.0.0.1"')
    // section names stay case-sensitive
    expect(store.sections.has('Other')).toBe(true)
    expect(store.sections.has('other')).toBe(false)
  })

  test('splits at the first delimiter, so later = and : stay in the value', () => {
    expect(value('[s]\nurl = postgresql://u:p@h:5432/db?x=1\n', 's', 'url')).toBe(
      'postgresql://u:p@h:5432/db?x=1',
    )
    expect(value('[s]\ntime: 12:30\n', 's', 'time')).toBe('12:30')
  })

  test('full-line # and ; comments are skipped, inline ones are kept like Python', () => {
    const text = '# head\n; other\n[s]\n  # indented comment\na = x # not a comment\nb = y ; kept\n'
    expect(value(text, 's', 'a')).toBe('x # not a comment')
    expect(value(text, 's', 'b')).toBe('y ; kept')
    expect(value('[s]\nurl = http://h/p#frag\n', 's', 'url')).toBe('http://h/p#frag')
  })

  test('empty values are empty strings', () => {
    expect(value('[s]\nk = \nj =\n', 's', 'k')).toBe('')
    expect(value('[s]\nk = \nj =\n', 's', 'j')).toBe('')
  })

  test('indented lines continue the previous value; blank lines inside are kept, trailing dropped', () => {
    const text = '[s]\nlist = a,\n  b,\n\n  c\n\n# comment\n    d\n\nnext = 1\n'
    expect(value(text, 's', 'list')).toBe('a,\nb,\n\nc\n\nd')
    expect(value(text, 's', 'next')).toBe('1')
  })

  test('an indented first option sets the indentation level, as in Python', () => {
    const text = '[s]\n  a = 1\n  b = 2\n    c\n'
    expect(value(text, 's', 'a')).toBe('1')
    expect(value(text, 's', 'b')).toBe('2\nc')
  })

  test('section header ignores text after the last ]', () => {
    expect(value('[s] trailing\nk = v\n', 's', 'k')).toBe('v')
  })

  test('CRLF and CR line endings', () => {
    expect(value('[s]\r\na = 1\r\nb = 2\r', 's', 'b')).toBe('2')
  })

  test('DEFAULT supplies fallbacks to every section', () => {
    const store = parseIni('[DEFAULT]\nk = d\n[a]\n[b]\nk = b\n', 'x.conf')
    expect(getIniEntry(store, 'a', 'k')?.value).toBe('d')
    expect(getIniEntry(store, 'b', 'k')?.value).toBe('b')
    expect(getIniEntry(store, 'missing', 'k')?.value).toBe('d')
  })

  test('later files merge into earlier ones and win per option', () => {
    const store = createIniStore()
    parseIni('[s]\na = 1\nb = 1\n', 'base.conf', store)
    parseIni('[s]\nb = 2\n[t]\nc = 3\n', 'snippet.conf', store)
    expect(getIniEntry(store, 's', 'a')).toMatchObject({ value: '1', file: 'base.conf' })
    expect(getIniEntry(store, 's', 'b')).toMatchObject({
      value: '2',
      file: 'snippet.conf',
      line: 2,
    })
    expect(getIniEntry(store, 't', 'c')?.value).toBe('3')
  })

  test('duplicate option within one file is an error with file and line', () => {
    const err = syntaxError('[s]\na = 1\n\nA = 2\n')
    expect(err.location).toMatchObject({ file: 'bad.conf', line: 4, section: 's', option: 'a' })
    expect(err.message).toContain('bad.conf:4')
  })

  test('duplicate section within one file is an error', () => {
    expect(syntaxError('[s]\na = 1\n[t]\n[s]\n').location.line).toBe(4)
  })

  test('option before any section is an error', () => {
    expect(syntaxError('\n# c\nk = v\n').location.line).toBe(3)
  })

  test('a line without delimiter is an error', () => {
    expect(syntaxError('[s]\njunk line\n').location).toMatchObject({ line: 2, section: 's' })
    expect(syntaxError('[s]\n= value\n').location.line).toBe(2)
    expect(syntaxError('[]\n').location.line).toBe(1)
  })

  describe('runs in linear time on hostile lines (finding 9: OPTION_LINE backtracked quadratically)', () => {
    const MiB = 1024 * 1024
    /** Parses `text`, returning the elapsed milliseconds and the error code if any. */
    const timed = (text: string): { ms: number; code?: string } => {
      const t0 = performance.now()
      try {
        parseIni(text, 'hostile.conf')
        return { ms: performance.now() - t0 }
      } catch (err) {
        return { ms: performance.now() - t0, code: (err as ConfigError).code }
      }
    }
    // Each shape is tried at 64 Ki characters (c9aa72c: seconds) and then at ~1 MiB (minutes).
    // Limits: 100 ms for one long line (the bound); many-line shapes get 400 ms (~30 ms here).
    const shapes: Array<[string, (n: number) => string, string | undefined, number?]> = [
      ['key, spaces, no delimiter', (n) => `[s]\nkey${' '.repeat(n)}x\n`, 'ERR_CONFIG_SYNTAX'],
      [
        'key, tabs and spaces, no delimiter',
        (n) => `[s]\nk${' \t'.repeat(n / 2)}x`,
        'ERR_CONFIG_SYNTAX',
      ],
      ['words and spaces, no delimiter', (n) => `[s]\n${'a '.repeat(n / 2)}b`, 'ERR_CONFIG_SYNTAX'],
      ['spaces then a late delimiter', (n) => `[s]\nkey${' '.repeat(n)}= v\n`, undefined],
      ['only spaces before the delimiter', (n) => `[s]\n${' '.repeat(n)}=\n`, 'ERR_CONFIG_SYNTAX'],
      [
        'value padded with spaces',
        (n) => `[s]\nk =${' '.repeat(n / 2)}v${' '.repeat(n / 2)}\n`,
        undefined,
      ],
      [
        'many short continuation lines',
        (n) => `[s]\nk = v\n${'  x\n'.repeat(n / 4)}`,
        undefined,
        400,
      ],
      ['many delimiters', (n) => `[s]\nk${'=:'.repeat(n / 2)}\n`, undefined],
    ]
    for (const [name, make, code, limit = 100] of shapes) {
      test(name, () => {
        for (const n of [64 * 1024, MiB - 64]) {
          const r = timed(make(n))
          expect(r.code).toBe(code)
          expect(r.ms).toBeLessThan(limit)
        }
      })
    }

    test('a 1 MiB line keeps the upstream split: first delimiter, stripped name and value', () => {
      const pad = ' '.repeat(MiB / 2 - 16)
      const store = parseIni(`[s]\nKey${pad}:${pad}a = b\n`, 'x.conf')
      expect(getIniEntry(store, 's', 'key')?.value).toBe('a = b')
    })
  })

  test('oversized input is rejected', () => {
    expect(syntaxError(`[s]\nk = ${'x'.repeat(1024 * 1024)}\n`).reason).toContain('larger')
  })
})
