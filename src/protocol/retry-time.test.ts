import { describe, expect, test } from 'bun:test'
import { retryTime } from './retry-time.ts'

describe('retryTime (upstream retry.retry_time)', () => {
  test('exponential with a base above 1: base ** tries', () => {
    expect([1, 2, 3].map((n) => retryTime(true, 2, n))).toEqual([2, 4, 8])
  })
  test('exponential with a base of 1 or less falls back to the base', () => {
    expect(retryTime(true, 1, 5)).toBe(1)
    expect(retryTime(true, 0.5, 3)).toBe(0.5)
  })
  test('linear: |base| every time', () => {
    expect(retryTime(false, 3, 4)).toBe(3)
    expect(retryTime(false, -2, 1)).toBe(2)
  })
})
