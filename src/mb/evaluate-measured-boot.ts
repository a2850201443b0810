/**
 * The verifier's measured-boot stage: parse the UEFI event log, replay it, compare it with the
 * quoted PCRs the policy cares about, and evaluate the measured-boot policy against the refstate —
 * upstream Keylime's `tpm_main.py::check_pcrs` measured-boot steps and `mba/elchecking/elchecker.py`,
 * with upstream's failure event ids (`keylime/failure.py`: component `measured_boot`, and the quote
 * component spelled `qoute_validation` upstream). A non-empty refstate under `accept-all` is
 * evaluated by `example` (upstream #1932 drops it; logged once per refstate).
 *
 * Plain data in and out (Uint8Array, Map, strings), so it runs unchanged inside a worker.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import type { HashAlg } from '../tpm/constants.ts'
import { decodeBase64 } from '../protocol/decode-base64.ts'
import { getLogger } from '../log/logger.ts'
import { MEASUREDBOOT_PCRS } from '../protocol/keylime-pcrs.ts'
import { comparePcrs, type PcrMismatch } from './compare-pcrs.ts'
import { toHex } from './efi-text.ts'
import { isMbError } from './errors.ts'
import { type EventLog, parseEventLog } from './parse-event-log.ts'
import { type MbPolicy, policyForRefstate } from './policies.ts'
import { replayEventLog } from './replay-event-log.ts'

/** PCRs that carry measured boot (upstream `MEASUREDBOOT_PCRS`); one list for every role. */
export { MEASUREDBOOT_PCRS }

/** One failure event, shaped like upstream's `Failure` events. */
export interface MbFailure {
  /** e.g. `measured_boot.invalid_pcr_4`, `measured_boot.policy_example`. */
  event_id: string
  /** Details (upstream's context objects, plus `event` where we can name one). */
  context: Record<string, unknown>
  /** Upstream marks all of these recoverable. */
  recoverable: boolean
}

/** What a passing stage reports. */
export interface MbClaims {
  /** Bank compared. */
  bank: HashAlg
  /** Number of events in the log (including the header), 0 without a log. */
  events: number
  /** PCRs compared with the quote. */
  checkedPcrs: number[]
  /** Replayed values (hex) of the compared PCRs. */
  replayed: Record<string, string>
  /** SecureBoot as logged in PCR 7, or null if not logged. */
  secureBoot: boolean | null
  /** Boot aggregates for IMA (`H(PCR0..7)`, `H(PCR0..9)`) by bank, hex. */
  bootAggregates: Record<string, string[]>
  /** Whether the policy was evaluated this time (`measured_boot_evaluate`). */
  evaluated: boolean
}

/** Result of {@link evaluateMeasuredBoot}. */
export type MbResult =
  { ok: true; claims: MbClaims } | { ok: false; failures: MbFailure[]; claims?: MbClaims }

/** Input of {@link evaluateMeasuredBoot}. */
export interface MbInput {
  /** The raw `binary_bios_measurements` (decoded `mb_measurement_list`); null or empty when the agent sent none. */
  log: Uint8Array | null
  /** Quoted PCR values by bank name, then index. */
  quotedPcrs: ReadonlyMap<string, ReadonlyMap<number, Uint8Array>>
  /** The quote's hash algorithm. */
  bank: HashAlg
  /** `measured_boot_policy_name` (`accept-all` with a non-empty refstate evaluates `example`). */
  policyName: string
  /** The agent's mb_policy (refstate): a JSON string or parsed JSON; null when none. */
  refstate: unknown
  /** `measured_boot_evaluate` (default `once`). */
  evaluate?: string
  /** Successful attestations so far (upstream `attestation_count`); `once` evaluates only at 0. */
  attestationCount?: number
  /** Declarative custom policy documents (see docs/measured-boot-policies.md). */
  customPolicies?: readonly unknown[]
}

const fail = (event_id: string, context: Record<string, unknown>): MbFailure => ({
  event_id,
  context,
  recoverable: true,
})

function isEmptyJson(x: unknown): boolean {
  if (x === null || x === undefined || x === false || x === 0 || x === '') return true
  if (Array.isArray(x)) return x.length === 0
  return typeof x === 'object' && Object.keys(x).length === 0
}

const log = getLogger('verifier')
/** Refstates already reported by {@link noteSubstitution} (bounded: cleared when full). */
const substituted = new Set<string>()

