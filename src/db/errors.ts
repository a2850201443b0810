/**
 * Typed errors of the database layer (`src/db`).
 *
 * Messages name the database by its redacted location only; passwords from URLs never appear.
 *
 * @module
 */
import { KeylimeError, type KeylimeErrorOptions } from '../errors.ts'

/** Stable codes of {@link DatabaseError}. */
export const DATABASE_ERROR_CODES = {
  /** `database_url` names an engine keylime-ts does not support (MySQL, SQLite proper, …). */
  unsupported: 'ERR_DB_UNSUPPORTED',
  /** `database_url` or `database_pool_sz_ovfl` is malformed. */
  badConfig: 'ERR_DB_CONFIG',
  /** An embedded data directory is held by another live process. */
  locked: 'ERR_DB_LOCKED',
  /** The database could not be opened or reached. */
  open: 'ERR_DB_OPEN',
  /** Applying migrations failed. */
  migration: 'ERR_DB_MIGRATION',
  /** The database cannot be reached or did not answer in time (HTTP 503: retry later). */
  unavailable: 'ERR_DB_UNAVAILABLE',
} as const

/** One of {@link DATABASE_ERROR_CODES}. */
export type DatabaseErrorCode = (typeof DATABASE_ERROR_CODES)[keyof typeof DATABASE_ERROR_CODES]

/**
 * A failure to configure, open, lock or migrate the database (HTTP 500 at the API edge), or an
 * outage (`ERR_DB_UNAVAILABLE`, 503).
 */
export class DatabaseError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: DatabaseErrorCode

  constructor(code: DatabaseErrorCode, message: string, options: KeylimeErrorOptions = {}) {
    super(code, message, { status: 500, ...options })
    this.name = 'DatabaseError'
  }
}
