import { describe, expect, test } from 'bun:test'
import { compareApiVersions, newestCommonVersion } from './api-versions.ts'

describe('API versions', () => {
  test('compare numerically, not as text', () => {
    expect(compareApiVersions('2.10', '2.9')).toBeGreaterThan(0)
    expect(compareApiVersions('2.1', '3.0')).toBeLessThan(0)
    expect(compareApiVersions('2.6', '2.6')).toBe(0)
  })
  test('newest common version; non-string entries of the other side do not count', () => {
    expect(newestCommonVersion(['2.1', '2.2', '2.10'], ['2.10', '2.1'])).toBe('2.10')
    expect(newestCommonVersion(['2.1', '2.2'], [2.2, '2.1', null])).toBe('2.1')
    expect(newestCommonVersion(['2.1'], ['3.0'])).toBeUndefined()
  })
})
