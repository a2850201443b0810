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
