/**
 * The instance leases of one loop. Every instance heartbeats `verifier_instances`; each lease tick
 * renews the rows no snapshot write extended lately (a steady fleet costs no extra row updates),
 * claims unowned or expired agents of its `verifier_id` up to a fair share (polled agents / live
 * instances), gives back agents above `share + 10 %`, and reaps terminated rows. A restarted
 * process with the same instance id takes its own leases back at once.
 *
 * @module
 */
import { randomInt } from 'node:crypto'
import { hostname } from 'node:os'
import type { AgentConnections } from '../../http/agent-client/agent-connections.ts'
import type { Logger } from '../../log/logger.ts'
import { AGENT_STATES, APPROVED_REACTIVATE_STATES } from '../../protocol/agent-states.ts'
import type { AgentRow, VerifierStore } from '../store/store.ts'
import type { AgentRecord } from './agent-record.ts'
import type { SnapshotWriter } from './snapshot-writer.ts'
import { resumesOnClaim } from './transitions.ts'
import type { VerifierSettings } from './verifier-settings.ts'

/** The loop's membership, as the lease keeper changes it. */
export interface LeaseMembership {
  readonly records: ReadonlyMap<string, AgentRecord>
  /** Takes an agent and schedules its first round in `delayMs`. */
  adopt(row: AgentRow, delayMs: number): void
  /** Forgets an agent. */
  drop(id: string): void
  /** The stored policy versions, to drop stale compiled policies. */
  policyVersions(versions: { ima: Map<number, number>; mb: Map<number, number> }): void
}

/** Options of {@link LeaseKeeper}. */
export interface LeaseKeeperOptions {
  store: VerifierStore
  agents: Pick<AgentConnections, 'importSiblingSessions'>
  writer: SnapshotWriter
  members: LeaseMembership
  log: Logger
  /** First rounds of taken agents are spread over one quote interval. */
  settings: Pick<VerifierSettings, 'verifierId' | 'instanceId' | 'leaseMs' | 'quoteIntervalMs'>
}

/** The keeper. */
export class LeaseKeeper {
  readonly #o: LeaseKeeperOptions
  readonly #started = Date.now()
  #timer: ReturnType<typeof setInterval> | undefined
  /** Whether a renewal of every held row has been done (the first tick does one). */
  #renewedAll = false
  #busy = false
  #stopped = false
  /** Live instances of this verifier id, as of the last tick. */
  liveInstances = 1

  constructor(o: LeaseKeeperOptions) {
    this.#o = o
  }

