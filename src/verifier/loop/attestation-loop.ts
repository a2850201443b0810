/**
 * The pull-mode attestation loop of one verifier process: the agents it holds, their state
 * machine (upstream `cloud_verifier_tornado.py: process_agent`, keylime-api.md §2), the schedule,
 * batched state writes and the instance leases.
 *
 * - **States.** START → GET_QUOTE (first quote with `partial=0` fetches the NK) → PROVIDE_V
 *   (`keys/vkey`, skipped without V) → GET_QUOTE every `quote_interval`. Communication failures
 *   (connection errors, timeouts, 408/5xx, non-JSON) → GET_QUOTE_RETRY / PROVIDE_V_RETRY with
 *   `retry_interval` (`**n` when `exponential_backoff`), FAILED after `max_retries`. A failed
 *   check → INVALID_QUOTE and a revocation; polling continues only for recoverable events below
 *   the maximum severity. `severity_level` and `last_event_id` only ratchet up.
 * - **Retry states are stored** (4 and 6) while retrying, where upstream keeps showing 3 and 5.
 * - **Restart.** An agent in GET_QUOTE or GET_QUOTE_RETRY whose NK is known and that has passed
 *   at least once resumes polling with `partial=1` (V was delivered: the quote success that
 *   precedes PROVIDE_V and the PROVIDE_V → GET_QUOTE step are written as one snapshot); other
 *   polled states restart at START, as upstream does for all of them.
 * - **Writes.** Each round updates the in-memory record and marks it dirty; every `flushMs` one
 *   statement writes all dirty snapshots, guarded (not TERMINATED/TENANT_FAILED, still ours). A
 *   guarded-out agent is dropped from memory, and deleted when it was TERMINATED.
 * - **Leases.** Every instance heartbeats `verifier_instances`. Each snapshot write extends the
 *   written rows' leases; the lease tick renews in bulk only the rows no write extended lately
 *   (agents in retry or stopped), so a steady fleet costs no extra row updates. It claims unowned
 *   or expired agents of its `verifier_id` up to a fair share (polled agents / live instances),
 *   and gives back agents above `share + 10 %`. A restarted process with the same instance id
 *   takes its own leases back at once; one that takes a dead sibling's agents over resumes the TLS
 *   sessions that sibling saved, when they share a `KEYLIME_DIR`.
 *
 * @module
 */
import { constants, publicEncrypt, randomInt } from 'node:crypto'
import { hostname } from 'node:os'
import { isDatabaseUnavailable } from '../../db/database-unavailable.ts'
import { randomPassword } from '../../protocol/random-password.ts'
import type { DatabaseHealth } from '../../db/database-health.ts'
import { compareApiVersions } from '../../http/api-version.ts'
import {
  AnswerBufferFull,
  type MtlsResponse,
  PeerAnswerTooLarge,
  PeerBadResponse,
  PeerUnreachable,
} from '../../http/mtls-client.ts'
import { type CompiledRuntimePolicy, PolicyCache } from '../../ima/index.ts'
import { describeError } from '../../log/describe-error.ts'
import { LogThrottle } from '../../log/log-throttle.ts'
import type { LogFields, Logger } from '../../log/logger.ts'
import type { AgentConnections, AgentTarget } from '../../http/agent-client/agent-connections.ts'
import {
  type AgentRecord,
  coldUnchanged,
  coldValuesOf,
  hotSnapshotOf,
  recordFromRow,
  snapshotOf,
} from './agent-record.ts'
import type { CheckPool } from '../checks/check-pool.ts'
import { type CheckOptions, type RoundPolicies, requestMask } from '../checks/check-quote.ts'
import { Failure, type FailureEvent, type SeverityRules } from '../checks/failure.ts'
import type { VerifierMetrics } from '../ops/metrics.ts'
import type { RevocationNotifier, RevocationSubject } from '../notify/revocation-notifier.ts'
import { Scheduler } from './scheduler.ts'
import { AGENT_STATES, APPROVED_REACTIVATE_STATES, stateName } from '../../protocol/agent-states.ts'
import {
  type AgentRow,
  type AgentSnapshot,
  type HotSnapshot,
  nowSeconds,
  type VerifierStore,
} from '../store/store.ts'
import { formatMask } from '../../protocol/tpm-policy.ts'

/** Agent API versions the verifier speaks to agents (pull mode): 2.1 … 2.6. */
export const AGENT_API_VERSIONS = ['2.1', '2.2', '2.3', '2.4', '2.5', '2.6'] as const

