/**
 * Autovacuum for the embedded database. PGlite runs PostgreSQL in single-user mode, where no
 * autovacuum worker exists: every row update leaves a dead tuple that nothing reclaims, so a
 * verifier writing each agent's state every `quote_interval` grows its tables and indexes without
 * bound (10,000 agents at 2 s: 5,000 dead tuples a second) and each write gets slower.
 *
 * This pass does what autovacuum's default thresholds would: it vacuums a table once its dead
 * tuples exceed `50 + 20 %` of its live ones (`autovacuum_vacuum_threshold`,
 * `autovacuum_vacuum_scale_factor`), reading the counts from `pg_stat_user_tables`.
 *
 * @module
 */
import type { PGlite } from '@electric-sql/pglite'
import { getLogger } from '../log/logger.ts'

const log = getLogger('db')

/** `autovacuum_vacuum_threshold` and `autovacuum_vacuum_scale_factor` defaults. */
const THRESHOLD = 50
const SCALE = 0.2

/** Default interval between checks (ms). */
export const EMBEDDED_VACUUM_INTERVAL_MS = 10_000

/**
 * Vacuums the user tables whose dead tuples are past the autovacuum threshold; returns their
 * names. Table names come from the catalog and are quoted as identifiers.
 */
export async function vacuumDeadTuples(pg: PGlite): Promise<string[]> {
  const r = await pg.query<{ relname: string; schemaname: string }>(
    `SELECT schemaname, relname FROM pg_stat_user_tables
     WHERE n_dead_tup > $1::float8 + $2::float8 * n_live_tup ORDER BY n_dead_tup DESC`,
    [THRESHOLD, SCALE],
  )
  const done: string[] = []
  for (const { schemaname, relname } of r.rows) {
    const started = performance.now()
    await pg.exec(`VACUUM ${quoteIdent(schemaname)}.${quoteIdent(relname)}`)
    log.debug('vacuumed embedded table', {
      table: relname,
      ms: Math.round(performance.now() - started),
    })
    done.push(relname)
  }
  return done
}

function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/**
 * Runs {@link vacuumDeadTuples} every `intervalMs` (the timer does not keep the process alive)
 * until the returned function is called; that function resolves once a pass in progress ended.
 */
export function startEmbeddedVacuum(
  pg: PGlite,
  intervalMs = EMBEDDED_VACUUM_INTERVAL_MS,
): () => Promise<void> {
  let running: Promise<unknown> | undefined
  const timer = setInterval(() => {
    if (running !== undefined || pg.closed) return
    running = vacuumDeadTuples(pg)
      .catch((err: unknown) => log.warn('embedded vacuum failed', { error: err }))
      .finally(() => {
        running = undefined
      })
  }, intervalMs)
  timer.unref()
  return async () => {
    clearInterval(timer)
    await running
  }
}
