/**
 * The databases every storage test runs against.
 *
 * - `pglite`: in-process PGlite, always available (embedded default of keylime-ts).
 * - `postgresql`: a real server. `TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres`
 *   names one whose user may `CREATE DATABASE`; otherwise, when `DOCKER_HOST` points at a
 *   reachable socket, a throwaway `postgres:15` container is started with @testcontainers/postgresql
 *   (Ryuk disabled, log-message wait strategy: bun-and-tools.md §4). Without either, the target is
 *   left out and the reason printed once.
 *
 * Every `open()` yields a fresh, migrated database: on PostgreSQL a uniquely named database that
 * `close()` drops again.
 *
 * @example
 * ```ts
 * for (const t of databaseTargets()) describe(t.name, () => { test('…', async () => { const kdb = await t.open() … }) })
 * ```
 *
 * @module
 */
import { afterAll } from 'bun:test'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import postgres from 'postgres'
import { type KeylimeDatabase, openDatabase } from '../../src/db/index.ts'

/** A location that can be opened many times (reopen, concurrent-open tests). */
export interface FreshLocation {
  /** `database_url` to pass to `openDatabase`. */
  url: string
  /** `keylimeDir` to pass to `openDatabase`. */
  keylimeDir: string
  /** Removes the database (drops it, or deletes the directory). */
  drop(): Promise<void>
}

/** One database flavour to run a suite against. */
export interface DatabaseTestTarget {
  /** `pglite` or `postgresql`. */
  name: 'pglite' | 'postgresql'
  /** Opens a fresh migrated database; its `close()` also discards it. */
  open(): Promise<KeylimeDatabase>
  /** A fresh, not yet opened location: an embedded directory, or an empty PostgreSQL database. */
  freshLocation(): Promise<FreshLocation>
}

let skipReported = false
let counter = 0
let serverUrl: Promise<string> | undefined

function tempKeylimeDir(): string {
  return mkdtempSync(join(tmpdir(), 'keylime-db-test-'))
}

/** Unique database name: `kl_test_<pid>_<n>_<random>`. */
function uniqueName(): string {
  counter++
  return `kl_test_${process.pid}_${counter}_${Math.random().toString(36).slice(2, 8)}`
}

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url)
  parsed.pathname = `/${name}`
  return parsed.toString()
}

async function admin<T>(url: string, fn: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    return await fn(sql)
  } finally {
    await sql.end({ timeout: 5 })
  }
}

async function freshPostgres(): Promise<FreshLocation> {
  return scratchPostgres(await (serverUrl ?? Promise.reject(new Error('no PostgreSQL server'))))
}

/**
 * An empty, uniquely named database on the PostgreSQL server of `base` (a superuser URL), with a
 * fresh `keylimeDir`; `drop()` removes the database. Tests and benchmarks (`--db`) use it.
 */
export async function scratchPostgres(base: string): Promise<FreshLocation> {
  const name = uniqueName()
  await admin(base, (sql) => sql.unsafe(`CREATE DATABASE "${name}"`))
  const keylimeDir = tempKeylimeDir()
  return {
    url: withDatabase(base, name),
    keylimeDir,
    async drop() {
      await admin(base, (sql) => sql.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`))
      rmSync(keylimeDir, { recursive: true, force: true })
    },
  }
}

/** A fresh embedded-database location: an empty `keylimeDir`; `drop()` deletes it. */
export async function freshPglite(): Promise<FreshLocation> {
  const keylimeDir = tempKeylimeDir()
  return {
    url: '',
    keylimeDir,
    async drop() {
      rmSync(keylimeDir, { recursive: true, force: true })
    },
  }
}

/** Wraps a handle so that closing it also discards the database. */
async function openFresh(location: FreshLocation): Promise<KeylimeDatabase> {
  let kdb: KeylimeDatabase
  try {
    kdb = await openDatabase({ url: location.url, keylimeDir: location.keylimeDir, shared: false })
  } catch (error) {
    await location.drop()
    throw error
  }
  return {
    ...kdb,
    async close() {
      await kdb.close()
      await location.drop()
    },
  }
}

/** Starts (once) a PostgreSQL container; resolves to a superuser URL. */
async function startContainer(): Promise<string> {
  process.env.TESTCONTAINERS_RYUK_DISABLED = 'true'
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
  const { Wait } = await import('testcontainers')
  const container = await new PostgreSqlContainer('docker.io/library/postgres:15')
    .withWaitStrategy(Wait.forLogMessage(/database system is ready to accept connections/, 2))
    .start()
  afterAll(async () => {
    await container.stop()
  }, 60_000)
  return container.getConnectionUri()
}

/** Whether `DOCKER_HOST` names a socket that exists (or a TCP endpoint, assumed reachable). */
function containerRuntimeReachable(): boolean {
  const host = process.env.DOCKER_HOST
  if (!host) return false
  if (host.startsWith('unix://')) return existsSync(host.slice('unix://'.length))
  return true
}

/** The targets to run storage suites against; see the module comment. */
export function databaseTargets(): DatabaseTestTarget[] {
  const targets: DatabaseTestTarget[] = [
    {
      name: 'pglite',
      async open() {
        return openDatabase({ url: 'memory://', keylimeDir: tmpdir() })
      },
      freshLocation: freshPglite,
    },
  ]
  const url = process.env.TEST_DATABASE_URL
  if (url) {
    serverUrl ??= Promise.resolve(url)
  } else if (containerRuntimeReachable()) {
    serverUrl ??= startContainer()
  } else if (!skipReported) {
    skipReported = true
    console.log(
      'skip: PostgreSQL target (set TEST_DATABASE_URL=postgresql://user@host:port/db, or DOCKER_HOST to a container runtime socket)',
    )
  }
  if (serverUrl) {
    targets.push({
      name: 'postgresql',
      async open() {
        return openFresh(await freshPostgres())
      },
      freshLocation: freshPostgres,
    })
  }
  return targets
}