/** Options of {@link AttestationLoop}. */
export interface AttestationLoopOptions {
  store: VerifierStore
  /** Kept-alive connections to agents (one per agent address). */
  agents: AgentConnections
  /** Where quote checks run (heavy ones in workers). */
  checks: CheckPool
  notifier: RevocationNotifier
  metrics: VerifierMetrics
  log: Logger
  rules: SeverityRules
  check: CheckOptions
  verifierId: string
  instanceId: string
  quoteIntervalMs: number
  retryInterval: number
  maxRetries: number
  exponentialBackoff: boolean
  requestTimeoutMs: number
  /** Plain HTTP to agents when false (`enable_agent_mtls = False`). */
  agentMtls: boolean
  maxInFlight: number
  flushMs: number
  leaseMs: number
  /**
   * Told the outcome of every batched write and lease tick (`/health`); it logs outages, once per
   * change of state.
   */
  dbHealth?: DatabaseHealth
}

interface PolicyEntry {
  version: number
  compiled: CompiledRuntimePolicy | null
  /** The stored text (sent once to each check worker). */
  text: string | undefined
  generator: number
  release?: () => void
}

type Outcome = 'pass' | 'fail' | 'retry' | 'error' | 'none'

/** The loop. */
export class AttestationLoop {
  readonly #o: AttestationLoopOptions
  readonly records = new Map<string, AgentRecord>()
  readonly scheduler: Scheduler
  readonly #policyCache = new PolicyCache(16)
  readonly #ima = new Map<number, PolicyEntry>()
  readonly #mb = new Map<number, { version: number; text: string | null }>()
  #flushTimer: ReturnType<typeof setInterval> | undefined
  #leaseTimer: ReturnType<typeof setInterval> | undefined
  #flushing: Promise<void> | undefined
  /** Records marked dirty since the last flush took them (see {@link AttestationLoop.flush}). */
  #dirty: AgentRecord[] = []
  /** A lease renewal in flight (writes wait for it: see {@link AttestationLoop.flush}). */
  #renewal: Promise<unknown> | undefined
  /** Whether a renewal of every held row has been done (the first lease tick does one). */
  #renewedAll = false
  #leaseBusy = false
  #stopped = false
  /** Repeated write and lease failures: one line a minute per kind, with the count held back. */
  readonly #failures = new LogThrottle(60_000)
  #writeFailure: { since: number; what: string; error: string } | undefined
  readonly #started = Date.now()
  liveInstances = 1

  constructor(o: AttestationLoopOptions) {
    this.#o = o
    this.scheduler = new Scheduler({
      maxInFlight: o.maxInFlight,
      run: (id) => this.#round(id),
      admit: (id) => this.#admit(id),
      onLag: (ms) => o.metrics.scheduleLag.observe(ms),
    })
  }

