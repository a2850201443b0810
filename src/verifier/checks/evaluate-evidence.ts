/**
 * The checks of one piece of TPM evidence, whoever brought it: a pull round's quote answer
 * (`check-quote.ts`), a `POST /verify/evidence` body (`evidence-request.ts`) and pushed
 * evidence (`check-quote.ts` for a push record: no NK, no PCR 16). Upstream's order and event ids (`tpm_main.py: check_quote / check_pcrs`):
 *
 * 1. quote signature, nonce and PCR digest with the AK (`qoute_validation.quote_validation`);
 * 2. the clock against the previous quote, when there was one (`quote-timing.ts`);
 * 3. PCR 16 binds the NK, when the caller has an NK (`pcr_validation.invalid_pcr_16` / `missing_pcr_16`);
 * 4. measured boot (`measured_boot.*`, via `src/mb`), giving boot aggregates to IMA;
 * 5. IMA (`ima.*`, via `src/ima`), PCR 10, incrementally when the caller keeps the agent's state;
 * 6. the remaining PCRs against `tpm_policy` (`pcr_validation.invalid_pcr_<n>`, `missing_pcrs`).
 *
 * Pure and synchronous: typed evidence in, a {@link Failure} and what was learnt out. A part the
 * caller could not read (an undecodable log, a policy that does not load) is passed as
 * {@link Unreadable} and reported at its stage, so failures keep upstream's order.
 *
 * @module
 */
import type { KeyObject } from 'node:crypto'
import {
  type CompiledRuntimePolicy,
  type EvaluateImaResult,
  evaluateIma,
  type ImaAgentState,
  type ImaKeyring,
} from '../../ima/index.ts'
import { evaluateMeasuredBoot, type MbClaims } from '../../mb/index.ts'
import type { TpmPolicy } from '../../protocol/tpm-policy.ts'
import type { HashAlg } from '../../tpm/constants.ts'
import { isTpmError } from '../../tpm/errors.ts'
import { checkNkBinding } from '../../tpm/extend-pcr.ts'
import { type VerifiedQuote, verifyQuote } from '../../tpm/verify-quote.ts'
import type { StoredClockInfo } from './quote-timing.ts'
import { Failure, type SeverityRules } from './failure.ts'
import { checkQuoteTiming } from './quote-timing.ts'

/** Verifier options every caller shares. */
export interface EvidenceOptions {
  rules: SeverityRules
  /** `[verifier] measured_boot_policy_name`. */
  mbPolicyName: string
  /** `[verifier] ignore_tomtou_errors` as configured (upstream meaning). */
  ignoreTomtouErrors: boolean
}

/** A part of the evidence its caller could not read: this event is reported at its stage. */
export interface Unreadable {
  unreadable: { event_id: string; context: Record<string, unknown>; recoverable: boolean }
}

/** The UEFI event log and the measured-boot refstate. */
export interface MbEvidence {
  /** The binary event log, or null when none was sent. */
  log: Uint8Array | null
  /** The refstate (`mb_policy`): JSON text, or already parsed. */
  refstate: unknown
  /** `[verifier] measured_boot_evaluate`: `once` evaluates only the first attestation. */
  evaluate: string
  attestationCount: number
}

/** The agent's IMA state kept between pull rounds (the incremental protocol). */
export interface ImaIncrement {
  state: ImaAgentState
  /** `ima_measurement_list_entry` of the answer. */
  startEntry: number
  boottime: number
  /** The tenant's `ima_sign_verification_keys`, or null. */
  keyring: ImaKeyring | null
}

/** The IMA measurement list and the runtime policy. */
export interface ImaEvidence {
  /** The ASCII list, or undefined when none was sent. */
  list: string | undefined
  /** Compiled runtime policy, or null for upstream's empty policy (see `evaluateIma`). */
  policy: CompiledRuntimePolicy | null
  /**
   * Pull rounds: the state the list continues. Absent (one-shot evidence): the whole list. Either
   * way IMA is checked only when PCR 10 is quoted, as upstream.
   */
  increment?: ImaIncrement
}

