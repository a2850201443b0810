import { describe, expect, test } from 'bun:test'
import { ConnectLimiter, RESUME_COST } from './connect-limiter.ts'

/** Milliseconds `p` took to settle. */
async function took(p: Promise<unknown>): Promise<number> {
  const t0 = performance.now()
  await p
  return performance.now() - t0
}

describe('ConnectLimiter', () => {
  test('at most maxConnecting set-ups at once; a release lets the next one in', async () => {
    const l = new ConnectLimiter({ maxConnecting: 2, connectsPerSecond: 1_000_000 })
    await l.acquire(false)
    await l.acquire(false)
    let third = false
    const p = l.acquire(false).then(() => (third = true))
    await Bun.sleep(20)
    expect(third).toBe(false)
    expect(l.connecting).toBe(2)
    l.release()
    await p
    expect(third).toBe(true)
    expect(l.connecting).toBe(2) // the waiter took the released place
    l.release()
    l.release()
    expect(l.connecting).toBe(0)
  })

  test('full handshakes are spaced by 1/connectsPerSecond, resumptions by RESUME_COST of that', async () => {
    const l = new ConnectLimiter({ connectsPerSecond: 10 })
    await l.acquire(false) // the first slot is now
    l.release()
    expect(await took(l.acquire(false))).toBeGreaterThanOrEqual(85)
    l.release()
    const resumed = await took(l.acquire(true))
    expect(resumed).toBeGreaterThanOrEqual(85) // waits for the full slot before it
    l.release()
    const next = await took(l.acquire(false))
    expect(next).toBeGreaterThanOrEqual(100 * RESUME_COST - 5)
    expect(next).toBeLessThan(90)
    l.release()
  })

  test('a reserved slot is announced as a delay and not waited for again', async () => {
    const l = new ConnectLimiter({ connectsPerSecond: 10 })
    expect(l.reserve(false)).toBeLessThan(5)
    const second = l.reserve(false)
    expect(second).toBeGreaterThan(90)
    expect(second).toBeLessThanOrEqual(100)
    // both reservations are used without waiting
    expect(await took(l.acquire(false))).toBeLessThan(50)
    expect(await took(l.acquire(false))).toBeLessThan(50)
    // an unreserved one queues behind them
    expect(await took(l.acquire(false))).toBeGreaterThan(150)
  })
})
