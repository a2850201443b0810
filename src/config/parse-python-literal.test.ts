import { describe, expect, test } from 'bun:test'
import { parsePythonLiteral } from './parse-python-literal.ts'

function ok(text: string): unknown {
  const r = parsePythonLiteral(text)
  if (!r.ok) throw new Error(`expected ok for ${text}: ${r.reason}`)
  return r.value
}

function bad(text: string): string {
  const r = parsePythonLiteral(text)
  if (r.ok) throw new Error(`expected failure for ${text}`)
  return r.reason
}

describe('parsePythonLiteral', () => {
  test('lists of single- and double-quoted strings, with trailing comma', () => {
    expect(ok("['agent']")).toEqual(['agent'])
    expect(ok(`['a', "b",]`)).toEqual(['a', 'b'])
    expect(ok('[]')).toEqual([])
    expect(ok('  [ ]  ')).toEqual([])
  })

  test('upstream severity_policy default (dict with space before colon)', () => {
    expect(ok('[{"event_id": ".*", "severity_label" : "emergency"}]')).toEqual([
      { event_id: '.*', severity_label: 'emergency' },
    ])
  })

  test('escapes, raw strings, quotes of the other kind', () => {
    expect(ok(String.raw`'a\'b\n\x41\u00e9'`)).toBe("a'b\nAé")
    expect(ok(String.raw`r'\d+'`)).toBe(String.raw`\d+`)
    expect(ok(`"it's"`)).toBe("it's")
    expect(ok(String.raw`'\d'`)).toBe(String.raw`\d`)
    expect(ok(`['a' "b", 'c']`)).toEqual(['ab', 'c'])
  })

  test('numbers, booleans, None, and JSON spellings', () => {
    expect(ok('[1, -2, 3.5, 1e3, 1_000]')).toEqual([1, -2, 3.5, 1000, 1000])
    expect(ok('[True, False, None]')).toEqual([true, false, null])
    expect(ok('[true, false, null]')).toEqual([true, false, null])
  })

  test('dict keys named __proto__ do not touch prototypes', () => {
    const v = ok('{"__proto__": "x"}') as Record<string, unknown>
    expect(Object.getPrototypeOf(v)).toBe(Object.prototype)
    expect(Object.hasOwn(v, '__proto__')).toBe(true)
  })

  test('rejects bare words, tuples, unterminated input, trailing junk', () => {
    expect(bad('[agent]')).toContain("unknown name 'agent'")
    expect(bad("'a', 'b'")).toContain('unexpected text')
    expect(bad("('a',)")).toContain('tuples')
    expect(bad("['a'")).toContain("expected ','")
    expect(bad("'abc")).toContain('unterminated')
    expect(bad("['a'] x")).toContain('unexpected text')
    expect(bad('{1: 2}')).toContain('dict keys')
    expect(bad("'''x'''")).toContain('triple')
    expect(bad('')).toContain('end of input')
    expect(bad('1__0')).toContain('underscore')
  })

  test('bounds nesting depth instead of overflowing the stack', () => {
    expect(bad('['.repeat(100_000))).toContain('too deep')
    expect(ok(`${'['.repeat(30)}${']'.repeat(30)}`)).toBeArray()
  })
})