/** One piece of evidence. */
export interface Evidence {
  /** The quote string (`r<TPMS_ATTEST>:<TPMT_SIGNATURE>:<PCR blob>`, base64 parts). */
  quote: string
  /** The pull nonce (compared as UTF-8), or a push challenge's raw bytes. */
  nonce: string | Uint8Array
  hashAlg: HashAlg
  signAlg?: 'rsassa' | 'rsapss' | 'ecdsa'
  ak: KeyObject
  /** The clock stored from the agent's previous quote (checked when given). */
  previousClock?: StoredClockInfo
  /** The NK public key PEM that PCR 16 binds (checked when given). */
  nk?: string
  tpmPolicy: TpmPolicy | null | Unreadable
  /** Absent: no measured-boot policy. */
  mb?: MbEvidence | Unreadable
  /** Absent: no IMA check, PCR 10 is like any other PCR. */
  ima?: ImaEvidence | Unreadable
}

/** What the IMA stage concluded (`state` is the agent's next state). */
export type ImaOutcome = Exclude<EvaluateImaResult, { ok: 'retry' }>

/** Result of {@link evaluateEvidence}. */
export type EvidenceOutcome =
  /** The quote or its timing failed: nothing else was checked. */
  | { kind: 'refused'; failure: Failure }
  /** Everything was checked; `failure.failed` tells the verdict. */
  | { kind: 'checked'; failure: Failure; quote: VerifiedQuote; mb?: MbClaims; ima?: ImaOutcome }
  /** The agent rebooted since its IMA state was taken: restart from this state. */
  | { kind: 'reboot'; ima: ImaAgentState }

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

function isUnreadable(v: object): v is Unreadable {
  return 'unreadable' in v
}

/** Checks one piece of evidence. Throws only for a bug (every bad input is a failure event). */
export function evaluateEvidence(e: Evidence, opts: EvidenceOptions): EvidenceOutcome {
  const f = new Failure(opts.rules)
  const quote = verifyEvidenceQuote(f, e)
  if (quote === undefined) return { kind: 'refused', failure: f }
  const pcrs = quote.pcrs.get(e.hashAlg) ?? new Map<number, Uint8Array>()
  // PCRs a stage explained (16, MB, IMA): tpm_policy leaves them alone
  const used = new Set<number>()
  if (e.nk !== undefined) checkPcr16(f, quote, e.hashAlg, e.nk, used)

  let mb: MbClaims | undefined
  if (e.mb !== undefined) {
    if (isUnreadable(e.mb)) addUnreadable(f, e.mb)
    else mb = checkMeasuredBoot(f, e.mb, quote, e.hashAlg, used, opts)
  }
  let ima: ImaOutcome | undefined
  if (e.ima !== undefined) {
    if (isUnreadable(e.ima)) addUnreadable(f, e.ima)
    else {
      const bootAggregates = mb?.bootAggregates[e.hashAlg]
      const r = checkIma(f, e.ima, pcrs, e.hashAlg, bootAggregates, used, opts)
      if (r?.ok === 'retry') return { kind: 'reboot', ima: r.state }
      ima = r
    }
  }
  if (e.tpmPolicy !== null) {
    if (isUnreadable(e.tpmPolicy)) addUnreadable(f, e.tpmPolicy)
    else checkTpmPolicy(f, e.tpmPolicy, pcrs, used)
  }
  return { kind: 'checked', failure: f, quote, mb, ima }
}

function addUnreadable(f: Failure, u: Unreadable): void {
  f.add(u.unreadable.event_id, u.unreadable.context, u.unreadable.recoverable)
}

/** Steps 1–2: the quote and its clock; undefined (with the event added) when either fails. */
function verifyEvidenceQuote(f: Failure, e: Evidence): VerifiedQuote | undefined {
  let quote: VerifiedQuote
  try {
    quote = verifyQuote({
      quote: e.quote,
      akPublic: e.ak,
      nonce: e.nonce,
      hashAlg: e.hashAlg,
      signAlg: e.signAlg,
    })
  } catch (err) {
    f.add(
      'qoute_validation.quote_validation',
      { message: 'Quote data validation', error: quoteErrorText(err) },
      false,
    )
    return undefined
  }
  if (e.previousClock !== undefined) {
    const clockErr = checkQuoteTiming(e.previousClock, quote.clockInfo)
    if (clockErr !== undefined) {
      f.add(
        'qoute_validation.quote_validation',
        { message: 'Validation of clockinfo from quote using tpm2-tools', data: clockErr },
        false,
      )
      return undefined
    }
  }
  return quote
}

