import { describe, expect, test } from 'bun:test'
import { HeapGovernor } from './heap-governor.ts'

const MiB = 2 ** 20

/** A governor on a fake RSS and clock; `step` advances one check. */
function fake(o: { soft?: number; minGapMs?: number } = {}) {
  const s = { rss: 100 * MiB, now: 0, collected: 0 }
  const g = new HeapGovernor({
    softLimitBytes: (o.soft ?? 512) * MiB,
    minGapMs: o.minGapMs ?? 5000,
    checkMs: 1000,
    rss: () => s.rss,
    now: () => s.now,
    collect: () => {
      s.collected++
    },
  })
  const step = (rssMiB: number) => {
    s.rss = rssMiB * MiB
    s.now += 1000
    return g.check()
  }
  return { g, s, step }
}

describe('HeapGovernor', () => {
  test('collects once RSS passes the soft limit, not before', () => {
    const { g, s, step } = fake()
    expect(step(300)).toBe(false)
    expect(step(511)).toBe(false)
    expect(step(600)).toBe(true)
    expect(s.collected).toBe(1)
    expect(g.collections).toBe(1)
  })

  test('the next mark follows what the collection left, never below the soft limit', () => {
    const { g, step } = fake()
    step(600) // collect
    step(450)
    step(420)
    step(430) // settled: lowest 420 → mark 630
    expect(g.mark).toBe(630 * MiB)
    expect(step(600)).toBe(false)
    expect(step(640)).toBe(true)
    step(200)
    step(210)
    step(220) // lowest 200 → 300, raised to the soft limit
    expect(g.mark).toBe(512 * MiB)
  })

  test('live data above the soft limit does not make it collect over and over', () => {
    const { s, step } = fake({ minGapMs: 0 })
    step(900) // collect: nothing to free
    step(900)
    step(900)
    step(900) // mark 1350
    for (let i = 0; i < 20; i++) step(950)
    expect(s.collected).toBe(1)
  })

  test('at most one collection per minGapMs', () => {
    const { s, step } = fake({ minGapMs: 10_000 })
    step(600) // t=1 s, collect
    for (let i = 0; i < 3; i++) step(600) // settling; mark = max(512, 900)
    // RSS grows past 900 right away: still waits for the gap
    for (let i = 0; i < 5; i++) step(1000) // t=5…9 s
    expect(s.collected).toBe(1)
    step(1000) // t=10 s: 9 s since the first
    step(1000) // t=11 s
    expect(s.collected).toBe(2)
  })
})
