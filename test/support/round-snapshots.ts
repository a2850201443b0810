/**
 * The attestation loop's steady-state writes, for `test/verifier-writes.test.ts` and
 * `bench/verifier-writes.ts`: the snapshots round `n` would flush, and what PostgreSQL counted of
 * the updates to `verifiermain`.
 *
 * @module
 */
import { sql } from 'drizzle-orm'
import { type Db, queryRows } from '../../src/db/index.ts'
import type { HotSnapshot } from '../../src/verifier/store/store.ts'

/** One {@link HotSnapshot} per id, with counters and clock at `n`. */
export function roundSnapshots(ids: readonly string[], n: number): HotSnapshot[] {
  return ids.map((agent_id) => ({
    agent_id,
    operational_state: 3,
    attestation_count: n,
    last_received_quote: 1_700_000_000 + n,
    last_successful_attestation: 1_700_000_000 + n,
    tpm_clockinfo: { clock: n, resetcount: 0, restartcount: 0, safe: 1 },
  }))
}

/** `verifiermain` updates so far: all, heap-only (HOT), and the table's size in bytes. */
export interface UpdateStats {
  upd: number
  hot: number
  bytes: number
}

/** {@link UpdateStats} of `db`, after flushing this backend's statistics. */
export async function verifiermainUpdateStats(db: Db): Promise<UpdateStats> {
  await db.execute(sql`SELECT pg_stat_force_next_flush()`)
  await db.execute(sql`SELECT 1`)
  const [row] = await queryRows<UpdateStats>(
    db,
    sql`SELECT n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot,
          pg_relation_size('verifiermain')::bigint AS bytes
        FROM pg_stat_user_tables WHERE relname = 'verifiermain'`,
  )
  return { upd: Number(row?.upd ?? 0), hot: Number(row?.hot ?? 0), bytes: Number(row?.bytes ?? 0) }
}
