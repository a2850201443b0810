import { expect, test } from 'bun:test'
import { pythonJsonDumps } from './python-json.ts'

// Expected strings are Python 3 `json.dumps` output (printed by python3, pasted as JSON literals).

test('default separators, null, booleans, nesting and key order', () => {
  const v = {
    type: 'revocation',
    ip: null,
    port: 9002,
    ok: true,
    list: [1, 'a', null],
    nested: { b: {} },
    e: [],
  }
  expect(pythonJsonDumps(v)).toBe(
    '{"type": "revocation", "ip": null, "port": 9002, "ok": true, "list": [1, "a", null], "nested": {"b": {}}, "e": []}',
  )
})

test('ensure_ascii escapes everything outside U+0020–U+007E, astral as surrogate pairs', () => {
  const v = { k: 'k\u00e9 \u00fc \u2028 \ud83d\ude00 \u007f \u0001 \t\n"\\/' }
  expect(pythonJsonDumps(v)).toBe(
    '{"k": "k\\u00e9 \\u00fc \\u2028 \\ud83d\\ude00 \\u007f \\u0001 \\t\\n\\"\\\\/"}',
  )
})

test('ensureAscii: false leaves non-ASCII as it is (json.dumps(ensure_ascii=False))', () => {
  const v = { k: 'k\u00e9 \u00fc \u2028 \ud83d\ude00 \u007f \u0001 \t\n"\\/' }
  expect(pythonJsonDumps(v, { ensureAscii: false })).toBe(
    '{"k": "k\u00e9 \u00fc \u2028 \ud83d\ude00 \u007f \\u0001 \\t\\n\\"\\\\/"}',
  )
})

test('undefined is dropped from objects and null in arrays, as JSON.stringify does', () => {
  expect(pythonJsonDumps({ a: undefined, b: [undefined] })).toBe('{"b": [null]}')
  expect(pythonJsonDumps(undefined)).toBe('null')
})

test('numbers are written as JavaScript writes them (integers match Python)', () => {
  expect(pythonJsonDumps([0, -1, 2 ** 53, 1.5])).toBe('[0, -1, 9007199254740992, 1.5]')
  expect(pythonJsonDumps(1.0)).toBe('1') // Python's float would print 1.0
})
