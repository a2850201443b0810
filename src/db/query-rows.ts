/**
 * Rows of a raw SQL statement on either driver: postgres.js returns them as the result array,
 * PGlite as `result.rows`.
 *
 * @module
 */
import type { SQL } from 'drizzle-orm'
import type { Db } from './open-database.ts'

/** Runs `q` and returns its rows, whichever driver `db` uses. */
export async function queryRows<T>(db: Db, q: SQL): Promise<T[]> {
  const r = (await db.execute(q)) as unknown
  if (Array.isArray(r)) return r as T[]
  return ((r as { rows?: T[] }).rows ?? []) as T[]
}
