/**
 * The static PCR policy `tpm_policy` (keylime-api.md §5.1; upstream `tpm_util.py: readPolicy`
 * and `tpm_main.py: check_pcrs`): a JSON object mapping PCR numbers to an allowed hex value or
 * list of values, plus `"mask": "0x…"`.
 *
 * @module
 */
import { BadRequest } from '../errors.ts'

/** A parsed `tpm_policy`. */
export interface TpmPolicy {
  /** The quote mask requested from the agent (bits 0–23). */
  mask: number
  /** Allowed values per PCR, lower-case hex. */
  pcrs: ReadonlyMap<number, readonly string[]>
}

const HEX = /^[0-9a-fA-F]+$/

/**
 * Parses and validates a `tpm_policy` (a JSON string as the tenant sends it, or an object).
 * PCR numbers must be integers 0–24 (upstream rejects only > 24), values hex strings. A missing
 * mask is derived from the listed PCRs.
 *
 * @throws {BadRequest} for malformed JSON or values.
 */
export function parseTpmPolicy(input: unknown): TpmPolicy {
  let v: unknown = input
  if (typeof input === 'string') {
    if (input.trim() === '') return { mask: 0, pcrs: new Map() }
    try {
      v = JSON.parse(input)
    } catch {
      throw new BadRequest('tpm_policy is not valid JSON')
    }
  }
  if (v === null || v === undefined) return { mask: 0, pcrs: new Map() }
  if (typeof v !== 'object' || Array.isArray(v))
    throw new BadRequest('tpm_policy must be a JSON object')
  const pcrs = new Map<number, string[]>()
  let mask: number | undefined
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (k === 'mask') {
      if (typeof val !== 'string' || !/^(0x)?[0-9a-fA-F]{1,8}$/i.test(val)) {
        throw new BadRequest('tpm_policy mask must be a hex string such as "0x408000"')
      }
      mask = Number.parseInt(val.replace(/^0x/i, ''), 16) & 0xffffff
      continue
    }
    if (!/^\d{1,2}$/.test(k) || Number(k) > 24) {
      throw new BadRequest(`tpm_policy: invalid PCR number ${JSON.stringify(k.slice(0, 20))}`)
    }
    const list = Array.isArray(val) ? val : [val]
    const out: string[] = []
    for (const item of list) {
      if (typeof item !== 'string' || !HEX.test(item) || item.length > 128) {
        throw new BadRequest(`tpm_policy: PCR ${k} values must be hex strings`)
      }
      out.push(item.toLowerCase())
    }
    pcrs.set(Number(k), out)
  }
  if (mask === undefined) {
    mask = 0
    for (const n of pcrs.keys()) if (n < 24) mask |= 1 << n
  }
  return { mask: mask >>> 0, pcrs }
}

/** Formats a PCR mask as the agent expects it (`0x…`). */
export function formatMask(mask: number): string {
  return `0x${(mask >>> 0).toString(16)}`
}
