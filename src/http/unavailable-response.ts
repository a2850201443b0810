/**
 * The answer to a request that failed because the database is unreachable or stalled: 503 in
 * Keylime's envelope with `Retry-After`, instead of a 500 or a hang. During an outage every
 * request fails the same way, so the log gets one WARNING a minute (with the number held back),
 * not one line per request; `/health` and the database's own state lines say the rest.
 *
 * @module
 */
import { asDatabaseUnavailable } from '../db/database-unavailable.ts'
import { LogThrottle } from '../log/log-throttle.ts'
import type { Logger } from '../log/logger.ts'
import { envelopeResponse } from './envelope.ts'

/** Seconds a client is asked to wait before retrying. */
const RETRY_AFTER_S = 5

const throttle = new LogThrottle(60_000)

/** A 503 envelope when `err` is a database outage; undefined for any other error. */
export function unavailableResponse(err: unknown, log: Logger): Response | undefined {
  const unavailable = asDatabaseUnavailable(err)
  if (unavailable === undefined) return undefined
  throttle.write(log, 'WARNING', 'database unavailable; requests answered 503', { error: err })
  return envelopeResponse(
    503,
    'Service Unavailable: database unavailable',
    {},
    {
      'Retry-After': String(RETRY_AFTER_S),
    },
  )
}
