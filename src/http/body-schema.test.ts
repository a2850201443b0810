import { describe, expect, test } from 'bun:test'
import { Conflict, isKeylimeError } from '../errors.ts'
import {
  bodySchema,
  custom,
  FieldError,
  int,
  jsonObject,
  jsonText,
  oneOf,
  optional,
  parseBody,
  string,
  stringList,
} from './body-schema.ts'

/** The 400 message `fn` throws, or 'ok'. */
function refusal(fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (err) {
    if (!isKeylimeError(err)) throw err
    expect(err.status).toBe(400)
    return err.message
  }
}

const one = <T>(field: Parameters<typeof bodySchema>[0][string], value: unknown) =>
  parseBody(bodySchema({ f: field }), value === undefined ? {} : { f: value }).f as T

describe('parseBody', () => {
  const schema = bodySchema(
    {
      name: string({ nonEmpty: true, max: 8 }),
      port: optional(int({ min: 1, max: 65535, fromString: true }), 80),
      tags: optional(stringList({ maxItems: 2, maxLength: 4 }), []),
    },
    { required: ['port', 'name'], missing: (k) => `'${k}'`, invalid: (m) => `Exception: ${m}` },
  )

  test('typed output, defaults for null and absent', () => {
    const out = parseBody(schema, { name: 'a', port: '9002', extra: 1 })
    expect(out).toEqual({ name: 'a', port: 9002, tags: [] })
    expect(parseBody(schema, { name: 'a', port: null }).port).toBe(80)
  })

  test('required keys first, in the order listed, worded by the schema', () => {
    expect(refusal(() => parseBody(schema, {}))).toBe("'port'")
    expect(refusal(() => parseBody(schema, { port: 1 }))).toBe("'name'")
    // present with null satisfies the key requirement; the field then refuses the value
    expect(refusal(() => parseBody(schema, { port: 1, name: null }))).toBe(
      'Exception: name must be a string',
    )
  })

  test('fields in declaration order; invalid wording applied', () => {
    expect(refusal(() => parseBody(schema, { name: '', port: 0 }))).toBe(
      'Exception: name must be a string',
    )
    expect(refusal(() => parseBody(schema, { name: 'a', port: 0 }))).toBe(
      'Exception: port must be an integer',
    )
    expect(refusal(() => parseBody(schema, { name: 'a', port: 1, tags: ['x', 'y', 'z'] }))).toBe(
      'Exception: tags must be a list of strings',
    )
  })

  test('inherited keys do not count as present', () => {
    const s = bodySchema({ toString: optional(string(), 'none') }, { required: ['constructor'] })
    expect(refusal(() => parseBody(s, {}))).toBe('constructor is required')
    expect(parseBody(s, { constructor: 1 }).toString).toBe('none')
  })

  test("a field's own typed error passes through unchanged", () => {
    const s = bodySchema({
      f: custom(() => {
        throw new Conflict('taken')
      }),
    })
    try {
      parseBody(s, { f: 1 })
      throw new Error('not refused')
    } catch (err) {
      expect(err).toBeInstanceOf(Conflict)
    }
  })
})

describe('fields', () => {
  test('string: type, empty, max, reject, message', () => {
    const f = string({ nonEmpty: true, max: 3, reject: /\s/, message: 'bad ip' })
    expect(one(f, 'abc')).toBe('abc')
    for (const v of [undefined, 1, '', 'abcd', 'a b'])
      expect(refusal(() => one(f, v))).toBe('bad ip')
  })

  test('int: integers in bounds; numeric strings only when allowed', () => {
    expect(one(int({ min: 1 }), 5)).toBe(5)
    expect(refusal(() => one(int(), '5'))).toBe('f must be an integer')
    expect(one(int({ fromString: true }), '5')).toBe(5)
    for (const v of [1.5, '', 'x', null, 0, 11]) {
      expect(refusal(() => one(int({ min: 1, max: 10, fromString: true }), v))).toBe(
        'f must be an integer',
      )
    }
  })

  test('stringList: bounded count and item length', () => {
    const f = stringList({ maxItems: 2, maxLength: 3, message: (k) => `${k}: algorithms` })
    expect(one(f, ['ab', 'cd'])).toEqual(['ab', 'cd'])
    for (const v of ['ab', ['abc'], ['a', 'b', 'c'], [1]]) {
      expect(refusal(() => one(f, v))).toBe('f: algorithms')
    }
  })

  test('jsonText: a string as sent, anything else serialised; optionally validated', () => {
    expect(one(jsonText(), '{bad')).toBe('{bad')
    expect(one(jsonText(), { a: 1 })).toBe('{"a":1}')
    expect(refusal(() => one(jsonText({ validate: true }), '{bad'))).toBe('f is not valid JSON')
    expect(one(jsonText({ validate: true }), '[1]')).toBe('[1]')
  })

  test('jsonObject: objects only', () => {
    expect(one(jsonObject(), { a: 1 })).toEqual({ a: 1 })
    for (const v of [null, [], 'x', 1]) {
      expect(refusal(() => one(jsonObject(), v))).toBe('f must be a JSON object')
    }
  })

  test('oneOf: the values, or the fallback', () => {
    expect(one(oneOf(['pull', 'push']), 'push')).toBe('push')
    expect(refusal(() => one(oneOf(['pull', 'push']), 'x'))).toBe('f must be one of pull, push')
    expect(one(oneOf(['pull', 'push'], 'pull'), 3)).toBe('pull')
  })

  test('optional: null and absent read as the fallback, other values checked', () => {
    const f = optional(string(), '')
    expect(one(f, undefined)).toBe('')
    expect(one(f, null)).toBe('')
    expect(refusal(() => one(f, 1))).toBe('f must be a string')
  })

  test('custom: FieldError is a refusal', () => {
    const f = custom((v) => {
      if (v !== 1) throw new FieldError('one only')
      return 1
    })
    expect(one(f, 1)).toBe(1)
    expect(refusal(() => one(f, 2))).toBe('one only')
  })
})
