/**
 * Batched state writes of the loop: rounds mark records dirty; every `flushMs` one pass writes all
 * dirty snapshots, guarded (not TERMINATED/TENANT_FAILED, still ours), and extends the written
 * rows' leases. Nothing is lost while the database is away: a failed write leaves the records
 * dirty for the next pass. Also keeps the write-failure state `/health` reports.
 *
 * @module
 */
import type { DatabaseHealth } from '../../db/database-health.ts'
import { isDatabaseUnavailable } from '../../db/database-unavailable.ts'
import { describeError } from '../../log/describe-error.ts'
import { LogThrottle } from '../../log/log-throttle.ts'
import type { LogFields, Logger } from '../../log/logger.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'
import type { AgentSnapshot, HotSnapshot, VerifierStore } from '../store/store.ts'
import {
  type AgentRecord,
  coldUnchanged,
  coldValuesOf,
  hotSnapshotOf,
  snapshotOf,
} from './agent-record.ts'
import type { VerifierSettings } from './verifier-settings.ts'

/** Since when writes (or lease ticks) have failed, and the last error. */
export interface WriteFailure {
  since: number
  what: string
  error: string
}

/** Options of {@link SnapshotWriter}. */
export interface SnapshotWriterOptions {
  store: Pick<VerifierStore, 'writeSnapshots' | 'getAgents' | 'deleteAgent'>
  settings: Pick<VerifierSettings, 'instanceId' | 'leaseMs'>
  log: Logger
  /** Told the outcome of every write and lease tick; it logs outages once per change of state. */
  dbHealth?: DatabaseHealth
  /** Whether `rec` is still the loop's record for its agent (not dropped or re-adopted). */
  isCurrent(rec: AgentRecord): boolean
  /** Forgets an agent whose write was refused. */
  drop(id: string): void
}

/** One batch: the records written, split by how much of their snapshot changed. */
interface Batch {
  all: AgentRecord[]
  hot: HotSnapshot[]
  full: { rec: AgentRecord; snapshot: AgentSnapshot; cold: readonly unknown[] }[]
}

/** The writer. */
export class SnapshotWriter {
  readonly #o: SnapshotWriterOptions
  /** Records marked dirty since the last flush took them. */
  #dirty: AgentRecord[] = []
  #flushing: Promise<void> | undefined
  /** A lease renewal in flight: writes wait for it (see {@link SnapshotWriter.whileNoWrite}). */
  #renewal: Promise<unknown> | undefined
  #timer: ReturnType<typeof setInterval> | undefined
  /** Repeated failures: one line a minute per kind, with the count held back. */
  readonly #failures = new LogThrottle(60_000)
  #failure: WriteFailure | undefined

  constructor(o: SnapshotWriterOptions) {
    this.#o = o
  }

  /** Flushes every `flushMs`. */
  start(flushMs: number): void {
    this.#timer = setInterval(() => void this.flush(), flushMs)
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer)
  }

  /** Queues `rec` for the next flush (once, however often it changes before then). */
  markDirty(rec: AgentRecord): void {
    if (rec.dirty) return
    rec.dirty = true
    this.#dirty.push(rec)
  }

  /**
   * Writes every dirty snapshot, in at most two statements: records whose rarely changing columns
   * are as last written send only the columns a round changes (the steady state), the others
   * their whole snapshot.
   */
  async flush(): Promise<void> {
    // a write landing during a renewal would extend leases the renewal cannot account for
    if (this.#renewal !== undefined) await this.#renewal.catch(() => undefined)
    if (this.#flushing !== undefined) return this.#flushing
    const batch = this.#takeBatch()
    if (batch.all.length === 0) return
    this.#flushing = this.#write(batch).finally(() => {
      this.#flushing = undefined
    })
    return this.#flushing
  }

  /**
   * Runs `renew` with no write in flight and holds writes back until it settles, so every row a
   * renewal skips for being fresh was made fresh by a write whose outcome is already known.
   */
  async whileNoWrite<T>(renew: () => Promise<T>): Promise<T> {
    while (this.#flushing !== undefined) await this.#flushing
    const renewal = renew()
    this.#renewal = renewal
    try {
      return await renewal
    } finally {
      this.#renewal = undefined
    }
  }

  #takeBatch(): Batch {
    const batch: Batch = { all: [], hot: [], full: [] }
    for (const rec of this.#dirty) {
      rec.dirty = false
      if (!this.#o.isCurrent(rec)) continue
      batch.all.push(rec)
      if (coldUnchanged(rec)) batch.hot.push(hotSnapshotOf(rec))
      else batch.full.push({ rec, snapshot: snapshotOf(rec), cold: coldValuesOf(rec) })
    }
    this.#dirty = []
    return batch
  }

  async #write(batch: Batch): Promise<void> {
    const { store } = this.#o
    const { instanceId, leaseMs } = this.#o.settings
    const expires = Date.now() + leaseMs
    try {
      const full = batch.full.map((f) => f.snapshot)
      const [a, b] = await Promise.all([
        store.writeSnapshots(instanceId, full, expires),
        store.writeSnapshots(instanceId, batch.hot, expires, true),
      ])
      const refused = [...a, ...b]
      const notWritten = new Set(refused)
      for (const f of batch.full) if (!notWritten.has(f.rec.id)) f.rec.written = f.cold
      for (const rec of batch.all) if (!notWritten.has(rec.id)) rec.leaseUntil = expires
      this.succeeded()
      if (refused.length > 0) await this.#refused(refused)
    } catch (err) {
      for (const rec of batch.all) this.markDirty(rec)
      this.failed(WRITE_FAILED, err, { agents: batch.all.length })
    }
  }

  /**
   * Agents whose write was refused (terminated, stopped, deleted or taken by another instance):
   * forgotten, and deleted when they were TERMINATED.
   */
  async #refused(ids: string[]): Promise<void> {
    const rows = await this.#o.store.getAgents(ids)
    const byId = new Map(rows.map((r) => [r.agent_id, r]))
    for (const id of ids) {
      this.#o.drop(id)
      if (byId.get(id)?.operational_state === AGENT_STATES.TERMINATED) {
        await this.#o.store.deleteAgent(id)
        this.#o.log.info('agent deleted after termination', { agent_id: id })
      }
    }
  }

  /** Since when writes or lease ticks have failed with no success between; undefined while they succeed. */
  get failure(): WriteFailure | undefined {
    return this.#failure
  }

  /** A write or lease tick succeeded. */
  succeeded(): void {
    this.#o.dbHealth?.report()
    this.#failure = undefined
  }

  /**
   * A write or lease tick failed. An outage is logged by the database health, so here only at
   * DEBUG; any other error at ERROR; either at most once a minute (the flush retries every pass).
   */
  failed(what: string, err: unknown, fields: LogFields = {}): void {
    const health = this.#o.dbHealth
    health?.report(err)
    this.#failure = { since: this.#failure?.since ?? Date.now(), what, error: describeError(err) }
    const level = health !== undefined && isDatabaseUnavailable(err) ? 'DEBUG' : 'ERROR'
    this.#failures.write(this.#o.log, level, what, { ...fields, error: err })
  }
}

const WRITE_FAILED = 'batched state write failed; will retry'
