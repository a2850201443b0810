import { expect, test } from 'bun:test'
import { decodeBase64 } from './decode-base64.ts'
import { ProtocolError } from './errors.ts'

/** Matches a thrown {@link ProtocolError} with `code`. */
const failure = (code: string) => expect.objectContaining({ name: 'ProtocolError', code })

test('standard base64 with padding decodes; whitespace is ignored', () => {
  expect(decodeBase64('aGk=').toString()).toBe('hi')
  expect(decodeBase64('aGVs\nbG8=\r\n').toString()).toBe('hello')
  expect(decodeBase64('').byteLength).toBe(0)
})

test('characters outside the alphabet and bad padding are refused', () => {
  for (const t of ['aGk', 'aG=k', 'aGk==', 'a===', 'aGk-', 'aGk_', 'aG!k', '====', 'aGk=aGk='])
    expect(() => decodeBase64(t)).toThrow(failure('ERR_BASE64_FORMAT'))
})

test('a caller-given maximum length is enforced before decoding, with the field name', () => {
  expect(() => decodeBase64('QUFB'.repeat(3), { maxLength: 8 })).toThrow(
    failure('ERR_BASE64_TOO_LONG'),
  )
  expect(() => decodeBase64('QUFBQUFB', { what: 'ak_tpm', maxLength: 4 })).toThrow(
    'ak_tpm is longer than 4 base64 characters',
  )
  expect(() => decodeBase64('x', { what: 'ek_tpm' })).toThrow('ek_tpm is not valid base64')
  expect(decodeBase64('QUFB', { maxLength: 4 }).toString()).toBe('AAA')
})

test('errors are HTTP 400 protocol errors', () => {
  expect(() => decodeBase64('*')).toThrow(ProtocolError)
  expect(() => decodeBase64('*')).toThrow(expect.objectContaining({ status: 400 }))
})
