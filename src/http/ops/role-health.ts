/**
 * The verdict of a role's `GET /health` from what every role has: its database and its
 * listeners. `ok` only when the database serves and every listener the role started is still
 * serving; otherwise `unhealthy` (HTTP 503) with the reasons, the database first. A role adds
 * reasons of its own (the verifier: state writes that keep failing) with {@link withReason}.
 *
 * @module
 */
import type { DatabaseHealthStatus } from '../../db/database-health.ts'
import type { KeylimeDatabase } from '../../db/index.ts'
import type { ListenerState, RunningServer } from '../serve.ts'

/** What `/health` shows of one listener. */
export interface ListenerHealth {
  name: string
  url: string
  state: ListenerState
}

/** The shared part of every role's `/health` results. */
export interface RoleHealth {
  status: 'ok' | 'unhealthy'
  /** Why it is unhealthy (`; `-separated when several); absent when ok. */
  reason?: string
  database: DatabaseHealthStatus & { location: string }
  listeners: ListenerHealth[]
}

/**
 * The health of a role from its database and its listeners.
 *
 * @param database the role's database (its location and tracked state)
 * @param servers the listeners the role started (read at each call: they may start later)
 */
export function roleHealth(
  database: Pick<KeylimeDatabase, 'location' | 'health'>,
  servers: readonly RunningServer[],
): RoleHealth {
  const db = { location: database.location, ...database.health.status }
  const listeners = servers.map((s) => ({ name: s.name, url: s.url, state: s.state }))
  const reasons: string[] = []
  if (db.state === 'down') reasons.push(`database unavailable: ${db.reason ?? ''}`)
  if (listeners.length === 0) reasons.push('no listener started')
  for (const l of listeners) {
    if (l.state !== 'serving') reasons.push(`listener ${l.name} (${l.url}) ${l.state}`)
  }
  return withReason({ status: 'ok', database: db, listeners }, reasons.join('; ') || undefined)
}

/** `health` with one more reason to be unhealthy (unchanged when `reason` is undefined). */
export function withReason<H extends RoleHealth>(health: H, reason: string | undefined): H {
  if (reason === undefined) return health
  const all = health.reason === undefined ? reason : `${health.reason}; ${reason}`
  return { ...health, status: 'unhealthy', reason: all }
}