  /** Runs the first tick (claiming agents), then one every third of a lease. */
  async start(): Promise<void> {
    await this.tick()
    this.#timer = setInterval(
      () => void this.tick(),
      Math.max(250, Math.floor(this.#o.settings.leaseMs / 3)),
    )
  }

  stop(): void {
    this.#stopped = true
    if (this.#timer !== undefined) clearInterval(this.#timer)
  }

  /** Gives the leases of `ids` back and removes this instance (orderly stop). */
  async releaseAll(ids: string[]): Promise<void> {
    await this.#o.store.release(this.#o.settings.instanceId, ids)
    await this.#o.store.removeInstance(this.#o.settings.instanceId)
  }

  /** One lease tick; failures go to the writer's failure state, never throw. */
  async tick(): Promise<void> {
    if (this.#busy || this.#stopped) return
    this.#busy = true
    const o = this.#o
    const s = o.settings
    try {
      await o.store.heartbeat(
        s.instanceId,
        s.verifierId,
        `${hostname()}/${process.pid}`,
        this.#started,
      )
      const held = await this.#renewAndPrune()
      await this.#rebalance(held)
      await o.store.reapTerminated(s.verifierId)
      // live policy updates made through other instances
      o.members.policyVersions(await o.store.policyVersions())
      o.writer.succeeded()
    } catch (err) {
      o.writer.failed(LEASE_FAILED, err)
    } finally {
      this.#busy = false
    }
  }

  /**
   * Extends this instance's leases. The first call renews every held row (after a restart our own
   * leases are taken back at once); later ones only rows whose lease ends within half a lease
   * period (agents polled more often had theirs extended by their writes). Records whose row is
   * lost, terminated or TENANT_FAILED are dropped. Returns the renewed rows' states.
   */
  async #renewAndPrune(): Promise<Map<string, number>> {
    const o = this.#o
    const s = o.settings
    const { held, dueBefore } = await o.writer.whileNoWrite(async () => {
      const now = Date.now()
      const expires = now + s.leaseMs
      const due = this.#renewedAll ? now + Math.floor(s.leaseMs / 2) : undefined
      const rows = await o.store.renewLeases(s.instanceId, expires, due)
      this.#renewedAll = true
      for (const id of rows.keys()) {
        const rec = o.members.records.get(id)
        if (rec !== undefined) rec.leaseUntil = expires
      }
      return { held: rows, dueBefore: due ?? Number.POSITIVE_INFINITY }
    })
    for (const [id, rec] of [...o.members.records]) {
      const st = held.get(id)
      if (st === undefined) {
        // not renewed: a recent write extended the lease, or the row is lost
        if (rec.leaseUntil < dueBefore) o.members.drop(id)
      } else if (st === AGENT_STATES.TERMINATED) {
        const current = o.members.records.get(id) // the API may have dropped it meanwhile
        if (current !== undefined && !current.busy) {
          o.members.drop(id)
          await o.store.deleteAgent(id)
        }
      } else if (st === AGENT_STATES.TENANT_FAILED) {
        o.members.drop(id)
      }
    }
    return held
  }

  /** Takes up held rows not polled yet, claims up to the fair share, or releases the excess. */
  async #rebalance(held: Map<string, number>): Promise<void> {
    const o = this.#o
    const s = o.settings
    const { records } = o.members
    // rows we hold but do not poll yet (our own leases after a restart, or reactivations)
    const missing = [...held]
      .filter(([id, st]) => !records.has(id) && resumesOnClaim(st))
      .map(([id]) => id)
    this.liveInstances = Math.max(1, await o.store.liveInstances(s.verifierId, s.leaseMs))
    const total = await o.store.countPolled(s.verifierId)
    const share = Math.ceil(total / this.liveInstances)
    const polled = [...records.values()].filter((r) => APPROVED_REACTIVATE_STATES.has(r.state))
    const room = share - polled.length
    const rows = missing.length > 0 ? await o.store.getAgents(missing) : []
    for (const row of rows) o.members.adopt(row, this.#spread())
    if (room - rows.length > 0) await this.#claim(room - rows.length)
    else if (polled.length > Math.ceil(share * 1.1) + 1) await this.#release(polled, share)
  }

  async #claim(count: number): Promise<void> {
    const o = this.#o
    const s = o.settings
    const claimed = await o.store.claim(s.instanceId, s.verifierId, count, Date.now() + s.leaseMs)
    if (claimed.length === 0) return
    // taking a dead sibling's agents over: resume the TLS sessions it saved, if it ran here
    o.agents.importSiblingSessions()
    for (const row of claimed)
      if (!o.members.records.has(row.agent_id)) o.members.adopt(row, this.#spread())
    o.log.info('claimed agents', { count: claimed.length, held: o.members.records.size })
  }

  async #release(polled: AgentRecord[], share: number): Promise<void> {
    const o = this.#o
    const s = o.settings
    const give = polled
      .filter((r) => !r.busy)
      .slice(0, polled.length - share)
      .map((r) => r.id)
    await o.writer.flush()
    for (const id of give) o.members.drop(id)
    await o.store.release(s.instanceId, give)
    o.log.info('released agents to rebalance', { count: give.length, held: o.members.records.size })
  }

  #spread(): number {
    return randomInt(Math.max(1, this.#o.settings.quoteIntervalMs))
  }
}

const LEASE_FAILED = 'lease maintenance failed'
