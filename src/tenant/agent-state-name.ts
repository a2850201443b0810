/**
 * Operational state numbers → the strings the tenant prints (upstream
 * `keylime/common/states.py: STATE_REPRESENTATIONS`, keylime-api.md §2).
 *
 * @module
 */

const STATE_NAMES: readonly string[] = [
  'Registered',
  'Start',
  'Saved',
  'Get Quote',
  'Get Quote (retry)',
  'Provide V',
  'Provide V (retry)',
  'Failed',
  'Terminated',
  'Invalid Quote',
  'Tenant Quote Failed',
]

/** The printable name of a state number (`Unknown (n)` for a value upstream does not define). */
export function agentStateName(state: unknown): string {
  if (typeof state === 'number' && Number.isInteger(state)) {
    return STATE_NAMES[state] ?? `Unknown (${state})`
  }
  return `Unknown (${String(state)})`
}
