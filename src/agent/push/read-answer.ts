/**
 * Checked reads of the verifier's JSON answers: each helper returns the value with the expected
 * type and bounds or throws `ERR_AGENT_PUSH_ANSWER` naming the JSON path, so a malformed or
 * hostile answer ends the attestation cycle with a typed error instead of a crash.
 *
 * @module
 */

import { decodeBase64 } from '../../protocol/decode-base64.ts'
import { AgentError } from '../errors.ts'

/** A JSON object. */
export type JsonObject = Record<string, unknown>

/** Throws `ERR_AGENT_PUSH_ANSWER` for `path`. */
export function badAnswer(path: string, why: string): never {
  throw new AgentError('ERR_AGENT_PUSH_ANSWER', `verifier answer: ${path} ${why}`)
}

/** `v` as a JSON object. */
export function readObject(v: unknown, path: string): JsonObject {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) badAnswer(path, 'is not an object')
  return v as JsonObject
}

/** `v` as an array of at most `max` items. */
export function readArray(v: unknown, path: string, max: number): unknown[] {
  if (!Array.isArray(v)) badAnswer(path, 'is not an array')
  if (v.length > max) badAnswer(path, `has more than ${max} items`)
  return v
}

/** `v` as a string of 1..`max` characters. */
export function readString(v: unknown, path: string, max: number): string {
  if (typeof v !== 'string' || v.length === 0) badAnswer(path, 'is not a non-empty string')
  if (v.length > max) badAnswer(path, `is longer than ${max} characters`)
  return v
}

/** `v` as an integer in [min, max]. */
export function readInt(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    badAnswer(path, `is not an integer in [${min}, ${max}]`)
  }
  return v
}

/** `v` as strict standard base64 of at most `maxBytes` bytes. */
export function readBase64(v: unknown, path: string, maxBytes: number): Uint8Array {
  const text = readString(v, path, Math.ceil(maxBytes / 3) * 4)
  try {
    return Uint8Array.from(decodeBase64(text, { what: path }))
  } catch {
    return badAnswer(path, 'is not base64')
  }
}

/** `v` as a timestamp (ISO 8601) in ms since the epoch, or undefined when absent/invalid. */
export function readTimestamp(v: unknown): number | undefined {
  if (typeof v !== 'string' || v.length > 64) return undefined
  const t = Date.parse(v)
  return Number.isNaN(t) ? undefined : t
}
