/** Unit tests of the registrar's small helpers: mutex, recent keys, challenge, agent ids. */
import { describe, expect, test } from 'bun:test'
import { FailedActivations } from './failed-activations.ts'
import { CHALLENGE_LENGTH, generateChallenge } from './generate-challenge.ts'
import { KeyedMutex } from './keyed-mutex.ts'
import { RecentKeys } from './recent-keys.ts'
import { validateAgentId } from './validate-agent-id.ts'

describe('KeyedMutex', () => {
  test('same key runs one at a time in arrival order; other keys run alongside', async () => {
    const m = new KeyedMutex()
    const log: string[] = []
    const job = (key: string, name: string, ms: number) =>
      m.run(key, async () => {
        log.push(`start ${name}`)
        await Bun.sleep(ms)
        log.push(`end ${name}`)
      })
    await Promise.all([job('a', 'a1', 20), job('a', 'a2', 1), job('b', 'b1', 5)])
    expect(log.indexOf('end a1')).toBeLessThan(log.indexOf('start a2'))
    expect(log.indexOf('start b1')).toBeLessThan(log.indexOf('end a1'))
    expect(m.size).toBe(0) // drained queues are forgotten
  })

  test('a failing job releases the key', async () => {
    const m = new KeyedMutex()
    await expect(m.run('k', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom')
    expect(await m.run('k', async () => 7)).toBe(7)
  })
})

describe('RecentKeys', () => {
  test('take-once and bounded (oldest evicted)', () => {
    const k = new RecentKeys(2)
    k.set('a', '1')
    k.set('b', '2')
    k.set('c', '3')
    expect(k.size).toBe(2)
    expect(k.take('a')).toBeUndefined()
    expect(k.take('c')).toBe('3')
    expect(k.take('c')).toBeUndefined()
  })
})

describe('FailedActivations', () => {
  test('logs the 1st, 10th, 100th failure in a row; cleared by a success; bounded', () => {
    const f = new FailedActivations(2)
    const logged: number[] = []
    for (let i = 0; i < 120; i++) {
      const { count, log } = f.record('a')
      if (log) logged.push(count)
    }
    expect(logged).toEqual([1, 10, 100])
    f.clear('a')
    expect(f.record('a')).toEqual({ count: 1, log: true })
    f.record('b')
    f.record('c') // evicts 'a', the oldest
    expect(f.record('a').count).toBe(1)
  })
})

describe('generateChallenge', () => {
  test('32 characters of [A-Za-z0-9], all 62 symbols reachable, no repeats', () => {
    const seen = new Set<string>()
    const chars = new Set<string>()
    for (let i = 0; i < 500; i++) {
      const c = generateChallenge()
      expect(c).toMatch(/^[A-Za-z0-9]{32}$/)
      expect(c.length).toBe(CHALLENGE_LENGTH)
      seen.add(c)
      for (const ch of c) chars.add(ch)
    }
    expect(seen.size).toBe(500)
    expect(chars.size).toBe(62)
  })
})

describe('validateAgentId', () => {
  test('accepts [\\w.-]+ up to 80 characters, rejects the rest with 400', () => {
    for (const ok of ['d432fbb3-d2f1-4a97-9ef7-75bd81c00000', 'a', 'A_b.c-1', 'x'.repeat(80)]) {
      expect(validateAgentId(ok)).toBe(ok)
    }
    for (const bad of ['', 'x'.repeat(81), 'a b', 'a/b', '../x', 'ü', null, 5, ['a']]) {
      expect(() => validateAgentId(bad)).toThrow(
        expect.objectContaining({ status: 400, code: 'ERR_REGISTRAR_AGENT_ID' }),
      )
    }
  })
})
