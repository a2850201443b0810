/**
 * The registrar's three compare-and-set writes, each group-committed by a {@link WriteBatcher}:
 *
 * | write | one row | many rows (one statement) |
 * | --- | --- | --- |
 * | new agent | `INSERT … ON CONFLICT DO NOTHING RETURNING agent_id` | `INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING RETURNING agent_id` |
 * | re-registration | `UPDATE … SET … WHERE agent_id = $id AND regcount = $read RETURNING agent_id` | `UPDATE registrarmain SET col = v.col, … FROM (VALUES …) v WHERE agent_id = v.agent_id AND regcount IS NOT DISTINCT FROM v.expected_regcount RETURNING agent_id` |
 * | activation | `UPDATE … SET active = true WHERE agent_id = $id AND key = $key RETURNING agent_id` | `UPDATE registrarmain SET active = true FROM (VALUES …) v(agent_id, key) WHERE agent_id = v.agent_id AND key = v.key RETURNING agent_id` |
 *
 * A re-registration of an ACTIVATED agent is not group-committed (it happens at agent restarts):
 * {@link RegistrarWrites.stage} only parks the new row in `pending_key` / `pending_values`, and
 * {@link RegistrarWrites.applyStaged} writes it once the agent answers the new challenge, so an
 * unauthenticated re-registration cannot change or deactivate an activated record.
 *
 * Per row the multi-row form decides exactly what the single statement decides (PostgreSQL
 * evaluates the same condition on each target row, re-checking it on the newest version after a
 * concurrent update in READ COMMITTED), and the batcher puts one row per agent id in a statement,
 * so `RETURNING agent_id` names the rows written.
 *
 * @module
 */
import { and, eq, getTableColumns, isNull, type SQL, sql } from 'drizzle-orm'
import { type Db, registrarmain } from '../db/index.ts'
import type { RegistrarRow } from './render-agent.ts'
import { WriteBatcher, type WriteBatcherOptions, type WriteBatcherStats } from './write-batcher.ts'

/** A complete registrar row (every column given, `null` where empty). */
export type RegistrarValues = Required<typeof registrarmain.$inferInsert>

/** A re-registration: the new row, written only if `regcount` is still `expectedRegcount`. */
export interface RegcountUpdate {
  values: RegistrarValues
  expectedRegcount: number | null
}

/** An activation: written only if the row still holds the `key` the auth_tag was checked with. */
export interface KeyedActivation {
  agentId: string
  key: string
}

/** Statement counters of each write kind. */
export interface RegistrarWritesStats {
  insert: WriteBatcherStats
  update: WriteBatcherStats
  activate: WriteBatcherStats
}

const COLUMNS = getTableColumns(registrarmain)
type ColumnName = keyof typeof COLUMNS
const NAMES = Object.keys(COLUMNS) as ColumnName[]
/** Every column but the key, as written by a re-registration. */
const UPDATED = NAMES.filter((n) => n !== 'agent_id')
/** The columns a staged re-registration carries in `pending_values`. */
const STAGED = UPDATED.filter(
  (n) => n !== 'key' && n !== 'active' && n !== 'pending_key' && n !== 'pending_values',
)

/** `$n::type`: VALUES lists carry no column types, so every parameter is cast to its column's. */
function typed(name: ColumnName, value: unknown): SQL {
  const column = COLUMNS[name]
  return sql`${sql.param(value, column)}::${sql.raw(column.getSQLType())}`
}

function returnedIds(rows: { id: string }[]): string[] {
  return rows.map((r) => r.id)
}

/**
 * Group-committed registrar writes over one database handle. Each method resolves `true` when
 * its row was written and `false` when the compare-and-set found another state.
 *
 * @example
 * ```ts
 * const writes = new RegistrarWrites(kdb.db)
 * if (!(await writes.insert(values))) {
 *   // the agent exists already: read it and update with its regcount
 * }
 * ```
 */
export class RegistrarWrites {
  readonly #db: Db
  readonly #inserts: WriteBatcher<RegistrarValues>
  readonly #updates: WriteBatcher<RegcountUpdate>
  readonly #activations: WriteBatcher<KeyedActivation>

