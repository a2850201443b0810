import { describe, expect, test } from 'bun:test'
import { decodeValue, unquote } from './decode-value.ts'

function ok<T>(r: { ok: true; value: T } | { ok: false; reason: string }): T {
  if (!r.ok) throw new Error(`expected ok: ${r.reason}`)
  return r.value
}

describe('unquote', () => {
  test("strips double quotes and spaces like upstream strip('\" '), and one pair of single quotes", () => {
    expect(unquote('"127.0.0.1"')).toBe('127.0.0.1')
    expect(unquote(' "" ')).toBe('')
    expect(unquote("'x'")).toBe('x')
    expect(unquote("'")).toBe("'")
    expect(unquote('a"b')).toBe('a"b')
  })

  test('is linear on a long inner run of spaces and quotes (was /[" ]+$/, quadratic)', () => {
    // 64 Ki characters first (c9aa72c: ~1.5 s), then 1 Mi (c9aa72c: ~6 min).
    for (const n of [32 * 1024, 512 * 1024]) {
      const inner = ' "'.repeat(n)
      const t0 = performance.now()
      expect(unquote(` "x${inner}y" `)).toBe(`x${inner}y`)
      expect(unquote(`${inner}`)).toBe('')
      expect(performance.now() - t0).toBeLessThan(100)
    }
  })
})

describe('decodeValue', () => {
  test('strings keep inline comment characters', () => {
    expect(ok(decodeValue({ type: 'string' }, 'pw#1 ;x'))).toBe('pw#1 ;x')
  })

  test('booleans accept RawConfigParser.BOOLEAN_STATES in any case', () => {
    for (const t of ['True', 'true', 'YES', 'on', '1', '"True"']) {
      expect(ok(decodeValue({ type: 'bool' }, t))).toBe(true)
    }
    for (const f of ['False', 'false', 'no', 'OFF', '0']) {
      expect(ok(decodeValue({ type: 'bool' }, f))).toBe(false)
    }
    expect(decodeValue({ type: 'bool' }, 'maybe').ok).toBe(false)
    expect(decodeValue({ type: 'bool' }, '').ok).toBe(false)
  })

  test('ints follow Python int(): sign, underscores; no decimals; bounds', () => {
    expect(ok(decodeValue({ type: 'int' }, '-5'))).toBe(-5)
    expect(ok(decodeValue({ type: 'int' }, '1_000'))).toBe(1000)
    expect(decodeValue({ type: 'int' }, '2.0').ok).toBe(false)
    expect(decodeValue({ type: 'int' }, '').ok).toBe(false)
    expect(decodeValue({ type: 'int' }, '99999999999999999999').ok).toBe(false)
    expect(decodeValue({ type: 'int', min: 0 }, '-1').ok).toBe(false)
    expect(ok(decodeValue({ type: 'port' }, '8881'))).toBe(8881)
    expect(decodeValue({ type: 'port' }, '65536').ok).toBe(false)
  })

  test('floats accept ints, decimals, exponents; reject inf/nan and junk', () => {
    expect(ok(decodeValue({ type: 'float' }, '60.0'))).toBe(60)
    expect(ok(decodeValue({ type: 'float' }, '.5'))).toBe(0.5)
    expect(ok(decodeValue({ type: 'float' }, '2'))).toBe(2)
    expect(ok(decodeValue({ type: 'float' }, '1e1'))).toBe(10)
    for (const bad of ['inf', 'nan', '1e999', '2s', '', '1.2.3']) {
      expect(decodeValue({ type: 'float' }, bad).ok).toBe(false)
    }
  })

  test('lists: Python literal, optionally wrapped in double quotes, items stripped', () => {
    expect(ok(decodeValue({ type: 'list' }, "['agent', ' webhook ']"))).toEqual([
      'agent',
      'webhook',
    ])
    expect(ok(decodeValue({ type: 'list' }, `"['agent']"`))).toEqual(['agent'])
    expect(ok(decodeValue({ type: 'list' }, '[]'))).toEqual([])
    expect(decodeValue({ type: 'list' }, '[agent]').ok).toBe(false)
    // the 2.0-era comma form became a tuple upstream and was rejected there too
    expect(decodeValue({ type: 'list' }, "'sha512', 'sha256'").ok).toBe(false)
    expect(decodeValue({ type: 'list' }, '[1, 2]').ok).toBe(false)
    expect(decodeValue({ type: 'list' }, "{'a': 1}").ok).toBe(false)
  })

  test('comma-separated lists (cert_subject_alternative_names)', () => {
    expect(ok(decodeValue({ type: 'csv' }, 'a.example, 10.0.0.5,,b'))).toEqual([
      'a.example',
      '10.0.0.5',
      'b',
    ])
    expect(ok(decodeValue({ type: 'csv' }, ''))).toEqual([])
  })

  test('database_pool_sz_ovfl "5,10"', () => {
    expect(ok(decodeValue({ type: 'pool' }, '5,10'))).toEqual([5, 10])
    expect(ok(decodeValue({ type: 'pool' }, ' 20 , 40 '))).toEqual([20, 40])
    for (const bad of ['5', '5,10,15', 'a,b', '5,', '-1,2']) {
      expect(decodeValue({ type: 'pool' }, bad).ok).toBe(false)
    }
  })

  test('severity_policy: list of {event_id, severity_label}', () => {
    expect(
      ok(
        decodeValue(
          { type: 'severity_policy' },
          `[{'event_id': 'ima.*', 'severity_label': 'error'}]`,
        ),
      ),
    ).toEqual([{ event_id: 'ima.*', severity_label: 'error' }])
    expect(decodeValue({ type: 'severity_policy' }, '[{"event_id": ".*"}]').ok).toBe(false)
    expect(decodeValue({ type: 'severity_policy' }, '["x"]').ok).toBe(false)
  })

  test('trusted_ca: keywords or list of files', () => {
    expect(ok(decodeValue({ type: 'trusted_ca' }, 'default'))).toBe('default')
    expect(ok(decodeValue({ type: 'trusted_ca' }, 'all'))).toBe('all')
    expect(ok(decodeValue({ type: 'trusted_ca' }, "['cacert.crt', 'other.crt']"))).toEqual([
      'cacert.crt',
      'other.crt',
    ])
    expect(ok(decodeValue({ type: 'trusted_ca' }, ''))).toEqual([])
    expect(decodeValue({ type: 'trusted_ca' }, 'cacert.crt').ok).toBe(false)
  })

  test('enums and log levels', () => {
    expect(ok(decodeValue({ type: 'enum', values: ['pull', 'push'] }, 'push'))).toBe('push')
    expect(decodeValue({ type: 'enum', values: ['pull', 'push'] }, 'Push').ok).toBe(false)
    expect(ok(decodeValue({ type: 'log_level' }, 'warn'))).toBe('WARNING')
    expect(decodeValue({ type: 'log_level' }, 'LOUD').ok).toBe(false)
  })
})
