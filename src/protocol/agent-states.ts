/**
 * Agent operational states of the pull model (upstream `keylime/common/states.py`,
 * keylime-api.md §2) and the derived `attestation_status` of API 2.5.
 *
 * @module
 */

/** The operational state numbers, exactly as upstream stores and returns them. */
export const AGENT_STATES = {
  REGISTERED: 0,
  START: 1,
  SAVED: 2,
  GET_QUOTE: 3,
  GET_QUOTE_RETRY: 4,
  PROVIDE_V: 5,
  PROVIDE_V_RETRY: 6,
  FAILED: 7,
  TERMINATED: 8,
  INVALID_QUOTE: 9,
  TENANT_FAILED: 10,
} as const

/** A state name. */
export type AgentStateName = keyof typeof AGENT_STATES
/** A state number. */
export type AgentState = (typeof AGENT_STATES)[AgentStateName]

const NAMES: readonly AgentStateName[] = Object.keys(AGENT_STATES) as AgentStateName[]

/** How the tenant prints each state (upstream `STATE_REPRESENTATIONS`). */
export const STATE_REPRESENTATIONS = {
  REGISTERED: 'Registered',
  START: 'Start',
  SAVED: 'Saved',
  GET_QUOTE: 'Get Quote',
  GET_QUOTE_RETRY: 'Get Quote (retry)',
  PROVIDE_V: 'Provide V',
  PROVIDE_V_RETRY: 'Provide V (retry)',
  FAILED: 'Failed',
  TERMINATED: 'Terminated',
  INVALID_QUOTE: 'Invalid Quote',
  TENANT_FAILED: 'Tenant Quote Failed',
} as const satisfies Record<AgentStateName, string>

/** The name of a state number (`'UNKNOWN'` for anything else). */
export function stateName(state: number | null | undefined): AgentStateName | 'UNKNOWN' {
  return NAMES.find((n) => AGENT_STATES[n] === state) ?? 'UNKNOWN'
}

/**
 * The printable name of a state number (upstream `state_to_str`), `Unknown (n)` for a value
 * upstream does not define, where upstream raises `InvalidAgentState`.
 */
export function agentStateName(state: unknown): string {
  const name = typeof state === 'number' ? stateName(state) : 'UNKNOWN'
  return name === 'UNKNOWN' ? `Unknown (${String(state)})` : STATE_REPRESENTATIONS[name]
}

/** States in which an agent is polled; the verifier resumes them at start (upstream's set). */
export const APPROVED_REACTIVATE_STATES: ReadonlySet<number> = new Set([
  AGENT_STATES.START,
  AGENT_STATES.GET_QUOTE,
  AGENT_STATES.GET_QUOTE_RETRY,
  AGENT_STATES.PROVIDE_V,
  AGENT_STATES.PROVIDE_V_RETRY,
])

/** States the poll loop never overwrites (the guarded-update rule). */
export const GUARDED_STATES: readonly number[] = [
  AGENT_STATES.TERMINATED,
  AGENT_STATES.TENANT_FAILED,
]

/** API 2.5 `attestation_status` of a pull-mode agent (`process_get_status`). */
export function attestationStatus(state: number | null | undefined): 'PASS' | 'FAIL' | 'PENDING' {
  switch (state) {
    case AGENT_STATES.GET_QUOTE:
    case AGENT_STATES.GET_QUOTE_RETRY:
    case AGENT_STATES.PROVIDE_V:
    case AGENT_STATES.PROVIDE_V_RETRY:
      return 'PASS'
    case AGENT_STATES.FAILED:
    case AGENT_STATES.INVALID_QUOTE:
    case AGENT_STATES.TENANT_FAILED:
      return 'FAIL'
    default:
      return 'PENDING'
  }
}
