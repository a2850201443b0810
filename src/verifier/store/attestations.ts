/**
 * Push-mode attestations (`attestations`, `evidence_items`; upstream `models/verifier/attestation.py`
 * and `evidence.py`): creation with the next index, the evidence of the latest one, reads, the
 * verification outcome with the agent's counters in one transaction, and upstream's retention rule.
 *
 * @module
 */
import { and, asc, desc, eq, sql } from 'drizzle-orm'
import { attestations, type Db, evidence_items, queryRows, verifiermain } from '../../db/index.ts'

/** An `attestations` row. */
export type AttestationRow = typeof attestations.$inferSelect
/** An `evidence_items` row. */
export type EvidenceItemRow = typeof evidence_items.$inferSelect
/** An evidence item to insert (agent and index are filled in). */
export type NewEvidenceItem = Omit<
  typeof evidence_items.$inferInsert,
  'agent_id' | 'attestation_index' | 'id'
>

/** An attestation with its items, in request order. */
export interface StoredAttestation {
  row: AttestationRow
  items: EvidenceItemRow[]
}

/** The verification outcome written by {@link AttestationStore.complete}. */
export interface AttestationOutcome {
  agentId: string
  index: number
  evaluation: 'pass' | 'fail'
  failureReason: string | null
  completedAt: string
  /** Epoch seconds. */
  now: number
  /** `results__certified_entry_count` of the IMA item on a pass. */
  imaCertified?: number
  /** Agent columns to set on a pass (IMA state, clock). */
  agentOnPass?: Partial<typeof verifiermain.$inferInsert>
  /** Agent columns to set on a fail (the clock of an authentic quote). */
  agentOnFail?: Partial<typeof verifiermain.$inferInsert>
  /** `auto_recover_attestation_failures`. */
  autoRecover: boolean
}

/** The attestation rows of the verifier. */
export class AttestationStore {
  readonly db: Db

  constructor(db: Db) {
    this.db = db
  }

  /** The latest attestation of an agent (highest index), or undefined. */
  async latest(agentId: string): Promise<AttestationRow | undefined> {
    const r = await this.db
      .select()
      .from(attestations)
      .where(eq(attestations.agent_id, agentId))
      .orderBy(desc(attestations.index))
      .limit(1)
    return r[0]
  }

