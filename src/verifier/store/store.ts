/**
 * The verifier's database access: agents (`verifiermain`), runtime and measured-boot policies with
 * their version history, batched state writes and instance leases. All SQL of the verifier lives
 * here; it runs unchanged on PGlite and PostgreSQL.
 *
 * @module
 */
import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm'
import {
  allowlists,
  allowlists_history,
  type Db,
  mbpolicies,
  mbpolicies_history,
  queryRows,
  verifier_instances,
  verifiermain,
} from '../../db/index.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'

/** A `verifiermain` row. */
export type AgentRow = typeof verifiermain.$inferSelect
/** A row to insert. */
export type NewAgentRow = typeof verifiermain.$inferInsert
/** An `allowlists` row. */
export type AllowlistRow = typeof allowlists.$inferSelect
/** An `mbpolicies` row. */
export type MbPolicyRow = typeof mbpolicies.$inferSelect

/** The columns the poll loop owns, written in batches (one snapshot per agent). */
export interface AgentSnapshot {
  agent_id: string
  operational_state: number
  attestation_count: number
  last_received_quote: number
  last_successful_attestation: number
  tpm_clockinfo: unknown
  hash_alg: string
  enc_alg: string
  sign_alg: string
  severity_level: number | null
  last_event_id: string | null
  public_key: string
  supported_version: string
  next_ima_ml_entry: number
  boottime: number
  ima_pcrs: unknown
  /** Hex of the running PCR 10 of the quote bank, or null. */
  pcr10: string | null
  learned_ima_keyrings: unknown
}

/** The columns every passing round changes: all a steady-state agent's write needs. */
export type HotSnapshot = Pick<
  AgentSnapshot,
  | 'agent_id'
  | 'operational_state'
  | 'attestation_count'
  | 'last_received_quote'
  | 'last_successful_attestation'
  | 'tpm_clockinfo'
>

/** Snapshot columns: name, SQL type in the JSON record, SET expression. */
const SNAPSHOT_COLUMNS: readonly (readonly [string, string, string?])[] = [
  ['operational_state', 'integer'],
  ['attestation_count', 'integer'],
  ['last_received_quote', 'bigint'],
  ['last_successful_attestation', 'bigint'],
  ['tpm_clockinfo', 'jsonb'],
  ['hash_alg', 'text'],
  ['enc_alg', 'text'],
  ['sign_alg', 'text'],
  ['severity_level', 'integer'],
  ['last_event_id', 'text'],
  ['public_key', 'text'],
  ['supported_version', 'text'],
  ['next_ima_ml_entry', 'integer'],
  ['boottime', 'bigint'],
  ['ima_pcrs', 'jsonb'],
  ['pcr10', 'text', "CASE WHEN u.pcr10 IS NULL THEN NULL ELSE decode(u.pcr10, 'hex') END"],
  ['learned_ima_keyrings', 'jsonb'],
]
const HOT_COLUMNS = 5

/** `SET …` and `u(…)` of the snapshot update over the first `n` columns. */
function snapshotSql(n: number): { set: SQL; record: SQL } {
  const cols = SNAPSHOT_COLUMNS.slice(0, n)
  return {
    set: sql.raw(cols.map(([c, , e]) => `${c} = ${e ?? `u.${c}`}`).join(', ')),
    record: sql.raw(['agent_id text', ...cols.map(([c, t]) => `${c} ${t}`)].join(', ')),
  }
}
const FULL_SQL = snapshotSql(SNAPSHOT_COLUMNS.length)
const HOT_SQL = snapshotSql(HOT_COLUMNS)

/** Polled states, as SQL list. */
const POLLED = sql.raw(
  [
    AGENT_STATES.START,
    AGENT_STATES.GET_QUOTE,
    AGENT_STATES.GET_QUOTE_RETRY,
    AGENT_STATES.PROVIDE_V,
    AGENT_STATES.PROVIDE_V_RETRY,
  ].join(','),
)

/** Rows of a raw query, whichever driver answered. */
/** A transaction of {@link Db}. */
type Tx = Parameters<Parameters<Db['transaction']>[0]>[0]

/** Keeps the current version of a runtime policy in `allowlists_history` (before update or delete). */
async function archiveAllowlist(tx: Tx, old: AllowlistRow): Promise<void> {
  await tx.insert(allowlists_history).values({
    name: old.name,
    version: old.version,
    checksum: old.checksum,
    generator: old.generator,
    tpm_policy: old.tpm_policy,
    ima_policy: old.ima_policy,
    replaced_at: nowSeconds(),
  })
}

