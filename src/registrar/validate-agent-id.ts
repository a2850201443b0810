/**
 * The agent id rule: upstream's `[\w.-]+` (`keylime/common/validators.py`, ASCII word
 * characters here) and at most 80 characters, the length of the `agent_id` column
 * (`String(80)` upstream).
 *
 * @module
 */
import { RegistrarError } from './errors.ts'

/** Longest accepted agent id (upstream `registrarmain.agent_id String(80)`). */
export const MAX_AGENT_ID_LENGTH = 80

const AGENT_ID_RE = /^[A-Za-z0-9_.-]+$/

/**
 * Returns `value` as an agent id, or throws a 400.
 *
 * @throws RegistrarError `ERR_REGISTRAR_AGENT_ID`
 */
export function validateAgentId(value: unknown): string {
  if (typeof value !== 'string' || value === '') {
    throw new RegistrarError('ERR_REGISTRAR_AGENT_ID', 'agent_id is required and must be a string')
  }
  if (value.length > MAX_AGENT_ID_LENGTH) {
    throw new RegistrarError(
      'ERR_REGISTRAR_AGENT_ID',
      `agent_id is longer than ${MAX_AGENT_ID_LENGTH} characters`,
    )
  }
  if (!AGENT_ID_RE.test(value)) {
    throw new RegistrarError(
      'ERR_REGISTRAR_AGENT_ID',
      'agent_id may contain only letters, digits, "_", "." and "-"',
    )
  }
  return value
}
