import { expect, test } from 'bun:test'
import { DatabaseError } from '../db/errors.ts'
import { BadRequest, KeylimeError } from '../errors.ts'
import { BodyTooLarge, ClientAborted } from '../http/body-errors.ts'
import { UnsupportedMediaType } from '../http/read-json.ts'
import { invalidData, REGISTRAR_ERROR_STATUS, RegistrarError } from './errors.ts'
import { failureReason, REGISTRAR_FAILURE_REASONS } from './failure-reason.ts'

test('every registrar error code has a reason of its own kind', () => {
  for (const code of Object.keys(
    REGISTRAR_ERROR_STATUS,
  ) as (keyof typeof REGISTRAR_ERROR_STATUS)[]) {
    const reason = failureReason(REGISTRAR_ERROR_STATUS[code], new RegistrarError(code, 'x'))
    expect(reason, code).not.toBe('other')
    expect(REGISTRAR_FAILURE_REASONS).toContain(reason)
  }
  expect(failureReason(400, new RegistrarError('ERR_REGISTRAR_AUTH_TAG', 'x'))).toBe('bad_auth_tag')
  expect(failureReason(400, invalidData('ekcert', 'ERR_REGISTRAR_EK_CERT'))).toBe('ek_rejected')
  expect(failureReason(400, invalidData('no ek_tpm'))).toBe('malformed_request')
})

test('errors of the HTTP edge and the database', () => {
  expect(failureReason(400, new BadRequest('bad json', { code: 'ERR_INVALID_JSON' }))).toBe(
    'malformed_request',
  )
  expect(failureReason(415, new UnsupportedMediaType('text/xml'))).toBe('malformed_request')
  expect(failureReason(413, new BodyTooLarge(10))).toBe('too_large')
  expect(failureReason(400, new ClientAborted())).toBe('client_aborted')
  const outage = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })
  expect(failureReason(503, outage)).toBe('database_unavailable')
  const timeout = new DatabaseError('ERR_DB_UNAVAILABLE', 'timed out', { status: 503 })
  expect(failureReason(503, timeout)).toBe('database_unavailable')
  expect(failureReason(503, new KeylimeError('ERR_REGISTRAR_BUSY', 'retry', { status: 503 }))).toBe(
    'busy',
  )
})

test('answers without an error, and anything unknown, stay in the closed set', () => {
  expect(failureReason(413, undefined)).toBe('too_large')
  expect(failureReason(408, undefined)).toBe('body_timeout')
  expect(failureReason(503, undefined)).toBe('busy')
  expect(failureReason(404, undefined)).toBe('unknown_route')
  expect(failureReason(418, undefined)).toBe('other')
  expect(failureReason(500, new Error('bug'))).toBe('internal')
  expect(failureReason(409, new KeylimeError('ERR_SOMETHING_NEW', 'x', { status: 409 }))).toBe(
    'other',
  )
})
