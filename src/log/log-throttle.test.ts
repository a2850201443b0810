import { afterAll, expect, test } from 'bun:test'
import { LogThrottle } from './log-throttle.ts'
import { getLogger, setLogSink } from './logger.ts'

const lines: string[] = []
const restore = setLogSink((l) => lines.push(l), false)
afterAll(() => {
  setLogSink(restore)
})

test('one line per interval and key, then the count of those held back', () => {
  let now = 1_000
  const throttle = new LogThrottle(60_000, () => now)
  const log = getLogger('verifier')
  for (let i = 0; i < 400; i++) {
    throttle.write(log, 'ERROR', 'batched state write failed; will retry', { agents: i })
    throttle.write(log, 'ERROR', 'lease maintenance failed')
    now += 200
  }
  expect(lines).toHaveLength(4) // first of each, then one of each after 60 s
  expect(lines[0]).toContain('agents=0')
  expect(lines[2]).toContain('suppressed=299')
  expect(lines[2]).toContain('agents=300')
  throttle.reset('lease maintenance failed')
  expect(throttle.write(log, 'ERROR', 'lease maintenance failed')).toBe(true)
  expect(lines[4]).not.toContain('suppressed')
})
