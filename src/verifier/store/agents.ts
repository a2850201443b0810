/**
 * Agent rows (`verifiermain`): reads, the API's updates, deletion with the policies named after
 * the agent, enrolment with its policies in one transaction, and the poll loop's batched
 * snapshot writes (`snapshots.ts`).
 *
 * @module
 */
import { asc, eq, inArray, sql } from 'drizzle-orm'
import {
  allowlists,
  attestations,
  type Db,
  evidence_items,
  mbpolicies,
  queryRows,
  verifiermain,
} from '../../db/index.ts'
import { type AgentSnapshot, type HotSnapshot, writeSnapshots } from './snapshots.ts'

/** A `verifiermain` row. */
export type AgentRow = typeof verifiermain.$inferSelect
/** A row to insert. */
export type NewAgentRow = typeof verifiermain.$inferInsert

/** The runtime policy of an enrolment: an existing row, or one to create. */
export interface ImaPolicyChoice {
  existingId?: number
  create?: typeof allowlists.$inferInsert
}

/** The measured-boot policy of an enrolment: an existing row, or one to create. */
export interface MbPolicyChoice {
  existingId?: number
  create?: { name: string; mb_policy: string | null }
}

/** The agent rows of the verifier. */
export class AgentStore {
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
      // push-mode attestations reference the agent row
      await tx.delete(evidence_items).where(eq(evidence_items.agent_id, agentId))
      await tx.delete(attestations).where(eq(attestations.agent_id, agentId))
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

  /** See {@link writeSnapshots}. */
  async writeSnapshots(
    owner: string,
    snaps: readonly AgentSnapshot[] | readonly HotSnapshot[],
    leaseExpires: number,
    hot = false,
  ): Promise<string[]> {
    return writeSnapshots(this.db, owner, snaps, leaseExpires, hot)
  }

  /** Inserts an agent with its policies in one transaction (see `api/enrol.ts` for the rules). */
  async insertAgentWithPolicies(
    agent: NewAgentRow,
    ima: ImaPolicyChoice,
    mb: MbPolicyChoice,
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
}
