/**
 * Typed errors of the measured-boot library (UEFI event log parsing, refstates, policies).
 *
 * Every malformed event log, reference state or policy surfaces as an {@link MbError} with a stable
 * `ERR_MB_…` code. Parse errors carry the byte `offset` and the `eventIndex` (0 = the Spec ID header
 * event) where the problem was found. All are client errors (HTTP 400): the bytes came from an agent
 * or an operator. Messages never contain key material.
 *
 * @module
 */

import { KeylimeError } from '../errors.ts'

/** Stable codes carried by {@link MbError}. */
export const MB_ERROR_CODES = [
  /** The event log is empty. */
  'ERR_MB_EMPTY',
  /** A read ran past the end of the log (or of an event's data). */
  'ERR_MB_TRUNCATED',
  /** The TCG_EfiSpecIDEvent header is malformed (sizes, algorithm list, version). */
  'ERR_MB_SPEC_ID',
  /** A TCG_PCR_EVENT2 digest count is zero or larger than the Spec ID algorithm list. */
  'ERR_MB_DIGEST_COUNT',
  /** An event digest uses an algorithm absent from the Spec ID header, or repeats one. */
  'ERR_MB_UNKNOWN_ALG',
  /** An event's EventSize exceeds the bytes left in the log. */
  'ERR_MB_EVENT_SIZE',
  /** A PCR index outside 0–23. */
  'ERR_MB_PCR_INDEX',
  /** The log has no bank for the requested hash algorithm. */
  'ERR_MB_BANK',
  /** The `mb_log` / `mb_measurement_list` is not valid base64. */
  'ERR_MB_BASE64',
  /** The reference state (mb_policy / refstate JSON) is invalid for the selected policy. */
  'ERR_MB_REFSTATE',
  /** A declarative custom policy is invalid. */
  'ERR_MB_POLICY',
  /** No policy is registered under the requested name. */
  'ERR_MB_UNKNOWN_POLICY',
  /** A refstate cannot be built from the given log (e.g. Secure Boot off without -i). */
  'ERR_MB_CREATE',
] as const

/** A stable measured-boot error code. */
export type MbErrorCode = (typeof MB_ERROR_CODES)[number]

/** Where in the log an {@link MbError} happened. */
export interface MbErrorLocation {
  /** Byte offset in the log. */
  offset?: number
  /** Event index (0 = the header event). */
  eventIndex?: number
  /** The underlying error. */
  cause?: unknown
}

/**
 * A measured-boot parsing or policy failure (HTTP 400).
 *
 * @example
 * ```ts
 * throw new MbError('ERR_MB_EVENT_SIZE', 'EventSize 4096 > 12 bytes left', { offset: 810, eventIndex: 7 })
 * ```
 */
export class MbError extends KeylimeError {
  /** The stable error code. */
  declare readonly code: MbErrorCode
  /** Byte offset in the log, for parse errors. */
  readonly offset: number | undefined
  /** Event index, for parse errors. */
  readonly eventIndex: number | undefined

  constructor(code: MbErrorCode, message: string, where: MbErrorLocation = {}) {
    const loc =
      where.eventIndex === undefined && where.offset === undefined
        ? ''
        : ` (event ${where.eventIndex ?? '?'}, offset ${where.offset ?? '?'})`
    super(code, `${message}${loc}`, { status: 400, cause: where.cause })
    this.name = 'MbError'
    this.offset = where.offset
    this.eventIndex = where.eventIndex
  }
}

/** True when `e` is an {@link MbError} (optionally with the given code). */
export function isMbError(e: unknown, code?: MbErrorCode): e is MbError {
  return e instanceof MbError && (code === undefined || e.code === code)
}
