/**
 * The database layer: one drizzle schema on PGlite (embedded default) or PostgreSQL.
 *
 * @example
 * ```ts
 * import { openDatabase, registrarmain } from './index.ts'
 * const kdb = await openDatabase({ url: '', keylimeDir: '/var/lib/keylime' })
 * await kdb.db.insert(registrarmain).values({ agent_id: 'd432fbb3-…', regcount: 1 })
 * ```
 *
 * @module
 */
export { DATABASE_ERROR_CODES, DatabaseError, type DatabaseErrorCode } from './errors.ts'
export {
  type Db,
  type KeylimeDatabase,
  MIGRATION_LOCK_KEY,
  type OpenDatabaseOptions,
  openDatabase,
  pingDatabase,
} from './open-database.ts'
export { type DatabaseTarget, parseDatabaseUrl } from './parse-database-url.ts'
export { queryRows } from './query-rows.ts'
export { redactDatabaseUrl } from './redact-database-url.ts'
export * from './schema.ts'
