/**
 * Typed errors of the agent (STYLE.md rule 4). Messages never carry keys, U/V/K or payload
 * bytes; TPM failures carry the command name and the response code only.
 *
 * @module
 */

import { KeylimeError, type KeylimeErrorOptions } from '../errors.ts'

/** Stable codes carried by {@link AgentError}. */
export const AGENT_ERROR_CODES = [
  /** A configuration option is missing or has a bad value (names the option). */
  'ERR_AGENT_CONFIG',
  /** The TPM transport failed (open, I/O, timeout, connection closed). */
  'ERR_AGENT_TRANSPORT',
  /** The TPM answered a command with a non-zero response code. */
  'ERR_AGENT_TPM_RC',
  /** A TPM response could not be parsed. */
  'ERR_AGENT_TPM_RESPONSE',
  /** Registration or activation with the registrar failed. */
  'ERR_AGENT_REGISTRATION',
  /** A request to the agent API is malformed (HTTP 400). */
  'ERR_AGENT_REQUEST',
  /** Keys, payload or revocation handling failed. */
  'ERR_AGENT_PAYLOAD',
  /** `run_as` cannot be applied: switching accounts failed, or the account cannot use its files. */
  'ERR_AGENT_PRIVILEGES',
  /** SIGTERM or SIGINT arrived before the agent was up. */
  'ERR_AGENT_STOPPED',
  /** Push mode: the verifier could not be reached (network, TLS, timeout). */
  'ERR_AGENT_PUSH_NETWORK',
  /** Push mode: the verifier answered with an unexpected HTTP status. */
  'ERR_AGENT_PUSH_STATUS',
  /** Push mode: a verifier answer is malformed (not JSON:API, missing or bad fields, too big). */
  'ERR_AGENT_PUSH_ANSWER',
  /** Push mode: the verifier refused the proof of possession (`evaluation` is not `pass`). */
  'ERR_AGENT_PUSH_AUTH',
] as const

/** A stable agent error code. */
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number]

/**
 * An agent failure. `rc` is set for {@link AgentErrorCode} `ERR_AGENT_TPM_RC`.
 *
 * @example
 * ```ts
 * throw new AgentError('ERR_AGENT_CONFIG', 'option tpm_hash_alg: unknown value "md5"')
 * ```
 */
export class AgentError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: AgentErrorCode
  /** The TPM response code, for `ERR_AGENT_TPM_RC`. */
  readonly rc: number | undefined
  /** The verifier's HTTP status, for `ERR_AGENT_PUSH_STATUS`. */
  readonly httpStatus: number | undefined

  constructor(
    code: AgentErrorCode,
    message: string,
    options: KeylimeErrorOptions & { rc?: number; httpStatus?: number } = {},
  ) {
    super(code, message, { status: code === 'ERR_AGENT_REQUEST' ? 400 : 500, ...options })
    this.name = 'AgentError'
    this.rc = options.rc
    this.httpStatus = options.httpStatus
  }
}

/** True if `e` is an {@link AgentError}, optionally with the given code. */
export function isAgentError(e: unknown, code?: AgentErrorCode): e is AgentError {
  return e instanceof AgentError && (code === undefined || e.code === code)
}
