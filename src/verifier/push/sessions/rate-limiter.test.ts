import { describe, expect, test } from 'bun:test'
import { RateLimiter } from './rate-limiter.ts'

describe('RateLimiter (upstream RateLimiter semantics)', () => {
  test('max per sliding window, then a 60 s block that doubles per block, capped at 3600 s', () => {
    const rl = new RateLimiter()
    const t0 = 1_000_000
    for (let i = 0; i < 3; i++) expect(rl.check('a', 3, 10, t0 + i).allowed).toBe(true)
    expect(rl.check('a', 3, 10, t0 + 5)).toEqual({ allowed: false, retryAfter: 60 })
    // still blocked after the window slid: the block, not the window, decides
    expect(rl.check('a', 3, 10, t0 + 30_005)).toEqual({ allowed: false, retryAfter: 30 })
    expect(rl.check('b', 3, 10, t0).allowed).toBe(true) // keys are independent
    let t = t0 + 61_000
    expect(rl.check('a', 3, 10, t).allowed).toBe(true)
    const blocks: number[] = []
    for (let n = 0; n < 8; n++) {
      for (let i = 0; i < 3; i++) rl.check('a', 3, 10, t)
      const v = rl.check('a', 3, 10, t)
      if (v.allowed) throw new Error('expected a block')
      blocks.push(v.retryAfter)
      t += v.retryAfter * 1000 + 11_000
    }
    expect(blocks).toEqual([120, 240, 480, 960, 1920, 3600, 3600, 3600])
  })

  test('the window slides: old requests stop counting', () => {
    const rl = new RateLimiter()
    expect(rl.check('a', 2, 10, 0).allowed).toBe(true)
    expect(rl.check('a', 2, 10, 6000).allowed).toBe(true)
    expect(rl.check('a', 2, 10, 10_001).allowed).toBe(true) // the first left the window
    expect(rl.check('a', 2, 10, 10_002).allowed).toBe(false)
  })

  test('keys are bounded (caller-chosen agent ids cannot grow memory); 0 = no limit', () => {
    const rl = new RateLimiter(100)
    for (let i = 0; i < 1000; i++) rl.check(`agent:${i}`, 5, 60, i)
    expect(rl.size).toBe(100)
    for (let i = 0; i < 50; i++) expect(rl.check('x', 0, 60, i).allowed).toBe(true)
  })
})
