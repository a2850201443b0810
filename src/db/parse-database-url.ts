/**
 * Interpretation of Keylime's `database_url` (verifier.conf / registrar.conf, keylime-api.md §3.7)
 * for keylime-ts, which stores everything in PostgreSQL: a real server through postgres.js, or
 * PGlite (PostgreSQL compiled to WebAssembly) embedded in a directory.
 *
 * | `database_url`                    | target                                                   |
 * | --------------------------------- | -------------------------------------------------------- |
 * | `''` or `sqlite`                  | PGlite in `<keylimeDir>/pglite`                          |
 * | `sqlite:////abs/path/x.sqlite`    | PGlite in `/abs/path/x.pglite` (SQLite itself is not used) |
 * | `memory://`                       | in-memory PGlite (tests)                                 |
 * | `postgresql://…`, `postgres://…`  | PostgreSQL (a SQLAlchemy `+driver` suffix is dropped)    |
 * | `mysql…` and anything else        | {@link DatabaseError} `ERR_DB_UNSUPPORTED`               |
 *
 * @module
 */
import { isAbsolute, resolve } from 'node:path'
import { DatabaseError } from './errors.ts'
import { redactDatabaseUrl } from './redact-database-url.ts'

/** Where the embedded (PGlite) database lives. */
export interface PgliteTarget {
  kind: 'pglite'
  /** Absolute data directory, or `null` for an in-memory database. */
  dataDir: string | null
  /** What to show in logs: the directory, or `memory://`. */
  location: string
  /** Set when the URL named a SQLite file that was mapped to a PGlite directory. */
  sqliteFile?: string
}

/** A PostgreSQL server reached through postgres.js. */
export interface PostgresTarget {
  kind: 'postgres'
  /** The URL to connect with (scheme normalised to `postgresql://`); contains credentials. */
  url: string
  /** The URL with its password redacted, for logs and messages. */
  location: string
}

/** Result of {@link parseDatabaseUrl}. */
export type DatabaseTarget = PgliteTarget | PostgresTarget

/**
 * Maps a Keylime `database_url` to a storage target.
 *
 * @param url - The configured `database_url` (whitespace is trimmed).
 * @param keylimeDir - `KEYLIME_DIR`, home of the default embedded database.
 * @throws {DatabaseError} `ERR_DB_UNSUPPORTED` for engines other than PostgreSQL/PGlite,
 *   `ERR_DB_CONFIG` for a malformed URL.
 */
export function parseDatabaseUrl(url: string, keylimeDir: string): DatabaseTarget {
  const value = url.trim()
  if (value === '' || value.toLowerCase() === 'sqlite') {
    const dataDir = resolve(keylimeDir, 'pglite')
    return { kind: 'pglite', dataDir, location: dataDir }
  }
  if (value === 'memory://' || value === 'memory:') {
    return { kind: 'pglite', dataDir: null, location: 'memory://' }
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1]?.toLowerCase()
  if (scheme === undefined) {
    throw new DatabaseError(
      'ERR_DB_CONFIG',
      `database_url ${redactDatabaseUrl(value)} is not a URL; use 'sqlite' (embedded), postgresql://… or leave it empty`,
    )
  }
  const engine = scheme.split('+')[0]
  if (engine === 'sqlite') return sqliteToPglite(value)
  if (engine === 'postgresql' || engine === 'postgres') {
    const rest = value.slice(scheme.length + 1)
    if (!rest.startsWith('//')) {
      throw new DatabaseError(
        'ERR_DB_CONFIG',
        `database_url ${redactDatabaseUrl(value)} is malformed; expected postgresql://user:password@host:port/dbname`,
      )
    }
    const normalised = `postgresql:${rest}`
    try {
      new URL(normalised)
    } catch (cause) {
      throw new DatabaseError(
        'ERR_DB_CONFIG',
        `database_url ${redactDatabaseUrl(value)} is malformed; expected postgresql://user:password@host:port/dbname`,
        { cause },
      )
    }
    return { kind: 'postgres', url: normalised, location: redactDatabaseUrl(normalised) }
  }
  throw new DatabaseError(
    'ERR_DB_UNSUPPORTED',
    `database_url uses '${engine}', which keylime-ts does not support: it stores data in PostgreSQL only. ` +
      `Use postgresql://user:password@host/dbname, or leave database_url empty (or 'sqlite') for the embedded database`,
  )
}

/**
 * `sqlite:///relative.sqlite` (three slashes) is relative to the working directory in
 * SQLAlchemy, `sqlite:////abs/x.sqlite` (four) absolute; both become a sibling `.pglite` dir.
 */
function sqliteToPglite(value: string): PgliteTarget {
  const match = /^sqlite(?:\+[a-z0-9]+)?:\/\/\/(.*)$/i.exec(value)
  const raw = match?.[1]?.split('?')[0]
  if (raw === undefined || raw === '' || raw === ':memory:') {
    if (raw === ':memory:' || value.toLowerCase().replace(/(?<!\/)\/+$/, '') === 'sqlite:') {
      return { kind: 'pglite', dataDir: null, location: 'memory://' }
    }
    throw new DatabaseError(
      'ERR_DB_CONFIG',
      `database_url ${redactDatabaseUrl(value)} is malformed; expected sqlite:////absolute/path/file.sqlite`,
    )
  }
  const file = isAbsolute(raw) ? raw : resolve(raw)
  const dataDir = file.replace(/\.(sqlite3?|db)$/i, '') + '.pglite'
  return { kind: 'pglite', dataDir, location: dataDir, sqliteFile: file }
}
