/**
 * Opens the keylime-ts database: embedded PGlite by default, PostgreSQL through postgres.js when
 * `database_url` says so (rules in `parse-database-url.ts`), with one drizzle type for both.
 *
 * - **Sharing.** Callers in one process that open the same location get one instance,
 *   reference-counted and closed when the last handle closes: the registrar and verifier roles of
 *   one control-plane process share the embedded database (and a PostgreSQL pool).
 * - **Exclusivity.** An embedded data directory is locked for the process
 *   (`acquire-dir-lock.ts`); a second process fails with `ERR_DB_LOCKED`.
 * - **Migrations.** With `autoMigrate` (default, upstream's `auto_migrate_db`) the embedded
 *   drizzle migrations are applied at open. On PostgreSQL they run under
 *   `pg_advisory_lock(MIGRATION_LOCK_KEY)`, so processes starting together against one database
 *   migrate once and never race.
 * - **Upkeep.** The embedded database has no autovacuum worker; `embedded-vacuum.ts` stands in.
 * - **Outages.** On PostgreSQL every statement is bounded by `timeoutMs` (`guard-postgres.ts`):
 *   an unreachable or stalled server fails it with `ERR_DB_UNAVAILABLE` (HTTP 503). Each handle
 *   carries the instance's {@link DatabaseHealth} for `/health`.
 * - **Speed.** A fresh embedded directory is seeded from a pre-built data directory instead of
 *   running initdb (see `load-pglite-assets.ts`).
 *
 * @module
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { getLogger } from '../log/logger.ts'
import { describeError, describeServerMessage } from '../log/describe-error.ts'
import { acquireDirLock, LOCK_FILE_NAME } from './acquire-dir-lock.ts'
import { DatabaseHealth } from './database-health.ts'
import { type EmbeddedMigration, embeddedMigrations } from './embedded-migrations.ts'
import { startEmbeddedVacuum } from './embedded-vacuum.ts'
import { DatabaseError } from './errors.ts'
import { PostgresGuard } from './guard-postgres.ts'
import { loadPgliteAssets } from './load-pglite-assets.ts'
import { type DatabaseTarget, parseDatabaseUrl } from './parse-database-url.ts'
import * as schema from './schema.ts'

const log = getLogger('db')

/** The drizzle database type, identical for PGlite and PostgreSQL. */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

/** An open database handle; several handles may share one underlying instance. */
export interface KeylimeDatabase {
  /** drizzle, typed with {@link schema}. */
  db: Db
  /** Which driver serves it. */
  kind: 'pglite' | 'postgres'
  /** The data directory, `memory://`, or the PostgreSQL URL with its password redacted. */
  location: string
  /** Whether the database serves, shared by every handle of the instance (`/health`). */
  health: DatabaseHealth
  /** Releases this handle; the instance closes with its last handle. Idempotent. */
  close(): Promise<void>
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Keylime's `database_url` (`''`, `sqlite`, `sqlite:///…`, `memory://`, `postgresql://…`). */
  url: string
  /** `KEYLIME_DIR`; the default embedded database lives in `<keylimeDir>/pglite`. */
  keylimeDir: string
  /** `database_pool_sz_ovfl` as `[pool_size, max_overflow]`; PostgreSQL pool max is the sum. */
  poolSizeOverflow?: [number, number]
  /** Apply migrations at open (upstream `auto_migrate_db`); default true. */
  autoMigrate?: boolean
  /**
   * Share one instance with other callers of this process opening the same location (default
   * true). `memory://` is never shared. `false` gives a private PostgreSQL pool, used by tests to
   * act like a second process; an embedded directory cannot be opened twice either way.
   */
  shared?: boolean
  /**
   * How often the embedded database vacuums tables past autovacuum's thresholds (ms, default
   * 10 s; `embedded-vacuum.ts`). PostgreSQL servers run their own autovacuum.
   */
  embeddedVacuumMs?: number
  /**
   * Most time one statement or transaction may take on PostgreSQL before it fails with
   * `ERR_DB_UNAVAILABLE` (ms, default {@link DEFAULT_DATABASE_TIMEOUT_MS}; `database_timeout`).
   * Also the connect timeout. Set by the first opener of a shared instance.
   */
  timeoutMs?: number
  /** Idle time after which {@link DatabaseHealth} probes the database (ms, default 2000). */
  probeMs?: number
}

/** Default bound of one statement on PostgreSQL: 5 s (`database_timeout = 5`). */
export const DEFAULT_DATABASE_TIMEOUT_MS = 5000

/** `pg_advisory_lock` key serialising migrations: "keylime" in ASCII. */
export const MIGRATION_LOCK_KEY = 0x6b65796c696d65n

/**
 * Settings of the embedded server beyond PGlite's own. Its WebAssembly memory grows to its peak
 * and never shrinks, and PostgreSQL's default 128 MB of shared buffers is sized for a server
 * with a machine of its own; 32 MB hold a 10,000-agent fleet's hot rows (docs/benchmarks.md).
 */
const EMBEDDED_SETTINGS = ['-c', 'shared_buffers=32MB']

