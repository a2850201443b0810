/**
 * Which database failures are outages: the server cannot be reached, dropped the connection, did
 * not answer within `database_timeout`, or says it cannot serve now. They answer 503 at the API
 * edge (retry later) and mark the database down in `/health`; any other database error is a 500
 * and proves the server is up.
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'
import { DatabaseError } from './errors.ts'

/** Socket and driver codes (Node, Bun, postgres.js) of a connection that failed or was lost. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
])

/**
 * SQLSTATEs of a server that cannot serve now (PostgreSQL Appendix A): class 08 connection
 * exception, 53 insufficient resources, 57P01–57P03 shutdown or start-up, 57014 statement
 * cancelled (a timeout), 25006 read-only transaction (a standby after a failover).
 */
function outageSqlState(code: string): boolean {
  return (
    code.startsWith('08') ||
    code.startsWith('53') ||
    code === '57P01' ||
    code === '57P02' ||
    code === '57P03' ||
    code === '57014' ||
    code === '25006'
  )
}

/** Causes (and aggregated errors) looked at, at most. */
const MAX_DEPTH = 6

/**
 * Whether `err`, or an error it wraps, means the database is unreachable or cannot serve now. A
 * typed error of another domain is taken at its word (an agent that timed out is no outage).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const queue: unknown[] = [err]
  for (let i = 0; i < queue.length && i < MAX_DEPTH; i++) {
    const e = queue[i]
    if (!(e instanceof Error)) continue
    if (e instanceof KeylimeError && !(e instanceof DatabaseError)) continue
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') {
      if (code === 'ERR_DB_UNAVAILABLE' || CONNECTION_CODES.has(code)) return true
      if (/^[0-9A-Z]{5}$/.test(code) && outageSqlState(code)) return true
    }
    if (e instanceof AggregateError && Array.isArray(e.errors)) queue.push(...e.errors)
    if (e.cause !== undefined) queue.push(e.cause)
  }
  return false
}

/**
 * The 503 {@link DatabaseError} (`ERR_DB_UNAVAILABLE`) standing for `err` when it is an outage;
 * undefined otherwise. The original stays as the cause, for the log.
 */
export function asDatabaseUnavailable(err: unknown): DatabaseError | undefined {
  if (err instanceof DatabaseError && err.code === 'ERR_DB_UNAVAILABLE') return err
  if (!isDatabaseUnavailable(err)) return undefined
  return new DatabaseError('ERR_DB_UNAVAILABLE', 'Service Unavailable: database unavailable', {
    status: 503,
    cause: err,
  })
}