/** Logs once per refstate (so once per agent or named policy) that `accept-all` was not used. */
function noteSubstitution(configured: string, used: string, refstate: unknown): void {
  const digest = createHash('sha256')
    .update(JSON.stringify(refstate) ?? '')
    .digest('hex')
  if (substituted.has(digest)) return
  if (substituted.size >= 4096) substituted.clear()
  substituted.add(digest)
  log.warn(
    `measured_boot_policy_name is ${configured}, but the refstate is not empty: it is evaluated by the built-in ${used} policy (an empty refstate skips measured boot)`,
    { refstate_sha256: digest },
  )
}

function secureBootOf(log: EventLog): boolean | null {
  for (const ev of log.events) {
    if (ev.pcr === 7 && ev.decoded.kind === 'variable' && ev.decoded.unicodeName === 'SecureBoot')
      return ev.decoded.enabled === 'Yes'
  }
  return null
}

function bootAggregates(
  pcrs: ReadonlyMap<HashAlg, ReadonlyMap<number, Uint8Array>>,
): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [bank, values] of pcrs) {
    out[bank] = [8, 10].map((n) => {
      const h = createHash(bank)
      for (let i = 0; i < n; i++) h.update(values.get(i) as Uint8Array)
      return h.digest('hex')
    })
  }
  return out
}

function mismatchFailure(m: PcrMismatch): MbFailure {
  return fail(`measured_boot.invalid_pcr_${m.pcr}`, {
    context: `${m.bank.toUpperCase()} boot event log PCR value does not match`,
    got: m.got,
    expected: m.expected,
    event: m.event,
    matching_prefix: m.matchingPrefix,
    reason:
      m.event === null
        ? `PCR ${m.pcr} has no events in the log but the quote has a non-initial value`
        : m.matchingPrefix === null
          ? `no prefix of the ${m.events} events of PCR ${m.pcr} reproduces the quoted value; first event ${m.event.index} (${m.event.type})`
          : `the quote reflects ${m.matchingPrefix} of ${m.events} events of PCR ${m.pcr}; event ${m.event.index} (${m.event.type}) cannot be reconciled`,
  })
}

/**
 * Runs the measured-boot stage.
 *
 * @example
 * ```ts
 * const r = evaluateMeasuredBoot({ log, quotedPcrs, bank: 'sha256', policyName: 'example', refstate })
 * if (!r.ok) for (const f of r.failures) console.log(f.event_id, f.context)
 * ```
 */
