import { afterAll, expect, test } from 'bun:test'
import { getLogger, setLogSink } from '../log/logger.ts'
import { DatabaseHealth } from './database-health.ts'

const lines: string[] = []
const restore = setLogSink((l) => lines.push(l), false)
afterAll(() => {
  setLogSink(restore)
})

const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })
const log = getLogger('db')

test('outcomes move the state; one line per change, a reminder a minute while down', () => {
  let now = 1_000_000
  lines.length = 0
  const h = new DatabaseHealth({ location: 'pg', probe: async () => {}, log, now: () => now })
  expect(h.status).toEqual({ state: 'up', since: now })
  h.report(new Error('syntax error')) // the server answered: still up
  expect(h.up).toBe(true)
  for (let i = 0; i < 500; i++) {
    h.report(refused())
    now += 200
  }
  expect(h.status).toMatchObject({ state: 'down', since: 1_000_000 })
  expect(h.status.reason).toContain('ECONNREFUSED')
  expect(lines.filter((l) => l.includes('ERROR - database unavailable'))).toHaveLength(1)
  expect(lines.filter((l) => l.includes('WARNING - database still unavailable'))).toHaveLength(1)
  h.report(Object.assign(new Error('duplicate key'), { code: '23505', severity: 'ERROR' }))
  expect(h.status).toEqual({ state: 'up', since: now })
  expect(lines.at(-1)).toContain('INFO - database available again location=pg down_s=100')
  expect(lines).toHaveLength(3)
})

test('an idle process probes: it notices an outage and the recovery by itself', async () => {
  let serving = true
  let probes = 0
  const h = new DatabaseHealth({
    location: 'pg',
    log,
    probeMs: 40,
    probe: async () => {
      probes++
      if (!serving) throw new Error('whatever the probe says')
    },
  })
  h.start()
  try {
    await Bun.sleep(150)
    expect(probes).toBeGreaterThan(0)
    expect(h.up).toBe(true)
    serving = false
    await Bun.sleep(150)
    expect(h.status.state).toBe('down')
    serving = true
    await Bun.sleep(150)
    expect(h.up).toBe(true)
    // a process whose statements report needs no probe
    const before = probes
    const busy = setInterval(() => h.report(), 10)
    await Bun.sleep(150)
    clearInterval(busy)
    expect(probes - before).toBeLessThanOrEqual(1)
  } finally {
    h.stop()
  }
})