  /** One attestation with its items (`index` undefined: the latest). */
  async get(agentId: string, index?: number): Promise<StoredAttestation | undefined> {
    const row =
      index === undefined
        ? await this.latest(agentId)
        : (
            await this.db
              .select()
              .from(attestations)
              .where(and(eq(attestations.agent_id, agentId), eq(attestations.index, index)))
          )[0]
    if (row === undefined) return undefined
    return { row, items: await this.#items(agentId, row.index) }
  }

  /** Every attestation of an agent, oldest first, with items. */
  async list(agentId: string): Promise<StoredAttestation[]> {
    const rows = await this.db
      .select()
      .from(attestations)
      .where(eq(attestations.agent_id, agentId))
      .orderBy(asc(attestations.index))
    const items = await this.db
      .select()
      .from(evidence_items)
      .where(eq(evidence_items.agent_id, agentId))
      .orderBy(asc(evidence_items.id))
    return rows.map((row) => ({
      row,
      items: items.filter((i) => i.attestation_index === row.index),
    }))
  }

  /** The latest attestation that passed, with its items. */
  async lastPassed(agentId: string): Promise<StoredAttestation | undefined> {
    const r = await this.db
      .select()
      .from(attestations)
      .where(and(eq(attestations.agent_id, agentId), eq(attestations.evaluation, 'pass')))
      .orderBy(desc(attestations.index))
      .limit(1)
    const row = r[0]
    if (row === undefined) return undefined
    return { row, items: await this.#items(agentId, row.index) }
  }

  async #items(agentId: string, index: number): Promise<EvidenceItemRow[]> {
    return this.db
      .select()
      .from(evidence_items)
      .where(and(eq(evidence_items.agent_id, agentId), eq(evidence_items.attestation_index, index)))
      .orderBy(asc(evidence_items.id))
  }

  /**
   * Inserts attestation `index` with its items; false when that index exists already (a
   * concurrent create won: upstream's 409).
   */
  async create(
    row: Omit<typeof attestations.$inferInsert, 'index'> & { index: number },
    items: readonly NewEvidenceItem[],
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const r = await tx
        .insert(attestations)
        .values(row)
        .onConflictDoNothing()
        .returning({ i: attestations.index })
      if (r.length === 0) return false
      if (items.length > 0) {
        await tx
          .insert(evidence_items)
          .values(
            items.map((i) => ({ ...i, agent_id: row.agent_id, attestation_index: row.index })),
          )
      }
      return true
    })
  }

  /**
   * Stores the evidence of an attestation still awaiting it and moves it to
   * `evaluating_evidence`; false when another request got there first.
   */
  async submitEvidence(
    agentId: string,
    index: number,
    receivedAt: string,
    data: readonly { id: number; values: Partial<typeof evidence_items.$inferInsert> }[],
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const r = await tx
        .update(attestations)
        .set({ stage: 'evaluating_evidence', evidence_received_at: receivedAt })
        .where(
          and(
            eq(attestations.agent_id, agentId),
            eq(attestations.index, index),
            eq(attestations.stage, 'awaiting_evidence'),
          ),
        )
        .returning({ i: attestations.index })
      if (r.length === 0) return false
      for (const d of data) {
        await tx.update(evidence_items).set(d.values).where(eq(evidence_items.id, d.id))
      }
      return true
    })
  }

  /**
   * Writes a verification outcome and the agent's counters in one transaction (upstream
   * `TPMEngine.verify_evidence` and `push_agent_monitor`), then applies the retention rule.
   * Returns false (nothing written) when the attestation was no longer awaiting its verdict.
   */
  async complete(o: AttestationOutcome): Promise<boolean> {
    const done = await this.db.transaction(async (tx) => {
      // once only: a second verification of the same evidence (a re-run after a crash) changes nothing
      const claimed = await tx
        .update(attestations)
        .set({
          stage: 'verification_complete',
          evaluation: o.evaluation,
          failure_reason: o.failureReason,
          verification_completed_at: o.completedAt,
        })
        .where(
          and(
            eq(attestations.agent_id, o.agentId),
            eq(attestations.index, o.index),
            eq(attestations.stage, 'evaluating_evidence'),
          ),
        )
        .returning({ i: attestations.index })
      if (claimed.length === 0) return false
      if (o.imaCertified !== undefined) {
        await tx
          .update(evidence_items)
          .set({ results__certified_entry_count: o.imaCertified })
          .where(
            and(
              eq(evidence_items.agent_id, o.agentId),
              eq(evidence_items.attestation_index, o.index),
              eq(evidence_items.evidence_type, 'ima_log'),
            ),
          )
      }
      const a = verifiermain
      if (o.evaluation === 'pass') {
        // the failure count clears when there were none, or when recovery is allowed
        const failures = o.autoRecover
          ? sql`0`
          : sql`CASE WHEN coalesce(${a.consecutive_attestation_failures}, 0) = 0 THEN 0 ELSE ${a.consecutive_attestation_failures} END`
        await tx
          .update(a)
          .set({
            ...o.agentOnPass,
            attestation_count: sql`coalesce(${a.attestation_count}, 0) + 1`,
            last_received_quote: o.now,
            last_successful_attestation: o.now,
            accept_attestations: true,
            consecutive_attestation_failures: failures,
          })
          .where(eq(a.agent_id, o.agentId))
      } else {
        await tx
          .update(a)
          .set({
            ...o.agentOnFail,
            consecutive_attestation_failures: sql`coalesce(${a.consecutive_attestation_failures}, 0) + 1`,
            last_received_quote: o.now,
            accept_attestations: true,
          })
          .where(eq(a.agent_id, o.agentId))
      }
      return true
    })
    if (done && o.evaluation === 'pass') await this.#retain(o.agentId, o.index)
    return done
  }

  /**
   * Attestations whose evidence has waited for its verification since before `before` (ISO): the
   * verifier that took the evidence stopped before finishing.
   */
  async stalled(agentId: string, before: string): Promise<number[]> {
    const r = await this.db
      .select({ index: attestations.index })
      .from(attestations)
      .where(
        and(
          eq(attestations.agent_id, agentId),
          eq(attestations.stage, 'evaluating_evidence'),
          sql`${attestations.evidence_received_at} < ${before}`,
        ),
      )
    return r.map((x) => x.index)
  }

  /**
   * Upstream's retention: when this attestation and the previous one both passed, and the one
   * before the previous has the same boot time, the previous one is deleted. Failures and the
   * first attestation after each boot stay.
   */
  async #retain(agentId: string, index: number): Promise<void> {
    const rows = await queryRows<{ index: number; evaluation: string; boot: string }>(
      this.db,
      sql`SELECT "index", evaluation, system_info__boot_time AS boot FROM attestations
          WHERE agent_id = ${agentId} AND "index" < ${index} AND stage = 'verification_complete'
          ORDER BY "index" DESC LIMIT 2`,
    )
    const [prev, before] = rows
    if (prev === undefined || before === undefined || prev.evaluation !== 'pass') return
    if (before.boot !== prev.boot) return
    await this.db.transaction(async (tx) => {
      const at = and(
        eq(evidence_items.agent_id, agentId),
        eq(evidence_items.attestation_index, prev.index),
      )
      await tx.delete(evidence_items).where(at)
      await tx
        .delete(attestations)
        .where(and(eq(attestations.agent_id, agentId), eq(attestations.index, prev.index)))
    })
  }

  /** Deletes every attestation of an agent (before the agent row goes). */
  async deleteAll(agentId: string): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.delete(evidence_items).where(eq(evidence_items.agent_id, agentId))
      await tx.delete(attestations).where(eq(attestations.agent_id, agentId))
    })
  }
}
