/**
 * Runtime (IMA) and measured-boot policies, with their version history: every replaced or deleted
 * version is kept in `allowlists_history` / `mbpolicies_history`.
 *
 * @module
 */
import { asc, eq } from 'drizzle-orm'
import {
  allowlists,
  allowlists_history,
  type Db,
  mbpolicies,
  mbpolicies_history,
  verifiermain,
} from '../../db/index.ts'
import { nowSeconds } from './now-seconds.ts'

/** An `allowlists` row. */
export type AllowlistRow = typeof allowlists.$inferSelect
/** An `mbpolicies` row. */
export type MbPolicyRow = typeof mbpolicies.$inferSelect

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

/** An agent that references policy `id` through `column` (upstream names one), or undefined. */
async function agentUsingPolicy(
  tx: Tx,
  column: typeof verifiermain.ima_policy_id | typeof verifiermain.mb_policy_id,
  id: number,
): Promise<string | undefined> {
  const used = await tx
    .select({ id: verifiermain.agent_id })
    .from(verifiermain)
    .where(eq(column, id))
    .limit(1)
  return used[0]?.id
}

/** The outcome of deleting a policy: `inUseBy` is an agent that still references it. */
export type PolicyDeletion = 'missing' | 'deleted' | { inUseBy: string }

/** The policy tables of the verifier. */
export class PolicyStore {
  readonly db: Db

  constructor(db: Db) {
    this.db = db
  }

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

  /** Deletes a runtime policy unless an agent uses it (the old version goes to history). */
  async deleteAllowlist(name: string): Promise<PolicyDeletion> {
    return this.db.transaction(async (tx) => {
      const old = (
        await tx.select().from(allowlists).where(eq(allowlists.name, name)).for('update')
      )[0]
      if (old === undefined) return 'missing'
      const inUseBy = await agentUsingPolicy(tx, verifiermain.ima_policy_id, old.id)
      if (inUseBy !== undefined) return { inUseBy }
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

  /** Deletes an MB policy unless an agent uses it. */
  async deleteMbPolicy(name: string): Promise<PolicyDeletion> {
    return this.db.transaction(async (tx) => {
      const old = (
        await tx.select().from(mbpolicies).where(eq(mbpolicies.name, name)).for('update')
      )[0]
      if (old === undefined) return 'missing'
      const inUseBy = await agentUsingPolicy(tx, verifiermain.mb_policy_id, old.id)
      if (inUseBy !== undefined) return { inUseBy }
      await archiveMbPolicy(tx, old)
      await tx.delete(mbpolicies).where(eq(mbpolicies.id, old.id))
      return 'deleted'
    })
  }
}
