import { expect, test } from 'bun:test'
import { BadRequest, KeylimeError } from '../errors.ts'
import { asDatabaseUnavailable, isDatabaseUnavailable } from './database-unavailable.ts'
import { DatabaseError } from './errors.ts'

const coded = (code: string, extra: object = {}) =>
  Object.assign(new Error(code), { code, ...extra })
const wrapped = (cause: unknown) =>
  Object.assign(new Error('Failed query: select 1\nparams: '), { query: 'select 1', cause })

test('outages: lost or refused connections, timeouts, servers that cannot serve', () => {
  for (const e of [
    coded('ECONNREFUSED'),
    coded('CONNECTION_CLOSED'),
    coded('CONNECT_TIMEOUT'),
    coded('57P01', { severity: 'FATAL' }),
    coded('08006', { severity: 'FATAL' }),
    coded('53300', { severity: 'FATAL' }),
    coded('25006', { severity: 'ERROR' }),
    wrapped(coded('ECONNRESET')),
    new AggregateError([coded('ECONNREFUSED')]),
    new DatabaseError('ERR_DB_UNAVAILABLE', 'no answer', { status: 503 }),
  ]) {
    expect(isDatabaseUnavailable(e), String((e as { code?: string }).code)).toBe(true)
  }
})

test('not outages: errors the server answered, and other domains at their word', () => {
  for (const e of [
    coded('23505', { severity: 'ERROR' }),
    coded('22P02', { severity: 'ERROR' }),
    wrapped(coded('P0001', { severity: 'ERROR' })),
    new Error('plain'),
    'ECONNREFUSED',
    new KeylimeError('ERR_AGENT', 'agent unreachable', { cause: coded('ETIMEDOUT') }),
    new BadRequest('bad', { cause: coded('ECONNREFUSED') }),
  ]) {
    expect(isDatabaseUnavailable(e)).toBe(false)
  }
})

test('asDatabaseUnavailable: one 503 error keeping the cause', () => {
  const cause = wrapped(coded('CONNECTION_DESTROYED'))
  const e = asDatabaseUnavailable(cause)
  expect(e).toMatchObject({ code: 'ERR_DB_UNAVAILABLE', status: 503, cause })
  expect(e?.message).not.toContain('select')
  expect(asDatabaseUnavailable(new Error('x'))).toBeUndefined()
})