/** Keeps the current version of an MB policy in `mbpolicies_history` (before update or delete). */
async function archiveMbPolicy(tx: Tx, old: MbPolicyRow): Promise<void> {
  await tx.insert(mbpolicies_history).values({
    name: old.name,
    version: old.version,
    mb_policy: old.mb_policy,
    replaced_at: nowSeconds(),
  })
}

/** Whether any agent references policy `id` through `column`. */
async function policyInUse(
  tx: Tx,
  column: typeof verifiermain.ima_policy_id | typeof verifiermain.mb_policy_id,
  id: number,
): Promise<boolean> {
  const used = await tx
    .select({ id: verifiermain.agent_id })
    .from(verifiermain)
    .where(eq(column, id))
    .limit(1)
  return used.length > 0
}

/** Epoch seconds. */
export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000)
}

/** Database operations of the verifier. */
export class VerifierStore {
  readonly db: Db

  constructor(db: Db) {
    this.db = db
  }

  // ---------------------------------------------------------------- agents

  /** One agent row, or undefined. */
  async getAgent(agentId: string): Promise<AgentRow | undefined> {
    const r = await this.db.select().from(verifiermain).where(eq(verifiermain.agent_id, agentId))
    return r[0]
  }

  /** Agent ids, optionally of one verifier_id, sorted. */
  async listAgentIds(verifierId?: string): Promise<string[]> {
    const q = this.db.select({ id: verifiermain.agent_id }).from(verifiermain)
    const r = await (
      verifierId === undefined ? q : q.where(eq(verifiermain.verifier_id, verifierId))
    ).orderBy(asc(verifiermain.agent_id))
    return r.map((x) => x.id)
  }

  /** Full rows, optionally of one verifier_id. */
  async listAgents(verifierId?: string): Promise<AgentRow[]> {
    const q = this.db.select().from(verifiermain)
    return verifierId === undefined ? q : q.where(eq(verifiermain.verifier_id, verifierId))
  }

  /** Rows by ids. */
  async getAgents(ids: readonly string[]): Promise<AgentRow[]> {
    if (ids.length === 0) return []
    return this.db
      .select()
      .from(verifiermain)
      .where(inArray(verifiermain.agent_id, [...ids]))
  }

  /**
   * Sets the state unless the row is TERMINATED or TENANT_FAILED (upstream's guarded update).
   * Returns whether a row changed.
   */
  async setStateGuarded(
    agentId: string,
    state: number,
    extra: Partial<NewAgentRow> = {},
  ): Promise<boolean> {
    const r = await queryRows<{ agent_id: string }>(
      this.db,
      sql`UPDATE verifiermain SET operational_state = ${state}
          ${extra.lease_owner !== undefined ? sql`, lease_owner = ${extra.lease_owner}` : sql``}
          ${extra.severity_level !== undefined ? sql`, severity_level = ${extra.severity_level}` : sql``}
          ${extra.last_event_id !== undefined ? sql`, last_event_id = ${extra.last_event_id}` : sql``}
          WHERE agent_id = ${agentId} AND operational_state NOT IN (8, 10) RETURNING agent_id`,
    )
    return r.length > 0
  }

  /** Sets columns unconditionally (API actions: stop, reactivate, terminate). */
  async updateAgent(agentId: string, values: Partial<NewAgentRow>): Promise<boolean> {
    const r = await this.db
      .update(verifiermain)
      .set(values)
      .where(eq(verifiermain.agent_id, agentId))
      .returning({ id: verifiermain.agent_id })
    return r.length > 0
  }

