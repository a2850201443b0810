/**
 * Typed errors of the tenant CLI and the exit codes they map to (upstream #1413 asks for distinct
 * exit codes; upstream itself exits 1 for everything).
 *
 * Every failure of a `keylime_tenant` command is a {@link TenantError} (or another
 * {@link KeylimeError} that {@link toTenantError} classifies): it carries a stable `ERR_TENANT_…`
 * code, the exit code, and a hint naming what to check (a file, an option, a port). Messages never
 * contain K, U, V, keys or payload bytes.
 *
 * @module
 */
import { KeylimeError } from '../errors.ts'

/**
 * Exit codes of `keylime_tenant` (documented in README "## Tenant").
 *
 * | code | meaning |
 * |---|---|
 * | 0 | success |
 * | 1 | a server rejected the request (HTTP 4xx/5xx other than 404/409), or an unexpected failure |
 * | 2 | usage error: unknown or conflicting options, bad UUID, missing required option |
 * | 3 | a service (registrar, verifier, agent) is unreachable: refused, TLS failure, timeout |
 * | 4 | not found: the agent or policy does not exist on the registrar/verifier |
 * | 5 | verification failed: identity quote, PCR16/NK binding, EK certificate, ek_check_script, `--verify` |
 * | 6 | invalid input file: unreadable, invalid policy, checksum mismatch, payload too large |
 * | 7 | conflict: the agent or policy already exists, or a policy is in use |
 * | 8 | local configuration error: tenant.conf, TLS certificate/key files, CA directory |
 */
export const TENANT_EXIT = {
  OK: 0,
  REJECTED: 1,
  USAGE: 2,
  UNREACHABLE: 3,
  NOT_FOUND: 4,
  VERIFICATION_FAILED: 5,
  INVALID_INPUT: 6,
  CONFLICT: 7,
  CONFIG: 8,
} as const

/** One of the {@link TENANT_EXIT} values. */
export type TenantExitCode = (typeof TENANT_EXIT)[keyof typeof TENANT_EXIT]

/** Stable codes of {@link TenantError}, each with its exit code. */
export const TENANT_ERROR_EXIT = {
  ERR_TENANT_USAGE: TENANT_EXIT.USAGE,
  ERR_TENANT_UNREACHABLE: TENANT_EXIT.UNREACHABLE,
  ERR_TENANT_REJECTED: TENANT_EXIT.REJECTED,
  ERR_TENANT_NOT_FOUND: TENANT_EXIT.NOT_FOUND,
  ERR_TENANT_CONFLICT: TENANT_EXIT.CONFLICT,
  ERR_TENANT_VERIFICATION: TENANT_EXIT.VERIFICATION_FAILED,
  ERR_TENANT_INPUT: TENANT_EXIT.INVALID_INPUT,
  ERR_TENANT_CONFIG: TENANT_EXIT.CONFIG,
  ERR_TENANT_TIMEOUT: TENANT_EXIT.REJECTED,
  ERR_TENANT_INTERNAL: TENANT_EXIT.REJECTED,
} as const

/** One of the tenant error codes. */
export type TenantErrorCode = keyof typeof TENANT_ERROR_EXIT

/** Extra facts of a {@link TenantError}. */
export interface TenantErrorOptions {
  /** What to check or do next. */
  hint?: string
  /** HTTP status the server answered, when a server rejected the request. */
  httpStatus?: number
  /** The server's envelope `status` text, when there was one. */
  serverStatus?: string
  cause?: unknown
}

/**
 * A tenant command failure.
 *
 * @example
 * ```ts
 * throw new TenantError('ERR_TENANT_NOT_FOUND', 'agent X does not exist on the registrar', {
 *   hint: 'check the UUID with -c reglist',
 * })
 * ```
 */
export class TenantError extends KeylimeError {
  /** The process exit code for this failure. */
  readonly exitCode: TenantExitCode
  /** What to check. */
  readonly hint: string | undefined
  /** HTTP status of the server's answer, if any. */
  readonly httpStatus: number | undefined
  /** The server's status text, if any. */
  readonly serverStatus: string | undefined

  constructor(code: TenantErrorCode, message: string, options: TenantErrorOptions = {}) {
    super(code, message, { status: options.httpStatus ?? 500, cause: options.cause })
    this.name = 'TenantError'
    this.exitCode = TENANT_ERROR_EXIT[code]
    this.hint = options.hint
    this.httpStatus = options.httpStatus
    this.serverStatus = options.serverStatus
  }
}

/** A usage error (exit 2). */
export function usageError(message: string, hint?: string): TenantError {
  return new TenantError('ERR_TENANT_USAGE', message, { hint })
}

/** An invalid input file (exit 6). */
export function inputError(message: string, hint?: string, cause?: unknown): TenantError {
  return new TenantError('ERR_TENANT_INPUT', message, { hint, cause })
}

/**
 * Classifies any thrown value as a {@link TenantError}: errors of other modules keep their message
 * and get the exit code of their kind (peer unreachable → 3, config/CA → 8, IMA/MB policy → 6,
 * TPM/EK → 5).
 */
export function toTenantError(err: unknown): TenantError {
  if (err instanceof TenantError) return err
  if (err instanceof KeylimeError) {
    const code = err.code
    if (code === 'ERR_PEER_UNREACHABLE')
      return new TenantError('ERR_TENANT_UNREACHABLE', err.message, { cause: err })
    if (code === 'ERR_PEER_BAD_RESPONSE')
      return new TenantError('ERR_TENANT_REJECTED', err.message, { cause: err })
    if (code.startsWith('ERR_CONFIG') || code.startsWith('ERR_CA'))
      return new TenantError('ERR_TENANT_CONFIG', err.message, { cause: err })
    if (code.startsWith('ERR_IMA') || code.startsWith('ERR_MB'))
      return new TenantError('ERR_TENANT_INPUT', err.message, { cause: err })
    if (code.startsWith('ERR_QUOTE') || code.startsWith('ERR_EK') || code.startsWith('ERR_TPM'))
      return new TenantError('ERR_TENANT_VERIFICATION', err.message, { cause: err })
    return new TenantError('ERR_TENANT_INTERNAL', err.message, { cause: err })
  }
  const message = err instanceof Error ? err.message : String(err)
  return new TenantError('ERR_TENANT_INTERNAL', message, { cause: err })
}