/** Upstream's `database_pool_sz_ovfl` default, `5,10`. */
const DEFAULT_POOL: [number, number] = [5, 10]

interface Instance {
  db: Db
  kind: 'pglite' | 'postgres'
  location: string
  health: DatabaseHealth
  /** Runs the migrations (under the advisory lock on PostgreSQL). */
  migrate(): Promise<void>
  shutdown(): Promise<void>
}

interface Entry {
  instance: Promise<Instance>
  refs: number
  migrated?: Promise<void>
}

const entries = new Map<string, Entry>()

/**
 * Opens (or joins) the database named by `opts.url`.
 *
 * @example
 * ```ts
 * const kdb = await openDatabase({ url: config.database_url, keylimeDir: '/var/lib/keylime' })
 * const rows = await kdb.db.select().from(registrarmain)
 * await kdb.close()
 * ```
 * @throws {DatabaseError} `ERR_DB_UNSUPPORTED`/`ERR_DB_CONFIG` for a bad URL or pool setting,
 *   `ERR_DB_LOCKED` when another process holds the embedded directory, `ERR_DB_OPEN` when the
 *   database cannot be reached, `ERR_DB_MIGRATION` when migrations fail.
 */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<KeylimeDatabase> {
  const target = parseDatabaseUrl(opts.url, opts.keylimeDir)
  const poolMax = poolSize(opts.poolSizeOverflow ?? DEFAULT_POOL)
  const key =
    target.kind === 'postgres'
      ? `postgres:${target.url}`
      : target.dataDir && `pglite:${target.dataDir}`
  const share = key !== null && (opts.shared ?? true)

  let entry = share ? entries.get(key) : undefined
  if (entry === undefined) {
    entry = { instance: createInstance(target, poolMax, opts), refs: 0 }
    if (share) entries.set(key, entry)
  }
  const mine = entry
  mine.refs++
  let instance: Instance
  try {
    instance = await mine.instance
    if (opts.autoMigrate ?? true) {
      mine.migrated ??= instance.migrate()
      await mine.migrated
    }
  } catch (error) {
    mine.migrated = undefined
    await release(mine, share ? key : null)
    throw error
  }
  let closed = false
  return {
    db: instance.db,
    kind: instance.kind,
    location: instance.location,
    health: instance.health,
    async close() {
      if (closed) return
      closed = true
      await release(mine, share ? key : null)
    },
  }
}

/** Drops one reference; shuts the instance down with the last one. */
async function release(entry: Entry, key: string | null): Promise<void> {
  entry.refs--
  if (entry.refs > 0) return
  if (key !== null && entries.get(key) === entry) entries.delete(key)
  let instance: Instance
  try {
    instance = await entry.instance
  } catch {
    return
  }
  await instance.shutdown()
}

function poolSize([size, overflow]: [number, number]): number {
  if (!Number.isSafeInteger(size) || !Number.isSafeInteger(overflow) || size < 1 || overflow < 0) {
    throw new DatabaseError(
      'ERR_DB_CONFIG',
      `database_pool_sz_ovfl must be two integers "pool_size,max_overflow" with pool_size >= 1 and max_overflow >= 0`,
    )
  }
  return size + overflow
}

function createInstance(
  target: DatabaseTarget,
  poolMax: number,
  opts: OpenDatabaseOptions,
): Promise<Instance> {
  return target.kind === 'postgres'
    ? openPostgres(target.url, target.location, poolMax, opts)
    : openPglite(target.dataDir, target.location, target.sqliteFile, opts)
}

/** drizzle's `dialect.migrate(migrations, session, config)`, which both drivers' `migrate()` call. */
interface Migratable {
  dialect: {
    migrate(
      migrations: EmbeddedMigration[],
      session: unknown,
      config: { migrationsFolder: string },
    ): Promise<void>
  }
  session: unknown
}

/**
 * Applies the embedded migrations. drizzle's `migrate()` reads a folder; inside a compiled
 * binary there is none, so this hands the embedded list to the same dialect method directly.
 */
async function applyMigrations(db: Db, location: string): Promise<void> {
  const migrations = embeddedMigrations()
  const started = performance.now()
  try {
    const { dialect, session } = db as unknown as Migratable
    await dialect.migrate(migrations, session, { migrationsFolder: '' })
  } catch (cause) {
    throw new DatabaseError(
      'ERR_DB_MIGRATION',
      `applying database migrations to ${location} failed`,
      {
        cause,
      },
    )
  }
  log.debug('database migrations checked', {
    location,
    migrations: migrations.length,
    ms: Math.round(performance.now() - started),
  })
}