  constructor(db: Db, options: WriteBatcherOptions = {}) {
    this.#db = db
    this.#inserts = new WriteBatcher<RegistrarValues>(
      {
        name: 'insert',
        key: (v) => v.agent_id,
        one: async (v) =>
          (
            await db
              .insert(registrarmain)
              .values(v)
              .onConflictDoNothing()
              .returning({ id: registrarmain.agent_id })
          ).length > 0,
        many: async (vs) =>
          returnedIds(
            await db
              .insert(registrarmain)
              .values([...vs])
              .onConflictDoNothing()
              .returning({ id: registrarmain.agent_id }),
          ),
      },
      options,
    )
    this.#updates = new WriteBatcher<RegcountUpdate>(
      {
        name: 'update',
        key: (u) => u.values.agent_id,
        one: async ({ values, expectedRegcount }) =>
          (
            await db
              .update(registrarmain)
              .set(values)
              .where(
                and(
                  eq(registrarmain.agent_id, values.agent_id),
                  expectedRegcount === null
                    ? isNull(registrarmain.regcount)
                    : eq(registrarmain.regcount, expectedRegcount),
                ),
              )
              .returning({ id: registrarmain.agent_id })
          ).length > 0,
        many: async (us) => {
          const tuples = us.map(
            (u) =>
              sql`(${sql.join(
                [sql`${u.expectedRegcount}::integer`, ...NAMES.map((n) => typed(n, u.values[n]))],
                sql`, `,
              )})`,
          )
          const columns = sql.join(
            [sql.identifier('expected_regcount'), ...NAMES.map((n) => sql.identifier(n))],
            sql`, `,
          )
          const set = Object.fromEntries(
            UPDATED.map((n) => [n, sql`${sql.identifier('v')}.${sql.identifier(n)}`]),
          )
          return returnedIds(
            await db
              .update(registrarmain)
              .set(set)
              .from(sql`(values ${sql.join(tuples, sql`, `)}) as v(${columns})`)
              .where(
                sql`${registrarmain.agent_id} = v.agent_id and ${registrarmain.regcount} is not distinct from v.expected_regcount`,
              )
              .returning({ id: registrarmain.agent_id }),
          )
        },
      },
      options,
    )
    this.#activations = new WriteBatcher<KeyedActivation>(
      {
        name: 'activate',
        key: (a) => a.agentId,
        one: async ({ agentId, key }) =>
          (
            await db
              .update(registrarmain)
              .set({ active: true })
              .where(and(eq(registrarmain.agent_id, agentId), eq(registrarmain.key, key)))
              .returning({ id: registrarmain.agent_id })
          ).length > 0,
        many: async (as) => {
          const tuples = as.map((a) => sql`(${a.agentId}::text, ${a.key}::text)`)
          return returnedIds(
            await db
              .update(registrarmain)
              .set({ active: true })
              .from(sql`(values ${sql.join(tuples, sql`, `)}) as v(agent_id, key)`)
              .where(sql`${registrarmain.agent_id} = v.agent_id and ${registrarmain.key} = v.key`)
              .returning({ id: registrarmain.agent_id }),
          )
        },
      },
      options,
    )
  }

  /** Inserts a new agent unless a row with its id exists (`false` then). */
  insert(values: RegistrarValues): Promise<boolean> {
    return this.#inserts.write(values)
  }

  /** Replaces an agent's row if its `regcount` is still `expectedRegcount`. */
  update(values: RegistrarValues, expectedRegcount: number | null): Promise<boolean> {
    return this.#updates.write({ values, expectedRegcount })
  }

  /** Sets `active` if the row still holds `key`. */
  activate(agentId: string, key: string): Promise<boolean> {
    return this.#activations.write({ agentId, key })
  }

  /**
   * Parks a re-registration of the activated agent `old` (its challenge key in `values.key`):
   * only `pending_key` and `pending_values` change, and only if the row is still the activated
   * one that was read (same `regcount` and pending key).
   */
  async stage(values: RegistrarValues, old: RegistrarRow): Promise<boolean> {
    const staged = Object.fromEntries(STAGED.map((n) => [n, values[n]]))
    const rows = await this.#db
      .update(registrarmain)
      .set({ pending_key: values.key, pending_values: staged })
      .where(
        and(
          eq(registrarmain.agent_id, values.agent_id),
          eq(registrarmain.active, true),
          old.regcount === null
            ? isNull(registrarmain.regcount)
            : eq(registrarmain.regcount, old.regcount),
          old.pending_key === null
            ? isNull(registrarmain.pending_key)
            : eq(registrarmain.pending_key, old.pending_key),
        ),
      )
      .returning({ id: registrarmain.agent_id })
    return rows.length > 0
  }

  /**
   * Writes the staged re-registration whose challenge key is `pendingKey` (its auth_tag was
   * verified): its columns, `key = pendingKey`, still active, nothing pending.
   */
  async applyStaged(agentId: string, pendingKey: string, pendingValues: unknown): Promise<boolean> {
    const staged = (pendingValues ?? {}) as Record<string, unknown>
    const columns = Object.fromEntries(STAGED.filter((n) => n in staged).map((n) => [n, staged[n]]))
    const rows = await this.#db
      .update(registrarmain)
      .set({ ...columns, key: pendingKey, active: true, pending_key: null, pending_values: null })
      .where(and(eq(registrarmain.agent_id, agentId), eq(registrarmain.pending_key, pendingKey)))
      .returning({ id: registrarmain.agent_id })
    return rows.length > 0
  }

  /** Counters of the three batchers. */
  get stats(): RegistrarWritesStats {
    return {
      insert: this.#inserts.stats,
      update: this.#updates.stats,
      activate: this.#activations.stats,
    }
  }
}
