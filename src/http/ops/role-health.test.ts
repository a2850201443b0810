import { afterAll, expect, test } from 'bun:test'
import { DatabaseHealth } from '../../db/database-health.ts'
import { getLogger, setLogSink } from '../../log/logger.ts'
import { startServer } from '../serve.ts'
import { roleHealth, withReason } from './role-health.ts'

const lines: string[] = []
const restore = setLogSink((l) => lines.push(l), false)
afterAll(() => {
  setLogSink(restore)
})

const log = getLogger('test')
const refused = () =>
  Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })

test('ok while the database serves and every listener serves; each failure is a reason', async () => {
  const health = new DatabaseHealth({ location: 'pg', probe: async () => {}, log })
  const database = { location: 'pg', health }
  const ok = () => new Response('ok')
  const a = startServer({ name: 'a', fetch: ok, hostname: '127.0.0.1', port: 0, log })
  const b = startServer({ name: 'b', fetch: ok, hostname: '127.0.0.1', port: 0, log })
  try {
    const up = roleHealth(database, [a, b])
    expect(up).toMatchObject({ status: 'ok', database: { location: 'pg', state: 'up' } })
    expect(up.reason).toBeUndefined()
    expect(up.listeners).toEqual([
      { name: 'a', url: a.url, state: 'serving' },
      { name: 'b', url: b.url, state: 'serving' },
    ])

    const stopping = a.stop(1000)
    expect(a.state).toBe('stopping')
    await stopping
    expect(a.state).toBe('closed')
    expect(roleHealth(database, [a, b])).toMatchObject({
      status: 'unhealthy',
      reason: `listener a (${a.url}) closed`,
    })

    health.report(refused())
    const both = roleHealth(database, [a, b])
    expect(both.reason).toStartWith('database unavailable: ')
    expect(both.reason).toContain('ECONNREFUSED')
    expect(both.reason).toEndWith(`; listener a (${a.url}) closed`)
    expect(both.database.state).toBe('down')
  } finally {
    await Promise.all([a.stop(0), b.stop(0)])
  }
})

test('no listener yet is unhealthy; a role adds reasons of its own', () => {
  const health = new DatabaseHealth({ location: 'memory://', probe: async () => {}, log })
  const none = roleHealth({ location: 'memory://', health }, [])
  expect(none).toMatchObject({ status: 'unhealthy', reason: 'no listener started' })
  expect(withReason(none, 'writes failing').reason).toBe('no listener started; writes failing')
  const fine = { ...none, status: 'ok' as const, reason: undefined }
  expect(withReason(fine, undefined)).toBe(fine)
  expect(withReason(fine, 'writes failing')).toMatchObject({
    status: 'unhealthy',
    reason: 'writes failing',
  })
})
