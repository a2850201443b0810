import { describe, expect, test } from 'bun:test'
import { classifyAnswer, decideRetry, type RetrySettings } from './retry-policy.ts'

const flat: RetrySettings = { maxRetries: 3, retryIntervalMs: 2000, exponentialBackoff: false }
const exp: RetrySettings = { ...flat, exponentialBackoff: true }

describe('decideRetry', () => {
  test('flat interval until max_retries, then give up', () => {
    expect(decideRetry(0, flat)).toEqual({ kind: 'retry', attempt: 1, delayMs: 2000 })
    expect(decideRetry(2, flat)).toEqual({ kind: 'retry', attempt: 3, delayMs: 2000 })
    expect(decideRetry(3, flat)).toEqual({ kind: 'give-up' })
  })

  test('exponential backoff waits interval ** attempt seconds', () => {
    expect(decideRetry(0, exp)).toEqual({ kind: 'retry', attempt: 1, delayMs: 2000 })
    expect(decideRetry(1, exp)).toEqual({ kind: 'retry', attempt: 2, delayMs: 4000 })
    expect(decideRetry(2, exp)).toEqual({ kind: 'retry', attempt: 3, delayMs: 8000 })
  })

  test('no backoff for intervals of one second or less (upstream)', () => {
    const short = { ...exp, retryIntervalMs: 1000 }
    expect(decideRetry(2, short)).toEqual({ kind: 'retry', attempt: 3, delayMs: 1000 })
    const tiny = { ...exp, retryIntervalMs: 50 }
    expect(decideRetry(0, tiny)).toEqual({ kind: 'retry', attempt: 1, delayMs: 50 })
  })

  test('max_retries = 0 gives up at once', () => {
    expect(decideRetry(0, { ...flat, maxRetries: 0 })).toEqual({ kind: 'give-up' })
  })
})

describe('classifyAnswer', () => {
  test('timeouts and server errors are transient', () => {
    for (const s of [408, 500, 502, 503, 504, 599]) expect(classifyAnswer(s, null)).toBe('retry')
  })

  test('a version refusal is told apart from other 400s', () => {
    expect(classifyAnswer(400, { status: 'API version not supported: 2.9' })).toBe('version')
    expect(classifyAnswer(400, { status: 'bad nonce' })).toBe('fatal')
    expect(classifyAnswer(400, null)).toBe('fatal')
    expect(classifyAnswer(400, { status: 7 })).toBe('fatal')
  })

  test('anything else is fatal', () => {
    for (const s of [401, 403, 404, 501]) expect(classifyAnswer(s, {})).toBe('fatal')
  })
})
