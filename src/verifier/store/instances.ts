/**
 * Verifier instances and the leases by which they share agents: heartbeats, fair shares, lease
 * renewal, claims, release, and reaping deletions whose owner died.
 *
 * @module
 */
import { and, eq, inArray, sql } from 'drizzle-orm'
import { type Db, queryRows, verifier_instances, verifiermain } from '../../db/index.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'
import type { AgentRow, AgentStore } from './agents.ts'

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

/** The instance table and the lease columns of the agent rows. */
export class InstanceStore {
  readonly db: Db
  readonly #agents: AgentStore

  constructor(db: Db, agents: AgentStore) {
    this.db = db
    this.#agents = agents
  }

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
    return this.#agents.getAgents(claimed.map((x) => x.agent_id))
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
    for (const x of r) await this.#agents.deleteAgent(x.agent_id)
    return r.map((x) => x.agent_id)
  }
}