  /** Starts heartbeats, claims agents and begins polling. */
  async start(): Promise<void> {
    await this.#leaseTick()
    this.#flushTimer = setInterval(() => void this.flush(), this.#o.flushMs)
    this.#leaseTimer = setInterval(
      () => void this.#leaseTick(),
      Math.max(250, Math.floor(this.#o.leaseMs / 3)),
    )
  }

  /**
   * Stops everything at once without writing or releasing anything: what a `kill -9` leaves
   * behind (tests of lease take-over use it).
   */
  async halt(): Promise<void> {
    this.#stopped = true
    if (this.#flushTimer !== undefined) clearInterval(this.#flushTimer)
    if (this.#leaseTimer !== undefined) clearInterval(this.#leaseTimer)
    await this.scheduler.stop(0)
    this.#o.agents.close()
    this.#o.checks.close()
    this.records.clear()
  }

  /** Stops polling, drains rounds, writes the last snapshots and gives the leases back. */
  async stop(drainMs: number): Promise<void> {
    this.#stopped = true
    if (this.#flushTimer !== undefined) clearInterval(this.#flushTimer)
    if (this.#leaseTimer !== undefined) clearInterval(this.#leaseTimer)
    await this.scheduler.stop(drainMs)
    await this.flush().catch(() => undefined)
    try {
      await this.#o.store.release(this.#o.instanceId, [...this.records.keys()])
      await this.#o.store.removeInstance(this.#o.instanceId)
    } catch (err) {
      this.#o.log.warn('could not release leases at stop', { error: err })
    }
    this.#o.agents.close()
    this.#o.checks.close()
    this.records.clear()
  }

  // ------------------------------------------------------------------ membership

  /** Takes an agent (enrolment, claim) and schedules it. */
  adopt(row: AgentRow, delayMs = 0): AgentRecord {
    const old = this.records.get(row.agent_id)
    const rec = recordFromRow(row)
    if (old !== undefined) rec.epoch = old.epoch + 1
    if (row.lease_owner === this.#o.instanceId) rec.leaseUntil = Number(row.lease_expires ?? 0)
    if (
      (rec.state === AGENT_STATES.GET_QUOTE || rec.state === AGENT_STATES.GET_QUOTE_RETRY) &&
      rec.publicKey !== '' &&
      rec.attestationCount > 0
    ) {
      rec.state = AGENT_STATES.GET_QUOTE
    } else if (rec.state !== AGENT_STATES.START) {
      rec.state = AGENT_STATES.START
      this.#markDirty(rec)
    }
    this.records.set(rec.id, rec)
    this.scheduler.schedule(rec.id, performance.now() + delayMs)
    return rec
  }

  /** Forgets an agent (stop, delete, lost lease). */
  drop(id: string): void {
    const rec = this.records.get(id)
    if (rec !== undefined) rec.epoch++
    this.records.delete(id)
    this.scheduler.cancel(id)
  }

  /** Policies changed (PUT): reload at the next round. */
  invalidatePolicies(): void {
    for (const e of this.#ima.values()) e.release?.()
    this.#ima.clear()
    this.#mb.clear()
  }

  // ------------------------------------------------------------------ the round

  #setState(rec: AgentRecord, state: number): void {
    if (rec.state !== state) {
      this.#o.log.info('agent state change', {
        agent_id: rec.id,
        from: stateName(rec.state),
        to: stateName(state),
      })
      rec.state = state
    }
    this.#markDirty(rec)
  }

  /** Queues `rec` for the next flush (once, however often it changes before then). */
  #markDirty(rec: AgentRecord): void {
    if (rec.dirty) return
    rec.dirty = true
    this.#dirty.push(rec)
  }

  /** The agent's address, built once per record (a record's address never changes). */
  #target(rec: AgentRecord): AgentTarget {
    if (rec.target === undefined) {
      const https = this.#o.agentMtls && rec.mtlsCert !== null
      rec.target = { ip: rec.ip, port: rec.port, https, pinnedCert: rec.mtlsCert ?? undefined }
    }
    return rec.target
  }

  /** The round's policies: synchronous when both are cached (every round but the first). */
  #policies(rec: AgentRecord): RoundPolicies | Promise<RoundPolicies> {
    const ima = rec.imaPolicyId === null ? null : this.#ima.get(rec.imaPolicyId)
    const mb = rec.mbPolicyId === null ? null : this.#mb.get(rec.mbPolicyId)
    if (ima === undefined || mb === undefined) return this.#loadPolicies(rec)
    return { ima: ima?.compiled ?? null, mb: mb?.text ?? null }
  }

  async #loadPolicies(rec: AgentRecord): Promise<RoundPolicies> {
    let ima: CompiledRuntimePolicy | null = null
    if (rec.imaPolicyId !== null) {
      let e = this.#ima.get(rec.imaPolicyId)
      if (e === undefined) {
        const row = await this.#o.store.getAllowlistById(rec.imaPolicyId)
        e = {
          version: row?.version ?? 0,
          compiled: null,
          text: undefined,
          generator: row?.generator ?? 0,
        }
        if (row?.ima_policy && (row.generator ?? 0) > 1) {
          try {
            const lease = this.#policyCache.acquire(row.ima_policy)
            e.compiled = lease.policy
            e.release = lease.release
            e.text = row.ima_policy
          } catch (err) {
            this.#o.log.error('stored runtime policy does not load', {
              name: row.name,
              error: err,
            })
          }
        }
        this.#ima.set(rec.imaPolicyId, e)
      }
      ima = e.compiled
    }
    let mb: string | null = null
    if (rec.mbPolicyId !== null) {
      let e = this.#mb.get(rec.mbPolicyId)
      if (e === undefined) {
        const row = await this.#o.store.getMbPolicyById(rec.mbPolicyId)
        e = { version: row?.version ?? 0, text: row?.mb_policy ?? null }
        this.#mb.set(rec.mbPolicyId, e)
      }
      mb = e.text
    }
    return { ima, mb }
  }

  /**
   * A round that needs a new connection waits for its slot in the connection rate limit in the
   * schedule, not in an in-flight slot (see AgentConnections.reserveConnect): rounds on warm
   * connections are never starved by rounds queued for a handshake.
   */
  #admit(id: string): number {
    const rec = this.records.get(id)
    if (rec === undefined || rec.busy || this.#stopped) return 0
    if (rec.connectReserved) {
      rec.connectReserved = false
      return 0
    }
    const target = this.#target(rec)
    if (this.#o.agents.isWarm(target)) return 0
    const wait = this.#o.agents.reserveConnect(target)
    if (wait <= 20) return 0
    rec.connectReserved = true
    return wait
  }

  async #round(id: string): Promise<void> {
    const rec = this.records.get(id)
    if (rec === undefined || this.#stopped) return
    if (rec.busy) {
      this.scheduler.schedule(id, performance.now() + 100)
      return
    }
    rec.busy = true
    const epoch = rec.epoch
    const t0 = performance.now()
    let outcome: Outcome = 'none'
    try {
      switch (rec.state) {
        case AGENT_STATES.START:
          outcome = await this.#getQuote(rec, epoch, true)
          break
        case AGENT_STATES.GET_QUOTE:
        case AGENT_STATES.GET_QUOTE_RETRY:
          outcome = await this.#getQuote(rec, epoch, rec.publicKey === '')
          break
        case AGENT_STATES.PROVIDE_V:
        case AGENT_STATES.PROVIDE_V_RETRY:
          outcome = await this.#provideV(rec, epoch)
          break
        default:
          break
      }
    } catch (err) {
      if (isDatabaseUnavailable(err) && rec.epoch === epoch) {
        // the database, not the agent: try the round again later (the outage is logged once)
        outcome = 'retry'
        this.scheduler.schedule(id, performance.now() + Math.abs(this.#o.retryInterval) * 1000)
      } else {
        outcome = 'error'
        this.#roundThrew(rec, epoch, err)
      }
    } finally {
      rec.busy = false
      if (outcome !== 'none') {
        this.#o.metrics.result(outcome)
        this.#o.metrics.roundLatency.observe(performance.now() - t0)
      }
    }
  }

  /**
   * A round that threw (a bug, a failed check worker, anything unforeseen) is the agent's
   * failure, never the process's: FAILED with `internal.verifier.exception` (counted), logged
   * when the state changes, not per round. Never throws.
   */
  #roundThrew(rec: AgentRecord, epoch: number, err: unknown): void {
    const error = describeError(err)
    try {
      if (rec.epoch !== epoch) return
      const before = rec.state
      const f = new Failure(this.#o.rules)
      f.add(
        'internal.verifier.exception',
        { context: 'Agent caused the verifier to throw an exception', data: error },
        false,
      )
      this.#o.metrics.event('internal.verifier.exception')
      this.#fail(rec, AGENT_STATES.FAILED, f)
      if (rec.state !== before) {
        this.#o.log.error('attestation round threw; agent failed', { agent_id: rec.id, error })
      }
    } catch (inner) {
      // the failure path itself threw: stop polling this agent, keep serving the others
      this.scheduler.cancel(rec.id)
      this.#o.log.error('attestation round failed and could not be recorded', {
        agent_id: rec.id,
        error,
        recording: inner instanceof Error ? inner.message : 'non-error exception',
      })
    }
  }

  async #negotiate(rec: AgentRecord): Promise<boolean> {
    let res: MtlsResponse
    try {
      res = await this.#o.agents.request(this.#target(rec), {
        path: '/version',
        timeoutMs: this.#o.requestTimeoutMs,
      })
    } catch {
      return false
    }
    if (res.status !== 200 || typeof res.results !== 'object' || res.results === null) return false
    const r = res.results as { supported_versions?: unknown; supported_version?: unknown }
    // agent input: only strings count (String() of a hostile object throws)
    const theirs: unknown[] = Array.isArray(r.supported_versions)
      ? r.supported_versions
      : typeof r.supported_version === 'string'
        ? [r.supported_version]
        : []
    const common = AGENT_API_VERSIONS.filter((v) => theirs.includes(v)).sort(compareApiVersions)
    const best = common[common.length - 1]
    if (best === undefined) return false
    if (
      rec.attestationCount > 0 &&
      rec.versionChecked &&
      compareApiVersions(best, rec.supportedVersion) <= 0 &&
      best !== rec.supportedVersion
    ) {
      this.#o.log.warn('agent API version downgrade refused', {
        agent_id: rec.id,
        offered: best,
        had: rec.supportedVersion,
      })
      return false
    }
    if (rec.attestationCount > 0 && compareApiVersions(best, rec.supportedVersion) < 0) {
      this.#o.log.warn('agent API version downgrade refused', {
        agent_id: rec.id,
        offered: best,
        had: rec.supportedVersion,
      })
      return false
    }
    if (best !== rec.supportedVersion) {
      this.#o.log.info('agent API version negotiated', { agent_id: rec.id, version: best })
      rec.supportedVersion = best
      this.#markDirty(rec)
    }
    rec.versionChecked = true
    return true
  }

  /** A non-200 answer: returns 'retry' for transient failures, 'version' for a version refusal. */
  #classify(status: number, body: unknown): 'retry' | 'version' | 'fatal' {
    if (
      status === 408 ||
      status === 500 ||
      status === 599 ||
      status === 502 ||
      status === 503 ||
      status === 504
    ) {
      return 'retry'
    }
    if (status === 400) {
      const s = (body as { status?: unknown } | null)?.status
      if (typeof s === 'string' && s.includes('API version not supported')) return 'version'
    }
    return 'fatal'
  }

  async #getQuote(rec: AgentRecord, epoch: number, needPubkey: boolean): Promise<Outcome> {
    if (rec.state === AGENT_STATES.START) this.#setState(rec, AGENT_STATES.GET_QUOTE)
    const p = this.#policies(rec)
    const policies = p instanceof Promise ? await p : p
    const nonce = randomPassword(20)
    const mask = formatMask(requestMask(rec, policies))
    const path =
      `/v${rec.supportedVersion}/quotes/integrity?nonce=${nonce}&mask=${mask}` +
      `&partial=${needPubkey ? 0 : 1}&ima_ml_entry=${rec.ima.nextEntry}`
    let res: MtlsResponse
    try {
      res = await this.#o.agents.request(this.#target(rec), {
        path,
        timeoutMs: this.#o.requestTimeoutMs,
      })
    } catch (err) {
      if (rec.epoch !== epoch) return 'none'
      if (err instanceof PeerAnswerTooLarge || err instanceof AnswerBufferFull)
        return this.#answerLimit(rec, err)
      if (err instanceof PeerUnreachable || err instanceof PeerBadResponse)
        return this.#retry(rec, 'quote')
      throw err
    }
    if (rec.epoch !== epoch) return 'none'
    rec.lastReceivedQuote = nowSeconds()
    if (res.status !== 200) {
      const kind = this.#classify(res.status, res.body)
      if (kind === 'retry') return this.#retry(rec, 'quote')
      const f = new Failure(this.#o.rules)
      if (kind === 'version') {
        if (await this.#negotiate(rec)) {
          if (rec.epoch === epoch) this.scheduler.schedule(rec.id, performance.now())
          return 'retry'
        }
        const status = (res.body as { status?: unknown } | null)?.status
        f.add(
          'internal.verifier.version_not_supported',
          {
            context: 'Agent API version not supported',
            data: typeof status === 'string' ? status.slice(0, 200) : null,
          },
          false,
        )
      } else {
        f.add('internal.verifier.no_quote', 'Unexpected Get Quote reponse from agent', false)
      }
      this.#fail(rec, AGENT_STATES.FAILED, f)
      return 'error'
    }
    const c0 = performance.now()
    const pe = rec.imaPolicyId === null ? undefined : this.#ima.get(rec.imaPolicyId)
    const checked = this.#o.checks.check(
      rec,
      res.results,
      nonce,
      policies,
      pe === undefined ? null : `${rec.imaPolicyId}:${pe.version}`,
      () => pe?.text,
    )
    const result = checked instanceof Promise ? await checked : checked
    this.#o.metrics.checkLatency.observe(performance.now() - c0)
    if (rec.epoch !== epoch) return 'none'
    if (result.kind === 'reboot') {
      rec.ima = result.ima
      this.#markDirty(rec)
      this.scheduler.schedule(rec.id, performance.now())
      return 'retry'
    }
    if (result.kind === 'fail') {
      if (result.ima !== undefined) rec.ima = result.ima
      for (const e of result.failure.events) this.#o.metrics.event(e.event_id)
      this.#fail(rec, AGENT_STATES.INVALID_QUOTE, result.failure)
      return 'fail'
    }
    const u = result.updates
    rec.publicKey = u.publicKey
    if (result.nkChanged) rec.encryptedV = null
    rec.hashAlg = u.hashAlg
    rec.encAlg = u.encAlg
    rec.signAlg = u.signAlg
    rec.clock = u.clock
    rec.ima = u.ima
    rec.attestationCount++
    rec.lastSuccessfulAttestation = nowSeconds()
    rec.retries = 0
    if (needPubkey && rec.v !== null) {
      this.#setState(rec, AGENT_STATES.PROVIDE_V)
      await this.#provideV(rec, epoch) // the quote passed; how V delivery went shows in the state
      return 'pass'
    }
    this.#setState(rec, AGENT_STATES.GET_QUOTE)
    this.scheduler.schedule(rec.id, performance.now() + this.#o.quoteIntervalMs)
    return 'pass'
  }

  async #provideV(rec: AgentRecord, epoch: number): Promise<Outcome> {
    if (rec.v === null) {
      this.#setState(rec, AGENT_STATES.GET_QUOTE)
      this.scheduler.schedule(rec.id, performance.now() + this.#o.quoteIntervalMs)
      return 'none'
    }
    if (rec.publicKey === '') {
      this.#setState(rec, AGENT_STATES.START)
      this.scheduler.schedule(rec.id, performance.now())
      return 'none'
    }
    if (rec.encryptedV === null) {
      rec.encryptedV = publicEncrypt(
        { key: rec.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
        Buffer.from(rec.v, 'base64'),
      ).toString('base64')
    }
    let res: MtlsResponse
    try {
      res = await this.#o.agents.request(this.#target(rec), {
        method: 'POST',
        path: `/v${rec.supportedVersion}/keys/vkey`,
        json: { encrypted_key: rec.encryptedV },
        timeoutMs: this.#o.requestTimeoutMs,
      })
    } catch (err) {
      if (rec.epoch !== epoch) return 'none'
      if (err instanceof PeerAnswerTooLarge || err instanceof AnswerBufferFull)
        return this.#answerLimit(rec, err)
      if (err instanceof PeerUnreachable || err instanceof PeerBadResponse)
        return this.#retry(rec, 'v')
      throw err
    }
    if (rec.epoch !== epoch) return 'none'
    if (res.status !== 200) {
      const kind = this.#classify(res.status, res.body)
      if (kind === 'retry') return this.#retry(rec, 'v')
      if (kind === 'version' && (await this.#negotiate(rec))) {
        this.scheduler.schedule(rec.id, performance.now())
        return 'retry'
      }
      const f = new Failure(this.#o.rules)
      f.add(
        'internal.verifier.no_v',
        { message: 'Unexpected provide V response', data: res.status },
        false,
      )
      this.#fail(rec, AGENT_STATES.FAILED, f)
      return 'error'
    }
    rec.retries = 0
    this.#setState(rec, AGENT_STATES.GET_QUOTE)
    this.scheduler.schedule(rec.id, performance.now() + this.#o.quoteIntervalMs)
    return 'pass'
  }

  #retry(rec: AgentRecord, what: 'quote' | 'v'): Outcome {
    const o = this.#o
    if (rec.retries >= o.maxRetries) {
      const f = new Failure(o.rules)
      if (what === 'quote') {
        f.add('internal.verifier.not_reachable', 'agent was not reachable from verifier', false)
        if (rec.attestationCount > 0) o.notifier.notify(this.#subject(rec), 'comm_error', f.highest)
      } else {
        f.add('internal.verifier.not_reachable_v', 'agent was not reachable to provide V', false)
        o.notifier.notify(this.#subject(rec), 'comm_error', f.highest)
      }
      this.#fail(rec, AGENT_STATES.FAILED, f)
      return 'error'
    }
    rec.retries++
    const wait =
      o.exponentialBackoff && o.retryInterval > 1
        ? o.retryInterval ** rec.retries
        : Math.abs(o.retryInterval)
    this.#setState(
      rec,
      what === 'quote' ? AGENT_STATES.GET_QUOTE_RETRY : AGENT_STATES.PROVIDE_V_RETRY,
    )
    this.#o.log.info('agent not reachable, retrying', {
      agent_id: rec.id,
      attempt: rec.retries,
      max: o.maxRetries,
      in_s: wait,
    })
    this.scheduler.schedule(rec.id, performance.now() + wait * 1000)
    return 'retry'
  }

  /**
   * An answer that hit a limit. Over `max_agent_response_size`: the agent FAILS at once (asking
   * again from the same IMA entry gets the same answer), with `internal.verifier.response_too_large`.
   * No room in `max_agent_response_buffer` (other answers hold it): asked again after
   * `retry_interval`, not counted as a retry, since it is not the agent's failure.
   */
  #answerLimit(rec: AgentRecord, err: PeerAnswerTooLarge | AnswerBufferFull): Outcome {
    if (err instanceof AnswerBufferFull) {
      this.#o.log.info('agent answer deferred: answer buffer full', { agent_id: rec.id })
      this.scheduler.schedule(rec.id, performance.now() + Math.abs(this.#o.retryInterval) * 1000)
      return 'retry'
    }
    const f = new Failure(this.#o.rules)
    f.add(
      'internal.verifier.response_too_large',
      {
        message: 'agent answer larger than [verifier] max_agent_response_size',
        data: err.limit,
      },
      false,
    )
    this.#o.metrics.event('internal.verifier.response_too_large')
    if (rec.attestationCount > 0)
      this.#o.notifier.notify(this.#subject(rec), 'comm_error', f.highest)
    this.#fail(rec, AGENT_STATES.FAILED, f)
    return 'error'
  }

  #subject(rec: AgentRecord): RevocationSubject {
    return {
      agentId: rec.id,
      ip: rec.ip,
      port: rec.port,
      tpmPolicy: rec.tpmPolicyText,
      metaData: rec.metaData,
      revocationKey: rec.revocationKey,
    }
  }

  /** FAILED / INVALID_QUOTE handling of upstream's `process_agent`. */
  #fail(rec: AgentRecord, state: number, f: Failure): void {
    const top = f.highest as FailureEvent
    const stop = !f.recoverable || top.severity_label.severity === this.#o.rules.max.severity
    if (rec.severityLevel === null || rec.severityLevel < top.severity_label.severity) {
      rec.severityLevel = top.severity_label.severity
      rec.lastEventId = top.event_id
      this.#setState(rec, state)
      this.#o.log.warn('attestation failed', {
        agent_id: rec.id,
        event_id: top.event_id,
        severity: top.severity_label.name,
        events: f.events.length + f.omitted,
      })
      if (state === AGENT_STATES.INVALID_QUOTE)
        this.#o.notifier.notify(this.#subject(rec), 'revocation', top)
    }
    if (stop) {
      if (rec.state !== state) this.#setState(rec, state)
      this.scheduler.cancel(rec.id)
      return
    }
    // recoverable and below the maximum severity: keep polling
    this.scheduler.schedule(rec.id, performance.now() + this.#o.quoteIntervalMs)
  }

  // ------------------------------------------------------------------ writes and leases

  /**
   * Writes every dirty snapshot, in at most two statements: records whose rarely changing columns
   * are as last written send only the columns a round changes (the steady state), the others
   * their whole snapshot.
   */
  async flush(): Promise<void> {
    // a write that lands while a renewal runs would extend leases the renewal cannot account for
    if (this.#renewal !== undefined) await this.#renewal.catch(() => undefined)
    if (this.#flushing !== undefined) return this.#flushing
    if (this.#dirty.length === 0) return
    const dirty: AgentRecord[] = []
    const hot: HotSnapshot[] = []
    const full: AgentSnapshot[] = []
    const fullRecs: AgentRecord[] = []
    const colds: (readonly unknown[])[] = []
    for (const r of this.#dirty) {
      r.dirty = false
      if (this.records.get(r.id) !== r) continue // dropped (or re-adopted) since it was marked
      dirty.push(r)
      if (coldUnchanged(r)) hot.push(hotSnapshotOf(r))
      else {
        full.push(snapshotOf(r))
        fullRecs.push(r)
        colds.push(coldValuesOf(r))
      }
    }
    this.#dirty = []
    if (dirty.length === 0) return
    this.#flushing = (async () => {
      try {
        const owner = this.#o.instanceId
        const expires = Date.now() + this.#o.leaseMs
        const [a, b] = await Promise.all([
          this.#o.store.writeSnapshots(owner, full, expires),
          this.#o.store.writeSnapshots(owner, hot, expires, true),
        ])
        const missed = [...a, ...b]
        const notWritten = new Set(missed)
        for (let i = 0; i < fullRecs.length; i++) {
          const r = fullRecs[i] as AgentRecord
          if (!notWritten.has(r.id)) r.written = colds[i]
        }
        for (const r of dirty) if (!notWritten.has(r.id)) r.leaseUntil = expires
        this.#writeSucceeded()
        if (missed.length > 0) await this.#reconcile(missed)
      } catch (err) {
        // kept in memory, written by a later flush: nothing is lost while the database is away
        for (const r of dirty) this.#markDirty(r)
        this.#writeFailed(WRITE_FAILED, err, { agents: dirty.length })
      } finally {
        this.#flushing = undefined
      }
    })()
    return this.#flushing
  }

  /** Agents whose write was refused: terminated, stopped, deleted or taken by another instance. */
  async #reconcile(ids: string[]): Promise<void> {
    const rows = await this.#o.store.getAgents(ids)
    const byId = new Map(rows.map((r) => [r.agent_id, r]))
    for (const id of ids) {
      const row = byId.get(id)
      this.drop(id)
      if (row?.operational_state === AGENT_STATES.TERMINATED) {
        await this.#o.store.deleteAgent(id)
        this.#o.log.info('agent deleted after termination', { agent_id: id })
      }
    }
  }

  /**
   * Extends this instance's leases. The first call renews every held row (after a restart our own
   * leases are taken back at once); later ones only rows whose lease ends within half a lease
   * period: agents polled more often than that had their lease extended by their snapshot writes.
   * Runs with no write in flight, so every row it skips for being fresh was made fresh by a write
   * whose outcome is already in `leaseUntil`. Returns the renewed rows' states and the cut-off
   * (rows not renewed whose `leaseUntil` is before it are no longer ours).
   */
  async #renewLeases(): Promise<{ held: Map<string, number>; dueBefore: number }> {
    const o = this.#o
    while (this.#flushing !== undefined) await this.#flushing
    const now = Date.now()
    const expires = now + o.leaseMs
    const dueBefore = this.#renewedAll ? now + Math.floor(o.leaseMs / 2) : undefined
    const renewal = o.store.renewLeases(o.instanceId, expires, dueBefore)
    this.#renewal = renewal
    try {
      const held = await renewal
      this.#renewedAll = true
      for (const id of held.keys()) {
        const rec = this.records.get(id)
        if (rec !== undefined) rec.leaseUntil = expires
      }
      return { held, dueBefore: dueBefore ?? Number.POSITIVE_INFINITY }
    } finally {
      this.#renewal = undefined
    }
  }

  async #leaseTick(): Promise<void> {
    if (this.#leaseBusy || this.#stopped) return
    this.#leaseBusy = true
    const o = this.#o
    try {
      await o.store.heartbeat(
        o.instanceId,
        o.verifierId,
        `${hostname()}/${process.pid}`,
        this.#started,
      )
      const { held, dueBefore } = await this.#renewLeases()
      for (const [id, rec] of [...this.records]) {
        const st = held.get(id)
        if (st === undefined) {
          // not renewed: a recent write extended the lease, or the row is lost (deleted,
          // released by an operator, or taken over)
          if (rec.leaseUntil < dueBefore) this.drop(id)
        } else if (st === AGENT_STATES.TERMINATED) {
          const rec = this.records.get(id)
          if (rec !== undefined && !rec.busy) {
            this.drop(id)
            await o.store.deleteAgent(id)
          }
        } else if (st === AGENT_STATES.TENANT_FAILED) {
          this.drop(id)
        }
      }
      // rows we hold but do not poll yet (our own leases after a restart, or reactivations)
      const missing = [...held].filter(
        ([id, st]) => !this.records.has(id) && st !== 8 && st !== 10 && st !== 7 && st !== 9,
      )
      this.liveInstances = Math.max(1, await o.store.liveInstances(o.verifierId, o.leaseMs))
      const total = await o.store.countPolled(o.verifierId)
      const share = Math.ceil(total / this.liveInstances)
      const polled = [...this.records.values()].filter((r) =>
        APPROVED_REACTIVATE_STATES.has(r.state),
      )
      const room = share - polled.length
      const rows = missing.length > 0 ? await o.store.getAgents(missing.map(([id]) => id)) : []
      for (const row of rows) this.adopt(row, randomInt(Math.max(1, o.quoteIntervalMs)))
      if (room - rows.length > 0) {
        const expires = Date.now() + o.leaseMs
        const claimed = await o.store.claim(o.instanceId, o.verifierId, room - rows.length, expires)
        // taking a dead sibling's agents over: resume the TLS sessions it saved, if it ran here
        if (claimed.length > 0) o.agents.importSiblingSessions()
        for (const row of claimed) {
          if (!this.records.has(row.agent_id))
            this.adopt(row, randomInt(Math.max(1, o.quoteIntervalMs)))
        }
        if (claimed.length > 0)
          o.log.info('claimed agents', { count: claimed.length, held: this.records.size })
      } else if (polled.length > Math.ceil(share * 1.1) + 1) {
        const excess = polled.length - share
        const give = polled
          .filter((r) => !r.busy)
          .slice(0, excess)
          .map((r) => r.id)
        await this.flush()
        for (const id of give) this.drop(id)
        await o.store.release(o.instanceId, give)
        o.log.info('released agents to rebalance', { count: give.length, held: this.records.size })
      }
      await o.store.reapTerminated(o.verifierId)
      // live policy updates made through other instances
      const versions = await o.store.policyVersions()
      for (const [id, e] of this.#ima)
        if (versions.ima.get(id) !== e.version) this.invalidatePolicies()
      for (const [id, e] of this.#mb)
        if (versions.mb.get(id) !== e.version) this.invalidatePolicies()
      this.#writeSucceeded()
    } catch (err) {
      this.#writeFailed(LEASE_FAILED, err)
    } finally {
      this.#leaseBusy = false
    }
  }

  /**
   * Since when batched state writes or lease ticks have failed without a success in between, and
   * the last error (for `/health`); undefined while they succeed.
   */
  get writeFailure(): { since: number; what: string; error: string } | undefined {
    return this.#writeFailure
  }

  #writeSucceeded(): void {
    this.#o.dbHealth?.report()
    this.#writeFailure = undefined
  }

  /**
   * A batched write or lease tick failed. An outage is logged by the database health, once per
   * change of state, so here only at DEBUG; any other error at ERROR. Either at most once a
   * minute: the flush retries every `flushMs`.
   */
  #writeFailed(what: string, err: unknown, fields: LogFields = {}): void {
    const health = this.#o.dbHealth
    health?.report(err)
    this.#writeFailure = {
      since: this.#writeFailure?.since ?? Date.now(),
      what,
      error: describeError(err),
    }
    const level = health !== undefined && isDatabaseUnavailable(err) ? 'DEBUG' : 'ERROR'
    this.#failures.write(this.#o.log, level, what, { ...fields, error: err })
  }
}

const WRITE_FAILED = 'batched state write failed; will retry'
const LEASE_FAILED = 'lease maintenance failed'
