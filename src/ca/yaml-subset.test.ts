import { describe, expect, test } from 'bun:test'
import { CaError } from './errors.ts'
import { dumpYamlSubset, parseYamlSubset } from './yaml-subset.ts'

describe('yaml-subset', () => {
  test('round-trips every supported value type', () => {
    const doc = {
      ca: new Uint8Array(Buffer.from('-----BEGIN PRIVATE KEY-----\n'.repeat(10))),
      lastserial: 42,
      revoked_keys: ['2', '10'],
      empty: [],
      revocation_dates: { '2': '2026-01-01T00:00:00.000Z' },
      salt: '+abc/def==',
      plain: 'Lexington',
      tricky: "it's: yes",
    }
    const text = dumpYamlSubset(doc)
    const back = parseYamlSubset(text)
    expect(back.lastserial).toBe(42)
    expect(back.revoked_keys).toEqual(['2', '10'])
    expect(back.empty).toEqual([])
    expect(back.revocation_dates).toEqual({ '2': '2026-01-01T00:00:00.000Z' })
    expect(back.salt).toBe('+abc/def==')
    expect(back.plain).toBe('Lexington')
    expect(back.tricky).toBe("it's: yes")
    expect(Buffer.from(back.ca as Uint8Array).equals(Buffer.from(doc.ca))).toBe(true)
  })

  test('writes PyYAML SafeDumper style: sorted keys, quoted numeric strings, 76-column base64', () => {
    const text = dumpYamlSubset({ revoked_keys: ['5'], lastserial: 1, ca: new Uint8Array(100) })
    const lines = text.split('\n')
    expect(lines[0]).toBe('ca: !!binary |')
    expect(lines[1]).toHaveLength(78)
    expect(text).toContain("revoked_keys:\n- '5'\n")
    expect(text.indexOf('lastserial: 1')).toBeLessThan(text.indexOf('revoked_keys'))
  })

  test('reads PyYAML output (indented sequences, document markers, double quotes)', () => {
    const text = `---\nlastserial: 3\nrevoked_keys:\n  - '2'\n  - "3"\nserver: !!binary |\n  UEVN\n...\n`
    const doc = parseYamlSubset(text)
    expect(doc.lastserial).toBe(3)
    expect(doc.revoked_keys).toEqual(['2', '3'])
    expect(Buffer.from(doc.server as Uint8Array).toString()).toBe('PEM')
  })

  test.each([
    ['indented top level', '  a: 1\n'],
    ['no colon', 'just text\n'],
    ['bad base64', 'a: !!binary |\n  !!!!\n'],
    ['flow mapping', 'a: {b: 1}\n'],
    ['duplicate key', 'a: 1\na: 2\n'],
    ['unterminated quote', "a: 'abc\n"],
  ])('rejects %s with a typed error', (_why, text) => {
    expect(() => parseYamlSubset(text)).toThrow(CaError)
  })
})
