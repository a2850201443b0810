/**
 * The pull-mode attestation loop of one verifier process: the agents it holds and the round each
 * runs (upstream `cloud_verifier_tornado.py: process_agent`, keylime-api.md §2). The state machine
 * itself is `transitions.ts`; retries `retry-policy.ts`; failures `agent-failures.ts`; policies
 * `round-policies.ts`; writes `snapshot-writer.ts`; leases `lease-keeper.ts`.
 *
 * A failed check → INVALID_QUOTE and a revocation; polling goes on only for recoverable events
 * below the maximum severity. `severity_level` and `last_event_id` only ratchet up.
 *
 * @module
 */
import { constants, publicEncrypt } from 'node:crypto'
import type { DatabaseHealth } from '../../db/database-health.ts'
import { isDatabaseUnavailable } from '../../db/database-unavailable.ts'
import type { AgentConnections, AgentRequest } from '../../http/agent-client/agent-connections.ts'
import {
  AnswerBufferFull,
  PeerAnswerTooLarge,
  PeerBadResponse,
  PeerUnreachable,
} from '../../http/peer-errors.ts'
import type { MtlsResponse } from '../../http/parse-mtls-response.ts'
import type { Logger } from '../../log/logger.ts'
import { AGENT_STATES, stateName } from '../../protocol/agent-states.ts'
import { randomPassword } from '../../protocol/random-password.ts'
import { formatMask } from '../../protocol/tpm-policy.ts'
import type { CheckPool } from '../checks/check-pool.ts'
import { type CheckOptions, requestMask } from '../checks/check-quote.ts'
import type { SeverityRules } from '../checks/failure.ts'
import type { RevocationNotifier } from '../notify/revocation-notifier.ts'
import type { VerifierMetrics } from '../ops/metrics.ts'
import { type AgentRow, nowSeconds, type VerifierStore } from '../store/store.ts'
import { admitRound, targetOf } from './admit-round.ts'
import { type AgentRecord, recordFromRow } from './agent-record.ts'
import { LeaseKeeper } from './lease-keeper.ts'
import { negotiateVersion } from './negotiate-version.ts'
import { classifyAnswer } from './retry-policy.ts'
import { RoundPolicyCache } from './round-policies.ts'
import { AgentFailures } from './agent-failures.ts'
import { Scheduler } from './scheduler.ts'
import { SnapshotWriter, type WriteFailure } from './snapshot-writer.ts'
import { nextState, resumeState, type RoundOutcome, roundAction } from './transitions.ts'
import type { VerifierSettings } from './verifier-settings.ts'

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
  settings: VerifierSettings
  /** Told the outcome of every batched write and lease tick (`/health`). */
  dbHealth?: DatabaseHealth
  /**
   * Push agents are never polled: their round is this liveness check (`push/liveness.ts`), which
   * returns the ms until the next one.
   */
  pushLiveness?: { check(agentId: string): Promise<number> }
}

/** The loop. */
export class AttestationLoop {
  readonly #o: AttestationLoopOptions
  readonly #s: VerifierSettings
  readonly records = new Map<string, AgentRecord>()
  readonly scheduler: Scheduler
  readonly #policies: RoundPolicyCache
  readonly #failures: AgentFailures
  readonly #writer: SnapshotWriter
  readonly #leases: LeaseKeeper
  #stopped = false

