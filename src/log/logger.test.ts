import { afterEach, expect, test } from 'bun:test'
import { getLogger, parseLogLevel, setLogLevel, setLogSink } from './logger.ts'

const lines: string[] = []
const restore = setLogSink((l) => lines.push(l), false)
afterEach(() => {
  lines.length = 0
  setLogLevel('INFO')
  setLogSink((l) => lines.push(l), false)
})
process.on('exit', () => setLogSink(restore))

test('writes upstream-shaped text lines with fields', () => {
  getLogger('verifier').info('agent added', { agent_id: 'abc', port: 9002 })
  expect(lines[0]).toMatch(
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} - keylime\.verifier - INFO - agent added agent_id=abc port=9002$/,
  )
})

test('redacts secret fields in text and JSON', () => {
  const log = getLogger('tenant')
  log.info('keys', { v: 'AAAA', payload: 'zzz', revocation_key: 'PEM', agent_id: 'x' })
  expect(lines[0]).not.toContain('AAAA')
  expect(lines[0]).not.toContain('zzz')
  expect(lines[0]).toContain('v=[redacted]')
  setLogSink((l) => lines.push(l), true)
  log.child({ u: 'secret-u' }).warn('json')
  const parsed = JSON.parse(lines[1]!)
  expect(parsed).toMatchObject({ level: 'WARNING', name: 'keylime.tenant', u: '[redacted]' })
})

test('honours the level and keeps one line per event', () => {
  setLogLevel('WARNING')
  const log = getLogger()
  log.info('hidden')
  log.warn('multi\nline')
  expect(lines).toHaveLength(1)
  expect(lines[0]).toContain('multi line')
})

test('parses Python level names', () => {
  expect(parseLogLevel('warn')).toBe('WARNING')
  expect(parseLogLevel(' debug ')).toBe('DEBUG')
  expect(parseLogLevel('verbose')).toBeUndefined()
})

test('writes errors as describeError does: never query parameters, own properties or stack', () => {
  const secret = 'VvVvVvVvVvVvVvVvVvVvVv=='
  const drizzleLike = Object.assign(new Error(`Failed query: insert\nparams: ${secret}`), {
    query: 'insert into verifiermain',
    params: [secret],
  })
  const log = getLogger('verifier')
  log.error('write failed', { error: drizzleLike, nested: { list: [drizzleLike], v: secret } })
  log.error('thrown object', { error: { toString: 1, data: secret }, cause: `x '${secret}'` })
  setLogSink((l) => lines.push(l), true)
  log.error('write failed', { error: drizzleLike, other: drizzleLike })
  expect(lines).toHaveLength(3)
  for (const l of lines) expect(l).not.toContain(secret)
  expect(lines[0]).toContain('error="database query failed"')
  expect(lines[0]).toContain('"v":"[redacted]"')
  expect(lines[1]).toContain('error="a thrown Object"')
  expect(JSON.parse(lines[2]!)).toMatchObject({
    error: 'database query failed',
    other: 'database query failed',
  })
})

test('a field JSON cannot hold does not make logging throw', () => {
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  getLogger().info('odd fields', { cycle, big: 12n })
  expect(lines[0]).toContain('cycle="[unserializable]"')
  expect(lines[0]).toContain('big="12"')
  setLogSink((l) => lines.push(l), true)
  getLogger().info('odd fields', { cycle, agent_id: 'a' })
  expect(JSON.parse(lines[1]!)).toMatchObject({ cycle: '[unserializable]', agent_id: 'a' })
})
