import { expect, test } from 'bun:test'
import { isAccepted, normalizeEncAlg } from './algorithms.ts'

test('encryption names normalise the API 2.5 way', () => {
  expect(normalizeEncAlg('RSA')).toBe('rsa2048')
  expect(normalizeEncAlg('ecc')).toBe('ecc256')
  expect(normalizeEncAlg('rsa3072')).toBe('rsa3072')
})

test('accept lists match directly or after normalisation (upstream algorithms.is_accepted)', () => {
  expect(isAccepted('sha256', ['sha512', 'sha256'])).toBe(true)
  expect(isAccepted('sha1', ['sha512', 'sha256'])).toBe(false)
  expect(isAccepted('ecc256', ['ecc', 'rsa'])).toBe(true)
  expect(isAccepted('rsa', ['rsa2048'])).toBe(true)
  expect(isAccepted('rsa3072', ['ecc', 'rsa'])).toBe(false)
})