  /**
   * Deletes an agent and, as upstream, the allowlist and mbpolicy rows named after it when no
   * other agent uses them.
   */
  async deleteAgent(agentId: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const r = await tx
        .delete(verifiermain)
        .where(eq(verifiermain.agent_id, agentId))
        .returning({ id: verifiermain.agent_id })
      if (r.length === 0) return false
      await tx.execute(
        sql`DELETE FROM allowlists a WHERE a.name = ${agentId}
            AND NOT EXISTS (SELECT 1 FROM verifiermain m WHERE m.ima_policy_id = a.id)`,
      )
      await tx.execute(
        sql`DELETE FROM mbpolicies p WHERE p.name = ${agentId}
            AND NOT EXISTS (SELECT 1 FROM verifiermain m WHERE m.mb_policy_id = p.id)`,
      )
      return true
    })
  }

  /**
   * Writes poll-loop snapshots in one statement: whole ones, or only the columns of
   * {@link HotSnapshot} (`hot`, a steady-state round: a fifth of the JSON). Each written row's
   * lease is extended to `leaseExpires` on the way, so agents polled more often than the lease
   * tick need no separate renewal. Rows that are TERMINATED, TENANT_FAILED, deleted or leased by
   * another instance are left alone; their ids are returned (normally none, so a write costs no
   * result rows) for the caller to reconcile.
   */
  async writeSnapshots(
    owner: string,
    snaps: readonly AgentSnapshot[] | readonly HotSnapshot[],
    leaseExpires: number,
    hot = false,
  ): Promise<string[]> {
    if (snaps.length === 0) return []
    const json = JSON.stringify(snaps)
    const q = hot ? HOT_SQL : FULL_SQL
    const r = await queryRows<{ agent_id: string }>(
      this.db,
      sql`WITH u AS (SELECT * FROM jsonb_to_recordset(${json}::jsonb) AS u(${q.record})),
          w AS (
            UPDATE verifiermain AS m SET ${q.set}, lease_expires = ${leaseExpires} FROM u
            WHERE m.agent_id = u.agent_id AND m.operational_state NOT IN (8, 10)
              AND (m.lease_owner = ${owner} OR m.lease_owner IS NULL)
            RETURNING m.agent_id)
          SELECT u.agent_id FROM u WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.agent_id = u.agent_id)`,
    )
    return r.map((x) => x.agent_id)
  }

  // ---------------------------------------------------------------- policies

  /** Runtime policy by name. */
  async getAllowlist(name: string): Promise<AllowlistRow | undefined> {
    return (await this.db.select().from(allowlists).where(eq(allowlists.name, name)))[0]
  }

  /** Runtime policy by id. */
  async getAllowlistById(id: number): Promise<AllowlistRow | undefined> {
    return (await this.db.select().from(allowlists).where(eq(allowlists.id, id)))[0]
  }

  /** Runtime policy names, sorted. */
  async listAllowlistNames(): Promise<string[]> {
    const r = await this.db
      .select({ n: allowlists.name })
      .from(allowlists)
      .orderBy(asc(allowlists.name))
    return r.map((x) => x.n)
  }

  /** `id → version` of every runtime and MB policy (cheap change detection). */
  async policyVersions(): Promise<{ ima: Map<number, number>; mb: Map<number, number> }> {
    const a = await this.db.select({ id: allowlists.id, v: allowlists.version }).from(allowlists)
    const m = await this.db.select({ id: mbpolicies.id, v: mbpolicies.version }).from(mbpolicies)
    return { ima: new Map(a.map((x) => [x.id, x.v])), mb: new Map(m.map((x) => [x.id, x.v])) }
  }

  /** Inserts a runtime policy; false when the name exists. */
  async createAllowlist(row: typeof allowlists.$inferInsert): Promise<AllowlistRow | undefined> {
    const r = await this.db.insert(allowlists).values(row).onConflictDoNothing().returning()
    return r[0]
  }

  /** Replaces a runtime policy, keeping the old version in the history; false when missing. */
  async updateAllowlist(
    name: string,
    values: { checksum: string; generator: number; tpm_policy: string | null; ima_policy: string },
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const old = (
        await tx.select().from(allowlists).where(eq(allowlists.name, name)).for('update')
      )[0]
      if (old === undefined) return false
      await archiveAllowlist(tx, old)
      await tx
        .update(allowlists)
        .set({ ...values, version: old.version + 1 })
        .where(eq(allowlists.id, old.id))
      return true
    })
  }

  /** Deletes a runtime policy: 'missing', 'in_use' or 'deleted' (the old version goes to history). */
  async deleteAllowlist(name: string): Promise<'missing' | 'in_use' | 'deleted'> {
    return this.db.transaction(async (tx) => {
      const old = (
        await tx.select().from(allowlists).where(eq(allowlists.name, name)).for('update')
      )[0]
      if (old === undefined) return 'missing'
      if (await policyInUse(tx, verifiermain.ima_policy_id, old.id)) return 'in_use'
      await archiveAllowlist(tx, old)
      await tx.delete(allowlists).where(eq(allowlists.id, old.id))
      return 'deleted'
    })
  }

  /** Previous versions of a runtime policy, oldest first. */
  async allowlistHistory(name: string): Promise<(typeof allowlists_history.$inferSelect)[]> {
    return this.db
      .select()
      .from(allowlists_history)
      .where(eq(allowlists_history.name, name))
      .orderBy(asc(allowlists_history.version))
  }

  /** MB policy by name. */
  async getMbPolicy(name: string): Promise<MbPolicyRow | undefined> {
    return (await this.db.select().from(mbpolicies).where(eq(mbpolicies.name, name)))[0]
  }

  /** MB policy by id. */
  async getMbPolicyById(id: number): Promise<MbPolicyRow | undefined> {
    return (await this.db.select().from(mbpolicies).where(eq(mbpolicies.id, id)))[0]
  }

  /** MB policy names, sorted. */
  async listMbPolicyNames(): Promise<string[]> {
    const r = await this.db
      .select({ n: mbpolicies.name })
      .from(mbpolicies)
      .orderBy(asc(mbpolicies.name))
    return r.map((x) => x.n)
  }

  /** Inserts an MB policy; undefined when the name exists. */
  async createMbPolicy(name: string, mbPolicy: string | null): Promise<MbPolicyRow | undefined> {
    const r = await this.db
      .insert(mbpolicies)
      .values({ name, mb_policy: mbPolicy })
      .onConflictDoNothing()
      .returning()
    return r[0]
  }

  /** Replaces an MB policy, keeping the old version; false when missing. */
  async updateMbPolicy(name: string, mbPolicy: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const old = (
        await tx.select().from(mbpolicies).where(eq(mbpolicies.name, name)).for('update')
      )[0]
      if (old === undefined) return false
      await archiveMbPolicy(tx, old)
      await tx
        .update(mbpolicies)
        .set({ mb_policy: mbPolicy, version: old.version + 1 })
        .where(eq(mbpolicies.id, old.id))
      return true
    })
  }

  /** Deletes an MB policy: 'missing', 'in_use' or 'deleted'. */
  async deleteMbPolicy(name: string): Promise<'missing' | 'in_use' | 'deleted'> {
    return this.db.transaction(async (tx) => {
      const old = (
        await tx.select().from(mbpolicies).where(eq(mbpolicies.name, name)).for('update')
      )[0]
      if (old === undefined) return 'missing'
      if (await policyInUse(tx, verifiermain.mb_policy_id, old.id)) return 'in_use'
      await archiveMbPolicy(tx, old)
      await tx.delete(mbpolicies).where(eq(mbpolicies.id, old.id))
      return 'deleted'
    })
  }

  /** Inserts an agent with its policies in one transaction (see the service for the rules). */
  async insertAgentWithPolicies(
    agent: NewAgentRow,
    ima: { existingId?: number; create?: typeof allowlists.$inferInsert },
    mb: { existingId?: number; create?: { name: string; mb_policy: string | null } },
  ): Promise<'ok' | 'agent_exists' | 'ima_exists' | 'mb_exists'> {
    return this.db.transaction(async (tx) => {
      const exists = await tx
        .select({ id: verifiermain.agent_id })
        .from(verifiermain)
        .where(eq(verifiermain.agent_id, agent.agent_id))
      if (exists.length > 0) return 'agent_exists'
      let imaId = ima.existingId
      if (imaId === undefined && ima.create !== undefined) {
        const prior = (
          await tx.select().from(allowlists).where(eq(allowlists.name, ima.create.name))
        )[0]
        if (prior !== undefined) imaId = prior.id
        else {
          const r = await tx.insert(allowlists).values(ima.create).onConflictDoNothing().returning()
          if (r[0] === undefined) return 'ima_exists'
          imaId = r[0].id
        }
      }
      let mbId = mb.existingId
      if (mbId === undefined && mb.create !== undefined) {
        const prior = (
          await tx.select().from(mbpolicies).where(eq(mbpolicies.name, mb.create.name))
        )[0]
        if (prior !== undefined) {
          if (mb.create.mb_policy) return 'mb_exists'
          mbId = prior.id
        } else {
          const r = await tx.insert(mbpolicies).values(mb.create).onConflictDoNothing().returning()
          if (r[0] === undefined) return 'mb_exists'
          mbId = r[0].id
        }
      }
      await tx
        .insert(verifiermain)
        .values({ ...agent, ima_policy_id: imaId ?? null, mb_policy_id: mbId ?? null })
      return 'ok'
    })
  }

  // ---------------------------------------------------------------- leases

  /** Upserts this instance's heartbeat row. */
  async heartbeat(
    instanceId: string,
    verifierId: string,
    host: string,
    started: number,
  ): Promise<void> {
    const now = Date.now()
    await this.db
      .insert(verifier_instances)
      .values({ instance_id: instanceId, verifier_id: verifierId, heartbeat: now, started, host })
      .onConflictDoUpdate({
        target: verifier_instances.instance_id,
        set: { heartbeat: now, verifier_id: verifierId },
      })
  }

  /** Live instances of a verifier_id (heartbeat within `aliveMs`), dropping long-dead rows. */
  async liveInstances(verifierId: string, aliveMs: number): Promise<number> {
    const now = Date.now()
    await this.db.execute(
      sql`DELETE FROM verifier_instances WHERE heartbeat < ${now - 10 * aliveMs}`,
    )
    const r = await queryRows<{ n: number | string }>(
      this.db,
      sql`SELECT count(*) AS n FROM verifier_instances WHERE verifier_id = ${verifierId} AND heartbeat >= ${now - aliveMs}`,
    )
    return Number(r[0]?.n ?? 1)
  }

  /** Removes this instance's heartbeat row (clean stop). */
  async removeInstance(instanceId: string): Promise<void> {
    await this.db.delete(verifier_instances).where(eq(verifier_instances.instance_id, instanceId))
  }

  /** Polled agents of a verifier_id (for the fair share). */
  async countPolled(verifierId: string): Promise<number> {
    const r = await queryRows<{ n: number | string }>(
      this.db,
      sql`SELECT count(*) AS n FROM verifiermain WHERE verifier_id = ${verifierId} AND operational_state IN (${POLLED})`,
    )
    return Number(r[0]?.n ?? 0)
  }

  /**
   * Extends this instance's leases; returns `agent_id → operational_state` of every row it
   * renewed (so API changes made through other instances are seen). With `dueBefore`, only rows
   * whose lease ends before then are renewed (and returned): rows a recent snapshot write
   * already extended are skipped.
   */
  async renewLeases(
    owner: string,
    expires: number,
    dueBefore?: number,
  ): Promise<Map<string, number>> {
    const due =
      dueBefore === undefined
        ? sql``
        : sql` AND (lease_expires IS NULL OR lease_expires < ${dueBefore})`
    const r = await queryRows<{ agent_id: string; operational_state: number }>(
      this.db,
      sql`UPDATE verifiermain SET lease_expires = ${expires} WHERE lease_owner = ${owner}${due}
          RETURNING agent_id, operational_state`,
    )
    return new Map(r.map((x) => [x.agent_id, Number(x.operational_state)]))
  }

  /**
   * Claims up to `limit` polled agents of `verifierId` that nobody holds or whose lease expired,
   * skipping rows another instance is claiming right now. Returns the claimed rows.
   */
  async claim(
    owner: string,
    verifierId: string,
    limit: number,
    expires: number,
  ): Promise<AgentRow[]> {
    if (limit <= 0) return []
    const now = Date.now()
    const claimed = await queryRows<{ agent_id: string }>(
      this.db,
      sql`UPDATE verifiermain SET lease_owner = ${owner}, lease_expires = ${expires}
          WHERE agent_id IN (
            SELECT agent_id FROM verifiermain
            WHERE verifier_id = ${verifierId} AND operational_state IN (${POLLED})
              AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < ${now})
            ORDER BY agent_id LIMIT ${limit} FOR UPDATE SKIP LOCKED)
          RETURNING agent_id`,
    )
    return this.getAgents(claimed.map((x) => x.agent_id))
  }

  /** Gives agents back (rebalancing, clean stop). */
  async release(owner: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    await this.db
      .update(verifiermain)
      .set({ lease_owner: null, lease_expires: null })
      .where(and(eq(verifiermain.lease_owner, owner), inArray(verifiermain.agent_id, [...ids])))
  }

  /** Finishes deletions whose owner died (TERMINATED rows with an expired or no lease). */
  async reapTerminated(verifierId: string): Promise<string[]> {
    const now = Date.now()
    const r = await queryRows<{ agent_id: string }>(
      this.db,
      sql`SELECT agent_id FROM verifiermain WHERE verifier_id = ${verifierId} AND operational_state = 8
          AND (lease_owner IS NULL OR lease_expires IS NULL OR lease_expires < ${now})`,
    )
    for (const x of r) await this.deleteAgent(x.agent_id)
    return r.map((x) => x.agent_id)
  }
}
