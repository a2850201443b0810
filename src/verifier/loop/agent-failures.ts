/**
 * How the loop records an agent's failures (upstream `process_agent`): FAILED or INVALID_QUOTE
 * with the highest-severity event, revocation and `comm_error` notices, retries after
 * communication failures, and rounds that threw.
 *
 * @module
 */
import { AnswerBufferFull, type PeerAnswerTooLarge } from '../../http/peer-errors.ts'
import { describeError } from '../../log/describe-error.ts'
import type { Logger } from '../../log/logger.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'
import { Failure, type FailureEvent, type SeverityRules } from '../checks/failure.ts'
import type { RevocationNotifier, RevocationSubject } from '../notify/revocation-notifier.ts'
import type { VerifierMetrics } from '../ops/metrics.ts'
import type { AgentRecord } from './agent-record.ts'
import { decideRetry, type RetrySettings } from './retry-policy.ts'
import { failureStopsPolling, nextState, raisesSeverity, type RoundOutcome } from './transitions.ts'

/** Options of {@link AgentFailures}. */
export interface AgentFailuresOptions {
  rules: SeverityRules
  notifier: RevocationNotifier
  metrics: VerifierMetrics
  log: Logger
  settings: RetrySettings & { quoteIntervalMs: number }
  /** Sets the agent's state (logged) and marks the record for writing. */
  setState(rec: AgentRecord, state: number): void
  /** Schedules the agent's next round in `ms`. */
  scheduleIn(rec: AgentRecord, ms: number): void
  /** Stops polling the agent. */
  cancel(rec: AgentRecord): void
}

/** The failure side of the loop. */
export class AgentFailures {
  readonly #o: AgentFailuresOptions

  constructor(o: AgentFailuresOptions) {
    this.#o = o
  }

  /** FAILED with one irrecoverable event: an answer the protocol does not allow. */
  failWith(rec: AgentRecord, eventId: string, context: string | Record<string, unknown>): void {
    const f = new Failure(this.#o.rules)
    f.add(eventId, context, false)
    this.fail(rec, nextState({ kind: 'failed' }), f)
  }

  /**
   * A round that threw (a bug, a failed check worker, anything unforeseen) is the agent's
   * failure, never the process's: FAILED with `internal.verifier.exception`. Never throws.
   */
  roundThrew(rec: AgentRecord, epoch: number, err: unknown): void {
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
      this.fail(rec, nextState({ kind: 'failed' }), f)
      if (rec.state !== before) {
        this.#o.log.error('attestation round threw; agent failed', { agent_id: rec.id, error })
      }
    } catch (inner) {
      // the failure path itself threw: stop polling this agent, keep serving the others
      this.#o.cancel(rec)
      this.#o.log.error('attestation round failed and could not be recorded', {
        agent_id: rec.id,
        error,
        recording: inner instanceof Error ? inner.message : 'non-error exception',
      })
    }
  }

  /** The agent did not answer usefully: retry later, or FAIL once `max_retries` are used up. */
  unreachable(rec: AgentRecord, during: 'quote' | 'v'): RoundOutcome {
    const decision = decideRetry(rec.retries, this.#o.settings)
    if (decision.kind === 'give-up') {
      const f = new Failure(this.#o.rules)
      if (during === 'quote') {
        f.add('internal.verifier.not_reachable', 'agent was not reachable from verifier', false)
        if (rec.attestationCount > 0) this.#notify(rec, 'comm_error', f)
      } else {
        f.add('internal.verifier.not_reachable_v', 'agent was not reachable to provide V', false)
        this.#notify(rec, 'comm_error', f)
      }
      this.fail(rec, nextState({ kind: 'failed' }), f)
      return 'error'
    }
    rec.retries = decision.attempt
    this.#o.setState(rec, nextState({ kind: 'unreachable', during }))
    this.#o.log.info('agent not reachable, retrying', {
      agent_id: rec.id,
      attempt: rec.retries,
      max: this.#o.settings.maxRetries,
      in_s: decision.delayMs / 1000,
    })
    this.#o.scheduleIn(rec, decision.delayMs)
    return 'retry'
  }

  /**
   * An answer that hit a limit. Over `max_agent_response_size`: the agent FAILS at once (asking
   * again gets the same answer). No room in `max_agent_response_buffer` (other answers hold it):
   * asked again after `retry_interval`, not counted as a retry, since it is not the agent's fault.
   */
  answerLimit(rec: AgentRecord, err: PeerAnswerTooLarge | AnswerBufferFull): RoundOutcome {
    if (err instanceof AnswerBufferFull) {
      this.#o.log.info('agent answer deferred: answer buffer full', { agent_id: rec.id })
      this.#o.scheduleIn(rec, this.#o.settings.retryIntervalMs)
      return 'retry'
    }
    const f = new Failure(this.#o.rules)
    f.add(
      'internal.verifier.response_too_large',
      { message: 'agent answer larger than [verifier] max_agent_response_size', data: err.limit },
      false,
    )
    this.#o.metrics.event('internal.verifier.response_too_large')
    if (rec.attestationCount > 0) this.#notify(rec, 'comm_error', f)
    this.fail(rec, nextState({ kind: 'failed' }), f)
    return 'error'
  }

  #notify(rec: AgentRecord, kind: 'comm_error' | 'revocation', f: Failure): void {
    const subject: RevocationSubject = {
      agentId: rec.id,
      ip: rec.ip,
      port: rec.port,
      tpmPolicy: rec.tpmPolicyText,
      metaData: rec.metaData,
      revocationKey: rec.revocationKey,
    }
    this.#o.notifier.notify(subject, kind, f.highest)
  }

  /** FAILED / INVALID_QUOTE handling of upstream's `process_agent`. */
  fail(rec: AgentRecord, state: number, f: Failure): void {
    const top = f.highest as FailureEvent
    const severity = top.severity_label.severity
    if (raisesSeverity(rec.severityLevel, severity)) {
      rec.severityLevel = severity
      rec.lastEventId = top.event_id
      this.#o.setState(rec, state)
      this.#o.log.warn('attestation failed', {
        agent_id: rec.id,
        event_id: top.event_id,
        severity: top.severity_label.name,
        events: f.events.length + f.omitted,
        // upstream logs e.g. "File not found in allowlist: <path>"; operators grep for it
        message: messageOf(top),
      })
      if (state === AGENT_STATES.INVALID_QUOTE) this.#notify(rec, 'revocation', f)
    }
    if (failureStopsPolling(f.recoverable, severity, this.#o.rules.max.severity)) {
      if (rec.state !== state) this.#o.setState(rec, state)
      this.#o.cancel(rec)
      return
    }
    // recoverable and below the maximum severity: keep polling
    this.#o.scheduleIn(rec, this.#o.settings.quoteIntervalMs)
  }
}

/** The event's `message` or `reason` (capped: it may quote agent-chosen text), if it has one. */
export function messageOf(e: FailureEvent): string | undefined {
  const m = e.context.message ?? e.context.reason
  return typeof m === 'string' ? m.slice(0, 300) : undefined
}
