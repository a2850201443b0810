/**
 * The static PCR policy `tpm_policy` (keylime-api.md §5.1): a JSON object mapping PCR numbers to
 * an allowed hex digest or list of digests, plus `"mask": "0x…"`. One parser and one type for
 * every role; what a role refuses on top of the shared grammar is an explicit check here too.
 *
 * - {@link parseTpmPolicy}: the grammar both sides share. PCR keys are decimal 0–24, as upstream
 *   `keylime/tpm/tpm_util.py: readPolicy` (`int(key) > 24` is refused) and the verifier's
 *   `tpm_main.py: check_pcrs` (which takes whatever the tenant stored) accept.
 * - {@link checkUserTpmPolicy}: the tenant's rule for `--tpm_policy` (`readPolicy`): PCR 16 binds the
 *   NK and PCR 10 carries IMA, so neither may be pinned by the user; PCR 24 does not exist in a
 *   24-PCR bank and is refused as well (upstream lets it through to a quote that then fails).
 *
 * @module
 */
import { BadRequest } from '../errors.ts'
import { IMA_PCR, TPM_DATA_PCR } from './keylime-pcrs.ts'

/** A parsed `tpm_policy`. */
export interface TpmPolicy {
  /** The quote mask requested from the agent (bits 0–23). */
  mask: number
  /** Allowed values per PCR, lower-case hex, in the order the policy listed them. */
  pcrs: ReadonlyMap<number, readonly string[]>
}

/** What is wrong with a `tpm_policy` ({@link TpmPolicyError.reason}). */
export type TpmPolicyProblem =
  /** Not JSON. */
  | 'json'
  /** JSON, but not an object. */
  | 'not-object'
  /** `mask` is not a hex string. */
  | 'mask'
  /** A key is not a PCR number this role accepts. */
  | 'pcr'
  /** A value is not a hex digest or a list of them. */
  | 'digest'
  /** PCR 16 (`TPM_DATA_PCR`) in a user policy. */
  | 'data-pcr'
  /** PCR 10 (`IMA_PCR`) in a user policy. */
  | 'ima-pcr'

/**
 * A malformed or refused `tpm_policy` (HTTP 400 `ERR_BAD_REQUEST` when it reaches a client; the
 * tenant turns it into a usage error from {@link reason} and {@link key}).
 */
export class TpmPolicyError extends BadRequest {
  /** What is wrong. */
  readonly reason: TpmPolicyProblem
  /** The offending key (PCR number as written), when one is to blame. */
  readonly key: string | undefined

  constructor(reason: TpmPolicyProblem, message: string, key?: string) {
    super(message)
    this.name = 'TpmPolicyError'
    this.reason = reason
    this.key = key
  }
}

const HEX = /^[0-9a-fA-F]+$/
/** Longest digest accepted (SHA-512 in hex). */
const MAX_DIGEST_HEX = 128

/** The mask selecting `pcrs` (PCR 24, outside a 24-PCR bank, selects nothing). */
export function pcrMask(pcrs: Iterable<number>): number {
  let mask = 0
  for (const n of pcrs) if (n < 24) mask |= 1 << n
  return mask >>> 0
}

/**
 * Parses and validates a `tpm_policy` (a JSON string as the tenant sends it, or an object). PCR
 * numbers must be integers 0–24, values hex strings (a single string is a one-element list). A
 * missing mask is derived from the listed PCRs; an empty string or `null` is the empty policy.
 *
 * @throws {TpmPolicyError} for malformed JSON or values.
 */
export function parseTpmPolicy(input: unknown): TpmPolicy {
  let v: unknown = input
  if (typeof input === 'string') {
    if (input.trim() === '') return { mask: 0, pcrs: new Map() }
    try {
      v = JSON.parse(input)
    } catch {
      throw new TpmPolicyError('json', 'tpm_policy is not valid JSON')
    }
  }
  if (v === null || v === undefined) return { mask: 0, pcrs: new Map() }
  if (typeof v !== 'object' || Array.isArray(v))
    throw new TpmPolicyError('not-object', 'tpm_policy must be a JSON object')
  const pcrs = new Map<number, string[]>()
  let mask: number | undefined
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (k === 'mask') {
      if (typeof val !== 'string' || !/^(0x)?[0-9a-fA-F]{1,8}$/i.test(val)) {
        throw new TpmPolicyError(
          'mask',
          'tpm_policy mask must be a hex string such as "0x408000"',
          k,
        )
      }
      mask = Number.parseInt(val.replace(/^0x/i, ''), 16) & 0xffffff
      continue
    }
    if (!/^\d{1,2}$/.test(k) || Number(k) > 24) {
      throw new TpmPolicyError(
        'pcr',
        `tpm_policy: invalid PCR number ${JSON.stringify(k.slice(0, 20))}`,
        k,
      )
    }
    const list = Array.isArray(val) ? val : [val]
    const out: string[] = []
    for (const item of list) {
      if (typeof item !== 'string' || !HEX.test(item) || item.length > MAX_DIGEST_HEX) {
        throw new TpmPolicyError('digest', `tpm_policy: PCR ${k} values must be hex strings`, k)
      }
      out.push(item.toLowerCase())
    }
    pcrs.set(Number(k), out)
  }
  return { mask: mask ?? pcrMask(pcrs.keys()), pcrs }
}

/**
 * The tenant's rule for a user-supplied policy (upstream `readPolicy`, `tpm_util.py` 648–672):
 * PCR 16 and PCR 10 are Keylime's own, and only PCRs 0–23 exist.
 *
 * @throws {TpmPolicyError} `data-pcr`, `ima-pcr` or `pcr` with upstream's message.
 */
export function checkUserTpmPolicy(policy: TpmPolicy): void {
  for (const pcr of policy.pcrs.keys()) {
    if (pcr > 23)
      throw new TpmPolicyError('pcr', `Invalid tpm policy pcr number: ${pcr}`, String(pcr))
    if (pcr === TPM_DATA_PCR)
      throw new TpmPolicyError(
        'data-pcr',
        `Invalid allowlist PCR number ${pcr}, keylime uses this PCR to bind data.`,
        String(pcr),
      )
    if (pcr === IMA_PCR)
      throw new TpmPolicyError(
        'ima-pcr',
        `Invalid allowlist PCR number ${pcr}, this PCR is used for IMA.`,
        String(pcr),
      )
  }
}

/** Formats a PCR mask as the agent and upstream's `hex()` write it (`0x…`, lower case). */
export function formatMask(mask: number): string {
  return `0x${(mask >>> 0).toString(16)}`
}

/**
 * The wire form of a policy, as the tenant sends it (upstream `json.dumps(readPolicy(…))`):
 * each PCR as a list of digests, then `mask`.
 */
export function tpmPolicyToJson(policy: TpmPolicy): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [pcr, digests] of policy.pcrs) out[String(pcr)] = [...digests]
  out.mask = formatMask(policy.mask)
  return out
}