async function openPglite(
  dataDir: string | null,
  location: string,
  sqliteFile: string | undefined,
  opts: OpenDatabaseOptions,
): Promise<Instance> {
  if (sqliteFile !== undefined) {
    log.warn(
      'database_url names a SQLite file; keylime-ts does not use SQLite and stores the data in an embedded PostgreSQL (PGlite) directory instead',
      {
        sqlite: sqliteFile,
        directory: dataDir,
      },
    )
  }
  let lock: { release(): void } | undefined
  if (dataDir !== null) {
    try {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    } catch (cause) {
      throw new DatabaseError(
        'ERR_DB_OPEN',
        `cannot create embedded database directory ${dataDir}`,
        { cause },
      )
    }
    lock = acquireDirLock(dataDir)
  }
  try {
    const started = performance.now()
    const assets = await loadPgliteAssets()
    const fresh = dataDir === null || !existsSync(join(dataDir, 'PG_VERSION'))
    const base = {
      pgliteWasmModule: assets.pgliteWasmModule,
      initdbWasmModule: assets.initdbWasmModule,
      fsBundle: assets.fsBundle,
      startParams: [...PGlite.defaultStartParams, ...EMBEDDED_SETTINGS],
    }
    const where = dataDir ?? 'memory://'
    let pg: PGlite
    try {
      pg = await PGlite.create(where, fresh ? { ...base, loadDataDir: assets.template() } : base)
    } catch (cause) {
      if (!fresh) throw cause
      // The bundled template does not fit this PGlite build: fall back to a real initdb.
      log.warn('embedded database template unusable, running initdb (slow)', { error: cause })
      if (dataDir !== null) clearDataDir(dataDir)
      pg = await PGlite.create(where, base)
    }
    if (dataDir !== null) {
      log.info(
        'using the embedded database (PGlite); set database_url to use a PostgreSQL server',
        {
          directory: dataDir,
          created: fresh,
          ms: Math.round(performance.now() - started),
        },
      )
    }
    const db = drizzlePglite({ client: pg, schema }) as unknown as Db
    const stopVacuum = startEmbeddedVacuum(pg, opts.embeddedVacuumMs)
    const health = new DatabaseHealth({
      location,
      log,
      probe: () => pg.query('select 1'),
      probeMs: opts.probeMs,
    })
    health.start()
    return {
      db,
      kind: 'pglite',
      location,
      health,
      migrate: () => applyMigrations(db, location),
      async shutdown() {
        health.stop()
        try {
          await stopVacuum()
          await pg.close()
        } finally {
          lock?.release()
        }
      },
    }
  } catch (cause) {
    lock?.release()
    if (cause instanceof DatabaseError) throw cause
    throw new DatabaseError('ERR_DB_OPEN', `cannot open embedded database ${location}`, { cause })
  }
}

/** Empties a data directory except for our lock file. */
function clearDataDir(dataDir: string): void {
  for (const name of readdirSync(dataDir)) {
    if (name !== LOCK_FILE_NAME) rmSync(join(dataDir, name), { recursive: true, force: true })
  }
}

async function openPostgres(
  url: string,
  location: string,
  poolMax: number,
  opts: OpenDatabaseOptions,
): Promise<Instance> {
  // a notice may quote values (a trigger's RAISE NOTICE): only its code and safe text are logged
  const onnotice = (notice: postgres.Notice) =>
    log.debug('postgres notice', { notice: describeServerMessage(notice) })
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DATABASE_TIMEOUT_MS
  // the probe runs only once started, below, when `guarded` exists
  const health = new DatabaseHealth({
    location,
    log,
    probe: () => guarded.unsafe('select 1'),
    probeMs: opts.probeMs,
  })
  const guard = new PostgresGuard({ timeoutMs, report: (e) => health.report(e) })
  const client = postgres(url, {
    max: poolMax,
    onnotice,
    ...(guard.clientOptions as Partial<postgres.Options<Record<string, never>>>),
  })
  try {
    await client`select 1`
  } catch (cause) {
    await client.end({ timeout: 1 }).catch(() => {})
    throw new DatabaseError(
      'ERR_DB_OPEN',
      `cannot connect to PostgreSQL at ${location}: ${describeError(cause)}`,
      { cause },
    )
  }
  log.info('using PostgreSQL', { location, pool_max: poolMax, timeout_ms: timeoutMs })
  const guarded = guard.wrap(client)
  const db = drizzlePostgres({ client: guarded, schema }) as unknown as Db
  // migrations may take longer than any statement bound: they use the client unguarded
  const migrationDb = drizzlePostgres({ client, schema }) as unknown as Db
  health.start()
  return {
    db,
    kind: 'postgres',
    location,
    health,
    async migrate() {
      // A separate one-connection client holds the session-level lock, so the pool stays free for
      // the migration itself even with a pool of one.
      const locker = postgres(url, { max: 1, onnotice, connect_timeout: 10 })
      try {
        await locker`select pg_advisory_lock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
        try {
          await applyMigrations(migrationDb, location)
        } finally {
          await locker`select pg_advisory_unlock(${MIGRATION_LOCK_KEY.toString()}::bigint)`
        }
      } catch (cause) {
        if (cause instanceof DatabaseError) throw cause
        throw new DatabaseError('ERR_DB_MIGRATION', `cannot lock ${location} for migrations`, {
          cause,
        })
      } finally {
        await locker.end({ timeout: 5 })
      }
    },
    async shutdown() {
      health.stop()
      await client.end({ timeout: 5 })
    },
  }
}

/** Checks connectivity (`select 1`); used by health endpoints. */
export async function pingDatabase(kdb: KeylimeDatabase): Promise<void> {
  await kdb.db.execute(sql`select 1`)
}