export function evaluateMeasuredBoot(input: MbInput): MbResult {
  const failures: MbFailure[] = []
  const { bank } = input
  const quoted = input.quotedPcrs.get(bank) ?? new Map<number, Uint8Array>()

  // Parse (upstream reports parser failures whether or not a policy is set).
  let log: EventLog | null = null
  if (input.log !== null && input.log.length > 0) {
    try {
      log = parseEventLog(input.log)
    } catch (e) {
      if (!isMbError(e)) throw e
      failures.push(
        fail('measured_boot.parser.tpm2_eventlog.error', {
          context: 'the UEFI event log could not be parsed',
          code: e.code,
          data: e.message,
          offset: e.offset ?? null,
          event_index: e.eventIndex ?? null,
        }),
      )
    }
  }
  const replay = log === null ? null : replayEventLog(log)
  if (log !== null && replay !== null && !replay.pcrs.has(bank)) {
    failures.push(
      fail('measured_boot.parser.invalid_pcrs_hashes', { got: [...replay.pcrs.keys()] }),
    )
  }

  // The refstate (mb_policy).
  let refstate = input.refstate
  let policyValid = refstate !== null && refstate !== undefined && refstate !== ''
  if (typeof refstate === 'string' && policyValid) {
    try {
      refstate = JSON.parse(refstate)
      policyValid = refstate !== null
    } catch {
      policyValid = false
    }
    if (!policyValid)
      failures.push(
        fail('qoute_validation.invalid_mb_policy', { message: 'Invalid measured boot policy' }),
      )
  }
  const nonEmpty = policyValid && !isEmptyJson(refstate)

  let policy: MbPolicy | null = null
  if (nonEmpty) {
    try {
      policy = policyForRefstate(input.policyName, input.customPolicies)
      if (policy.name !== input.policyName)
        noteSubstitution(input.policyName, policy.name, refstate)
    } catch (e) {
      if (!isMbError(e)) throw e
      failures.push(
        fail(`measured_boot.policy_${input.policyName}`, {
          context: 'Boot attestation failed',
          policy: input.policyName,
          reason: e.message,
        }),
      )
    }
  }

  // PCRs the policy needs for this refstate (compared with the log, and required in the quote)
  const needed = policy === null ? [] : (policy.pcrsFor?.(refstate) ?? policy.relevantPcrs)
  const checked: number[] = []
  const replayedHex: Record<string, string> = {}
  const parsedOk = failures.length === 0
  if (policy !== null && parsedOk) {
    const relevant = needed.length === 0 ? MEASUREDBOOT_PCRS : needed
    const toCheck = relevant.filter((p) => MEASUREDBOOT_PCRS.includes(p) && quoted.has(p))
    const bankValues = replay?.pcrs.get(bank)
    if (log === null || bankValues === undefined) {
      for (const p of toCheck) {
        failures.push(
          fail(`pcr_validation.unused_pcr_${p}`, {
            message: `Measured Boot PCR ${p} in policy, but no measurement list provided`,
          }),
        )
      }
    } else {
      for (const m of comparePcrs(log, bank, bankValues, quoted, toCheck))
        failures.push(mismatchFailure(m))
      for (const p of toCheck) {
        checked.push(p)
        replayedHex[p] = toHex(bankValues.get(p) as Uint8Array)
      }
    }
  }

  // Evaluate the policy (once | always).
  let evaluated = false
  const mode = input.evaluate ?? 'once'
  if (policy !== null && parsedOk && log !== null) {
    if (mode !== 'once' && mode !== 'always') {
      failures.push(
        fail('qoute_validation.invalid_measured_boot_evaluate', {
          message: 'correct value of measured_boot_evaluate is required',
        }),
      )
    } else if (mode === 'always' || (input.attestationCount ?? 0) === 0) {
      evaluated = true
      const missing = needed.filter((p) => !quoted.has(p))
      let reason = ''
      if (missing.length > 0) {
        failures.push(
          fail('measured_boot.missing_pcrs', {
            context: 'PCRs are missing in quote',
            data: missing,
          }),
        )
      } else {
        try {
          reason = policy.evaluate(refstate, log)
        } catch (e) {
          if (!isMbError(e)) throw e
          reason = `policy evaluation failed: ${e.message}`
        }
      }
      if (reason) {
        failures.push(
          fail(`measured_boot.policy_${policy.name}`, {
            context: 'Boot attestation failed',
            policy: policy.name,
            refstate: JSON.stringify(refstate).slice(0, 1000),
            reason,
          }),
        )
      }
    }
  }

  const claims: MbClaims = {
    bank,
    events: log?.events.length ?? 0,
    checkedPcrs: checked,
    replayed: replayedHex,
    secureBoot: log === null ? null : secureBootOf(log),
    bootAggregates: replay === null ? {} : bootAggregates(replay.pcrs),
    evaluated,
  }
  return failures.length === 0 ? { ok: true, claims } : { ok: false, failures, claims }
}

/** Input of {@link evaluateMeasuredBootEvidence}: the `/verify/evidence` TPM fields. */
export interface MbEvidenceInput {
  /** `mb_log`: base64 of the binary event log ("" or absent: none). */
  mb_log?: string
  /** `mb_policy`: the refstate JSON string ("" or absent: none). */
  mb_policy?: string
  /** `hash_alg` of the quote. */
  hash_alg: HashAlg
  /** Quoted PCRs (from the verified quote). */
  quotedPcrs: ReadonlyMap<string, ReadonlyMap<number, Uint8Array>>
  /** `measured_boot_policy_name`. */
  policyName: string
  /** Declarative custom policies. */
  customPolicies?: readonly unknown[]
}

/**
 * The `/verify/evidence` variant: decodes `mb_log` (base64) and evaluates the policy on every call
 * (there is no attestation history; upstream passes count −1, which with `once` would silently skip
 * evaluation — we evaluate, which is what a one-shot verification asks for).
 */
export function evaluateMeasuredBootEvidence(input: MbEvidenceInput): MbResult {
  let log: Uint8Array | null = null
  const b64 = (input.mb_log ?? '').replace(/\s+/g, '')
  if (b64 !== '') {
    try {
      log = decodeBase64(b64, { what: 'mb_log' })
    } catch {
      return {
        ok: false,
        failures: [
          fail('measured_boot.parser.log.base64decode', {
            message: 'Measured boot log could not be decoded',
          }),
        ],
      }
    }
  }
  return evaluateMeasuredBoot({
    log,
    quotedPcrs: input.quotedPcrs,
    bank: input.hash_alg,
    policyName: input.policyName,
    refstate: input.mb_policy === '' ? null : (input.mb_policy ?? null),
    evaluate: 'always',
    ...(input.customPolicies === undefined ? {} : { customPolicies: input.customPolicies }),
  })
}
