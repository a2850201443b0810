/**
 * The pull-mode state machine as pure functions (upstream `cloud_verifier_tornado.py:
 * process_agent`, keylime-api.md §2): what a round does in a state, and the state an outcome
 * leads to. Retry states (4 and 6) are stored while retrying, where upstream keeps showing 3 and 5.
 *
 * @module
 */
import { AGENT_STATES, type AgentState } from '../../protocol/agent-states.ts'

/** How a round ended, for the metrics (`none`: nothing was attested). */
export type RoundOutcome = 'pass' | 'fail' | 'retry' | 'error' | 'none'

/** What a round does for an agent in a state. */
export type RoundAction =
  { kind: 'get-quote'; fetchNk: boolean } | { kind: 'provide-v' } | { kind: 'none' }

/**
 * The round's action: START asks the first quote with `partial=0` (fetching the NK), GET_QUOTE
 * does so only while the NK is unknown; PROVIDE_V posts `keys/vkey`; other states are not polled.
 */
export function roundAction(state: number, nkKnown: boolean): RoundAction {
  switch (state) {
    case AGENT_STATES.START:
      return { kind: 'get-quote', fetchNk: true }
    case AGENT_STATES.GET_QUOTE:
    case AGENT_STATES.GET_QUOTE_RETRY:
      return { kind: 'get-quote', fetchNk: !nkKnown }
    case AGENT_STATES.PROVIDE_V:
    case AGENT_STATES.PROVIDE_V_RETRY:
      return { kind: 'provide-v' }
    default:
      return { kind: 'none' }
  }
}

/** What happened in a round, as far as the state is concerned. */
export type RoundEvent =
  /** A quote was asked for (leaving START). */
  | { kind: 'quote-asked' }
  /** The quote passed; `deliverV` when the NK was just fetched and there is a V to send. */
  | { kind: 'quote-passed'; deliverV: boolean }
  /** V was delivered, or there is none to deliver. */
  | { kind: 'v-done' }
  /** V is due but the NK is unknown: start over. */
  | { kind: 'nk-missing' }
  /** The agent did not answer usefully; retries are left. */
  | { kind: 'unreachable'; during: 'quote' | 'v' }
  /** A check of the quote failed. */
  | { kind: 'check-failed' }
  /** A failure that ends polling's normal course (fatal answer, retries used up, exception). */
  | { kind: 'failed' }

/** The state an event leads to. */
export function nextState(event: RoundEvent): AgentState {
  switch (event.kind) {
    case 'quote-asked':
      return AGENT_STATES.GET_QUOTE
    case 'quote-passed':
      return event.deliverV ? AGENT_STATES.PROVIDE_V : AGENT_STATES.GET_QUOTE
    case 'v-done':
      return AGENT_STATES.GET_QUOTE
    case 'nk-missing':
      return AGENT_STATES.START
    case 'unreachable':
      return event.during === 'quote' ? AGENT_STATES.GET_QUOTE_RETRY : AGENT_STATES.PROVIDE_V_RETRY
    case 'check-failed':
      return AGENT_STATES.INVALID_QUOTE
    case 'failed':
      return AGENT_STATES.FAILED
  }
}

/**
 * The state an agent resumes in when this process takes it (enrolment, restart, claim). One in
 * GET_QUOTE or GET_QUOTE_RETRY whose NK is known and that has passed at least once resumes
 * polling with `partial=1` (V was delivered: the pass before PROVIDE_V and the PROVIDE_V →
 * GET_QUOTE step are written as one snapshot); every other state restarts at START, as upstream.
 */
export function resumeState(state: number, nkKnown: boolean, attestationCount: number): AgentState {
  const polling = state === AGENT_STATES.GET_QUOTE || state === AGENT_STATES.GET_QUOTE_RETRY
  return polling && nkKnown && attestationCount > 0 ? AGENT_STATES.GET_QUOTE : AGENT_STATES.START
}

/**
 * Whether a row this instance holds a lease on but does not poll should be taken up (our own
 * leases after a restart, or reactivations): not when it ended (FAILED, INVALID_QUOTE) or is
 * being removed (TERMINATED, TENANT_FAILED).
 */
export function resumesOnClaim(state: number): boolean {
  return (
    state !== AGENT_STATES.TERMINATED &&
    state !== AGENT_STATES.TENANT_FAILED &&
    state !== AGENT_STATES.FAILED &&
    state !== AGENT_STATES.INVALID_QUOTE
  )
}

/**
 * Whether a failure stops polling: irrecoverable, or at the maximum severity. Otherwise the agent
 * is polled again after `quote_interval`.
 */
export function failureStopsPolling(
  recoverable: boolean,
  severity: number,
  maxSeverity: number,
): boolean {
  return !recoverable || severity === maxSeverity
}

/** Whether a failure raises the agent's severity (`severity_level` only ratchets up). */
export function raisesSeverity(current: number | null, severity: number): boolean {
  return current === null || current < severity
}