  constructor(o: AttestationLoopOptions) {
    this.#o = o
    const s = o.settings
    this.#s = s
    this.scheduler = new Scheduler({
      maxInFlight: s.maxInFlight,
      run: (id) => this.#round(id),
      admit: (id) => this.#admit(id),
      onLag: (ms) => o.metrics.scheduleLag.observe(ms),
    })
    this.#failures = new AgentFailures({
      ...o,
      setState: (rec, state) => this.#setState(rec, state),
      scheduleIn: (rec, ms) => this.#scheduleIn(rec, ms),
      cancel: (rec) => this.scheduler.cancel(rec.id),
    })
    this.#policies = new RoundPolicyCache({ store: o.store, log: o.log })
    this.#writer = new SnapshotWriter({
      ...o,
      isCurrent: (rec) => this.records.get(rec.id) === rec,
      drop: (id) => this.drop(id),
    })
    this.#leases = new LeaseKeeper({
      store: o.store,
      agents: o.agents,
      writer: this.#writer,
      members: {
        records: this.records,
        adopt: (row, delayMs) => this.adopt(row, delayMs),
        drop: (id) => this.drop(id),
        policyVersions: (versions) => this.#policies.refresh(versions),
      },
      log: o.log,
      settings: s,
    })
  }

  /** Starts heartbeats, claims agents and begins polling. */
  async start(): Promise<void> {
    await this.#leases.start()
    this.#writer.start(this.#s.flushMs)
  }

  /**
   * Stops everything at once without writing or releasing anything: what a `kill -9` leaves
   * behind (tests of lease take-over use it).
   */
  async halt(): Promise<void> {
    await this.#stopPolling(0)
    this.#close()
  }

  /** Stops polling, drains rounds, writes the last snapshots and gives the leases back. */
  async stop(drainMs: number): Promise<void> {
    await this.#stopPolling(drainMs)
    await this.flush().catch(() => undefined)
    try {
      await this.#leases.releaseAll([...this.records.keys()])
    } catch (err) {
      this.#o.log.warn('could not release leases at stop', { error: err })
    }
    this.#close()
  }

  async #stopPolling(drainMs: number): Promise<void> {
    this.#stopped = true
    this.#writer.stop()
    this.#leases.stop()
    await this.scheduler.stop(drainMs)
  }

  // The agent pool and the check pool belong to the composition root, which closes them after
  // the revocation notices that share the pool have drained.
  #close(): void {
    this.records.clear()
  }

  /** Writes every dirty snapshot now. */
  flush(): Promise<void> {
    return this.#writer.flush()
  }

  /** Since when batched writes or lease ticks have failed, and the last error (`/health`). */
  get writeFailure(): WriteFailure | undefined {
    return this.#writer.failure
  }

  /** Live instances of this verifier id, as of the last lease tick. */
  get liveInstances(): number {
    return this.#leases.liveInstances
  }

  // ------------------------------------------------------------------ membership

  /** Takes an agent (enrolment, claim) and schedules it. */
  adopt(row: AgentRow, delayMs = 0): AgentRecord {
    const old = this.records.get(row.agent_id)
    const rec = recordFromRow(row)
    if (old !== undefined) rec.epoch = old.epoch + 1
    if (row.lease_owner === this.#s.instanceId) rec.leaseUntil = Number(row.lease_expires ?? 0)
    if (rec.push) {
      this.records.set(rec.id, rec)
      this.scheduler.schedule(rec.id, performance.now() + delayMs)
      return rec
    }
    const resumed = resumeState(rec.state, rec.publicKey !== '', rec.attestationCount)
    if (resumed === AGENT_STATES.START && rec.state !== AGENT_STATES.START)
      this.#writer.markDirty(rec)
    rec.state = resumed
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
    this.#policies.invalidate()
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
    this.#writer.markDirty(rec)
  }

  #scheduleIn(rec: AgentRecord, ms: number): void {
    this.scheduler.schedule(rec.id, performance.now() + ms)
  }

  #admit(id: string): number {
    const rec = this.records.get(id)
    if (rec === undefined || rec.busy || this.#stopped) return 0
    if (rec.push) return 0
    return admitRound(rec, this.#o.agents, this.#s.agentMtls)
  }

  async #round(id: string): Promise<void> {
    const rec = this.records.get(id)
    if (rec === undefined || this.#stopped) return
    if (rec.busy) {
      this.#scheduleIn(rec, 100)
      return
    }
    if (rec.push) return this.#pushRound(rec)
    rec.busy = true
    const epoch = rec.epoch
    const t0 = performance.now()
    let outcome: RoundOutcome = 'none'
    try {
      const action = roundAction(rec.state, rec.publicKey !== '')
      if (action.kind === 'get-quote') outcome = await this.#getQuote(rec, epoch, action.fetchNk)
      else if (action.kind === 'provide-v') outcome = await this.#provideV(rec, epoch)
    } catch (err) {
      if (isDatabaseUnavailable(err) && rec.epoch === epoch) {
        // the database, not the agent: try the round again later (the outage is logged once)
        outcome = 'retry'
        this.#scheduleIn(rec, this.#s.retryIntervalMs)
      } else {
        outcome = 'error'
        this.#failures.roundThrew(rec, epoch, err)
      }
    } finally {
      rec.busy = false
      if (outcome !== 'none') {
        this.#o.metrics.result(outcome)
        this.#o.metrics.roundLatency.observe(performance.now() - t0)
      }
    }
  }

  /** A push agent's turn: its liveness check, then the next one when it is due. */
  async #pushRound(rec: AgentRecord): Promise<void> {
    const epoch = rec.epoch
    let delay = this.#s.quoteIntervalMs
    try {
      if (this.#o.pushLiveness !== undefined) delay = await this.#o.pushLiveness.check(rec.id)
    } catch (err) {
      this.#o.log.warn('push liveness check failed', { agent_id: rec.id, error: err })
    }
    if (rec.epoch === epoch && this.records.get(rec.id) === rec && !this.#stopped)
      this.#scheduleIn(rec, Math.max(50, delay))
  }

  /**
   * Sends one request to the agent. No answer (unreachable, bad or oversized answer) or a round
   * made stale meanwhile ends the round: the outcome is returned in place of a response.
   */
  async #ask(
    rec: AgentRecord,
    epoch: number,
    during: 'quote' | 'v',
    req: AgentRequest,
  ): Promise<MtlsResponse | RoundOutcome> {
    let res: MtlsResponse
    try {
      res = await this.#o.agents.request(targetOf(rec, this.#s.agentMtls), {
        ...req,
        timeoutMs: this.#s.requestTimeoutMs,
      })
    } catch (err) {
      if (rec.epoch !== epoch) return 'none'
      if (err instanceof PeerAnswerTooLarge || err instanceof AnswerBufferFull)
        return this.#failures.answerLimit(rec, err)
      if (err instanceof PeerUnreachable || err instanceof PeerBadResponse)
        return this.#failures.unreachable(rec, during)
      throw err
    }
    return rec.epoch === epoch ? res : 'none'
  }

  /** After a version refusal: negotiates, and on success asks again at once. */
  async #renegotiate(rec: AgentRecord, epoch: number): Promise<boolean> {
    const { ok, changed } = await negotiateVersion(
      rec,
      () =>
        this.#o.agents.request(targetOf(rec, this.#s.agentMtls), {
          path: '/version',
          timeoutMs: this.#s.requestTimeoutMs,
        }),
      this.#o.log,
    )
    if (changed) this.#writer.markDirty(rec)
    if (ok && rec.epoch === epoch) this.scheduler.schedule(rec.id, performance.now())
    return ok
  }

  async #getQuote(rec: AgentRecord, epoch: number, fetchNk: boolean): Promise<RoundOutcome> {
    if (rec.state === AGENT_STATES.START) this.#setState(rec, nextState({ kind: 'quote-asked' }))
    const round = this.#policies.cached(rec) ?? (await this.#policies.load(rec))
    const nonce = randomPassword(20)
    const mask = formatMask(requestMask(rec, round.policies))
    const res = await this.#ask(rec, epoch, 'quote', {
      path:
        `/v${rec.supportedVersion}/quotes/integrity?nonce=${nonce}&mask=${mask}` +
        `&partial=${fetchNk ? 0 : 1}&ima_ml_entry=${rec.ima.nextEntry}`,
    })
    if (typeof res === 'string') return res
    rec.lastReceivedQuote = nowSeconds()
    if (res.status !== 200) return this.#quoteRefused(rec, epoch, res)
    const c0 = performance.now()
    const result = await this.#o.checks.check(
      rec,
      res.results,
      nonce,
      round.policies,
      round.imaKey,
      round.imaText,
    )
    this.#o.metrics.checkLatency.observe(performance.now() - c0)
    if (rec.epoch !== epoch) return 'none'
    if (result.kind === 'reboot') {
      rec.ima = result.ima
      this.#writer.markDirty(rec)
      this.scheduler.schedule(rec.id, performance.now())
      return 'retry'
    }
    if (result.kind === 'fail') {
      if (result.ima !== undefined) rec.ima = result.ima
      for (const e of result.failure.events) this.#o.metrics.event(e.event_id)
      this.#failures.fail(rec, nextState({ kind: 'check-failed' }), result.failure)
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
    const deliverV = fetchNk && rec.v !== null
    this.#setState(rec, nextState({ kind: 'quote-passed', deliverV }))
    if (deliverV)
      await this.#provideV(rec, epoch) // how V delivery went shows in the state
    else this.#scheduleIn(rec, this.#s.quoteIntervalMs)
    return 'pass'
  }

  /** A non-200 answer to the quote request. */
  async #quoteRefused(rec: AgentRecord, epoch: number, res: MtlsResponse): Promise<RoundOutcome> {
    const kind = classifyAnswer(res.status, res.body)
    if (kind === 'retry') return this.#failures.unreachable(rec, 'quote')
    if (kind === 'fatal') {
      this.#failures.failWith(
        rec,
        'internal.verifier.no_quote',
        'Unexpected Get Quote reponse from agent',
      )
      return 'error'
    }
    if (await this.#renegotiate(rec, epoch)) return 'retry'
    const status = (res.body as { status?: unknown } | null)?.status
    this.#failures.failWith(rec, 'internal.verifier.version_not_supported', {
      context: 'Agent API version not supported',
      data: typeof status === 'string' ? status.slice(0, 200) : null,
    })
    return 'error'
  }

  async #provideV(rec: AgentRecord, epoch: number): Promise<RoundOutcome> {
    if (rec.v === null) {
      this.#setState(rec, nextState({ kind: 'v-done' }))
      this.#scheduleIn(rec, this.#s.quoteIntervalMs)
      return 'none'
    }
    if (rec.publicKey === '') {
      this.#setState(rec, nextState({ kind: 'nk-missing' }))
      this.scheduler.schedule(rec.id, performance.now())
      return 'none'
    }
    rec.encryptedV ??= publicEncrypt(
      { key: rec.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' },
      Buffer.from(rec.v, 'base64'),
    ).toString('base64')
    const res = await this.#ask(rec, epoch, 'v', {
      method: 'POST',
      path: `/v${rec.supportedVersion}/keys/vkey`,
      json: { encrypted_key: rec.encryptedV },
    })
    if (typeof res === 'string') return res
    if (res.status !== 200) {
      const kind = classifyAnswer(res.status, res.body)
      if (kind === 'retry') return this.#failures.unreachable(rec, 'v')
      if (kind === 'version' && (await this.#renegotiate(rec, epoch))) return 'retry'
      this.#failures.failWith(rec, 'internal.verifier.no_v', {
        message: 'Unexpected provide V response',
        data: res.status,
      })
      return 'error'
    }
    rec.retries = 0
    this.#setState(rec, nextState({ kind: 'v-done' }))
    this.#scheduleIn(rec, this.#s.quoteIntervalMs)
    return 'pass'
  }
}