/** Errors upstream words itself (nonce, hash) carry its text alone; others are `CODE: text`. */
function quoteErrorText(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err)
  if (isTpmError(err, 'ERR_QUOTE_NONCE') || isTpmError(err, 'ERR_QUOTE_HASH_ALG')) return msg
  return isTpmError(err) ? `${err.code}: ${msg}` : msg
}

/** Step 3: PCR 16 holds H(0 || H(NK)), binding the NK to this TPM. */
function checkPcr16(
  f: Failure,
  quote: VerifiedQuote,
  bank: HashAlg,
  nk: string,
  used: Set<number>,
): void {
  const pcr16 = quote.pcrs.get(bank)?.get(16)
  if (pcr16 === undefined) {
    f.add('pcr_validation.missing_pcr_16', 'Data PCR 16 is missing in quote, but is required', true)
    return
  }
  used.add(16)
  try {
    checkNkBinding(quote.pcrs, bank, nk)
  } catch {
    f.add('pcr_validation.invalid_pcr_16', { got: hex(pcr16), expected: 'H(0 || H(pubkey))' }, true)
  }
}

/** Step 4: replays the UEFI log against the quoted PCRs and evaluates the refstate. */
function checkMeasuredBoot(
  f: Failure,
  mb: MbEvidence,
  quote: VerifiedQuote,
  bank: HashAlg,
  used: Set<number>,
  opts: EvidenceOptions,
): MbClaims | undefined {
  try {
    const r = evaluateMeasuredBoot({
      log: mb.log,
      quotedPcrs: quote.pcrs,
      bank,
      policyName: opts.mbPolicyName,
      refstate: mb.refstate,
      evaluate: mb.evaluate,
      attestationCount: mb.attestationCount,
    })
    if (r.claims !== undefined) for (const n of r.claims.checkedPcrs) used.add(n)
    if (!r.ok) f.addAll(r.failures)
    return r.claims
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err)
    f.add('measured_boot.exception', { message }, true)
    return undefined
  }
}

/** Step 5: replays the IMA list onto PCR 10 and evaluates it against the runtime policy. */
function checkIma(
  f: Failure,
  ima: ImaEvidence,
  pcrs: ReadonlyMap<number, Uint8Array>,
  bank: HashAlg,
  bootAggregates: string[] | undefined,
  used: Set<number>,
  opts: EvidenceOptions,
): EvaluateImaResult | undefined {
  // upstream `tpm_main.py` `check_pcrs`: IMA is checked when PCR 10 is quoted, whoever asks
  const pcr10 = pcrs.get(10)
  const inc = ima.increment
  if (pcr10 === undefined) return undefined
  used.add(10)
  if (ima.list === undefined) {
    const why = 'IMA PCR in policy, but no measurement list provided'
    f.add('pcr_validation.unused_pcr_10', why, true)
    return undefined
  }
  const r = evaluateIma({
    list: ima.list,
    startEntry: inc?.startEntry ?? 0,
    bootTime: inc?.boottime ?? 0,
    state: inc?.state,
    quotedPcr10: pcr10,
    bank,
    policy: ima.policy,
    bootAggregates,
    // src/ima implements the option's meaning; upstream's effective behaviour is inverted
    // (an event only when ignore_tomtou_errors is true), which we keep: see the compat notes.
    config: { ignoreTomtouErrors: !opts.ignoreTomtouErrors, tenantKeyring: inc?.keyring ?? null },
  })
  if (r.ok === false) f.addAll(r.failures)
  return r
}

/** Step 6: every quoted PCR no stage explained must be in its allowlist; none may be missing. */
function checkTpmPolicy(
  f: Failure,
  policy: TpmPolicy,
  pcrs: ReadonlyMap<number, Uint8Array>,
  used: ReadonlySet<number>,
): void {
  for (const [n, v] of pcrs) {
    const allowed = used.has(n) ? undefined : policy.pcrs.get(n)
    if (allowed === undefined) continue
    const got = hex(v)
    if (!allowed.includes(got)) {
      f.add(
        `pcr_validation.invalid_pcr_${n}`,
        { context: 'PCR value is not in allowlist', got, expected: [...allowed] },
        true,
      )
    }
  }
  const missing = [...policy.pcrs.keys()].filter((n) => !pcrs.has(n))
  if (missing.length > 0) {
    f.add(
      'pcr_validation.missing_pcrs',
      { context: 'PCRs are missing in quote', data: missing },
      true,
    )
  }
}
