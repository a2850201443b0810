/**
 * `POST /verify/evidence` (API 2.4/2.5, upstream 7.14 `cloud_verifier_tornado.py:
 * VerifyEvidenceHandler._tpm_verify` and `cloud_verifier_common.process_verify_attestation`): the
 * adapter from a request body to {@link evaluateEvidence} and back to upstream's answer, checked
 * case by case against a running upstream (`test/fixtures/verify-evidence/`).
 *
 * Upstream's answer, kept here:
 * - the body's `type` and `data` missing or empty: 400 with the reason as `status`, `results` `{}`;
 * - a TPM field missing or `""` (first one only, in upstream's order), or no truthy policy: 400
 *   with `default.missing_param` / `default.missing_policy` in `failures`;
 * - otherwise 200, `valid` and `failures` (upstream's event ids and contexts); `claims` is the
 *   request's `data` echoed when valid, `{}` when not;
 * - `runtime_policy` is the policy as JSON text (a DSSE envelope too); `tpm_policy` JSON text or
 *   an object; `mb_policy` the refstate as JSON text; `mb_log` base64.
 *
 * Where upstream answers 500 (a body that is not a JSON object, `runtime_policy` that is not JSON
 * text, `data: null`) we answer a typed 400 instead: see docs/compatibility.md.
 *
 * It runs in a check worker (`check-worker.ts`, job `evidence`): a large IMA list costs seconds
 * of CPU, which must not hold the event loop. {@link verifyEvidenceBody} is the worker's entry
 * (raw bytes in, a verdict out, never a throw); {@link answerEvidenceRequest} is total on any JSON
 * value (fuzzed by `test/support/fuzz-evidence.ts`). `failures` is capped at
 * {@link MAX_EVIDENCE_FAILURES}; `failures_omitted`, present only then, counts the rest.
 *
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { isKeylimeError } from '../../errors.ts'
import { loadRuntimePolicy } from '../../ima/index.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'
import { isHashAlg } from '../../tpm/constants.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { parseQuoteString } from '../../tpm/quote-string.ts'
import type { CheckOptions } from './check-quote.ts'
import { type Evidence, evaluateEvidence, type Unreadable } from './evaluate-evidence.ts'
import { Failure, type SeverityRules } from './failure.ts'

/** Most failures an answer lists; the rest are counted in `failures_omitted`. */
export const MAX_EVIDENCE_FAILURES = 100

/** The `results` of the answer. */
export interface EvidenceResults {
  valid: boolean
  claims: unknown
  failures: { type: string; context: Record<string, unknown> }[]
  /** Failures not listed (only when some were left out). */
  failures_omitted?: number
}

/** Which checks ran and held their ground to a verdict (for the EAR; not on the wire). */
export interface EvidenceChecks {
  /** The quote verified with the AK. */
  quote: boolean
  /** A tpm_policy was evaluated. */
  tpmPolicy: boolean
  /** The IMA list was evaluated (a runtime policy and PCR 10 quoted). */
  ima: boolean
  /** The UEFI log and refstate were evaluated. */
  mb: boolean
}

/** The answer: HTTP status, `results`, and what was checked. */
export interface EvidenceAnswer {
  status: 200 | 400
  results: EvidenceResults
  checks: EvidenceChecks
}

const NOTHING_CHECKED: EvidenceChecks = { quote: false, tpmPolicy: false, ima: false, mb: false }

/** What {@link verifyEvidenceBody} gives: an answer, or a refusal of the body (400, `results` `{}`). */
export type EvidenceVerdict =
  | { kind: 'answer'; answer: EvidenceAnswer }
  | { kind: 'rejected'; status: number; code: string; message: string }

/** The `data` of a `tpm` body (any JSON value: upstream reads fields with `in`). */
type Data = Record<string, unknown>

/** The TPM fields upstream requires, in its order (it reports the first missing one). */
const REQUIRED = ['quote', 'nonce', 'hash_alg', 'tpm_ek', 'tpm_ak'] as const

function answer(
  status: 200 | 400,
  f: Failure,
  claims: unknown,
  checks: EvidenceChecks = NOTHING_CHECKED,
): EvidenceAnswer {
  const results: EvidenceResults = {
    valid: !f.failed,
    claims,
    failures: f.events
      .slice(0, MAX_EVIDENCE_FAILURES)
      .map((e) => ({ type: e.event_id, context: e.context })),
  }
  const omitted = f.events.length - results.failures.length
  if (omitted > 0) results.failures_omitted = omitted
  return { status, results, checks }
}

function rejected(message: string): EvidenceVerdict {
  return { kind: 'rejected', status: 400, code: 'ERR_EVIDENCE_REQUEST', message }
}

/** The answer for an evaluation that threw (a bug or a resource limit, never a crash). */
export function evidenceException(message: string, rules: SeverityRules): EvidenceAnswer {
  const f = new Failure(rules)
  const context = { context: 'Evidence caused the verifier to throw an exception', data: message }
  f.add('internal.verifier.exception', context, false)
  return answer(200, f, {})
}

/**
 * Parses and answers a request body (raw bytes). Never throws: a body that is not JSON is
 * `rejected` (400), and an evaluation that throws becomes an `internal.verifier.exception` failure.
 */
export function verifyEvidenceBody(bytes: Uint8Array, opts: CheckOptions): EvidenceVerdict {
  let body: unknown
  try {
    body = JSON.parse(new TextDecoder().decode(bytes))
  } catch (err) {
    return rejected(`Invalid JSON in request body: ${(err as Error).message}`)
  }
  try {
    return answerEvidenceRequest(body, opts)
  } catch (err) {
    return { kind: 'answer', answer: evidenceException(errorText(err), opts.rules) }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : 'non-error exception'
}

/** Python's `k in d and d[k] != ""` on a JSON object; any other value has no fields. */
function field(d: unknown, k: string): unknown {
  if (typeof d !== 'object' || d === null || Array.isArray(d)) return undefined
  const v = Object.hasOwn(d, k) ? (d as Data)[k] : undefined
  return v === '' ? undefined : v
}

/** Python truthiness of a JSON value. */
function truthy(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === '') return false
  if (Array.isArray(v)) return v.length > 0
  return typeof v !== 'object' || Object.keys(v).length > 0
}

/** Python's `str()` of a JSON value, for messages. */
function pyStr(v: unknown): string {
  if (v === null || v === undefined) return 'None'
  if (typeof v === 'boolean') return v ? 'True' : 'False'
  return typeof v === 'string' ? v.slice(0, 64) : JSON.stringify(v).slice(0, 64)
}

/** Answers a parsed `/verify/evidence` body. */
export function answerEvidenceRequest(body: unknown, opts: CheckOptions): EvidenceVerdict {
  const type = field(body, 'type')
  if (type === undefined) return rejected("missing parameter 'type'")
  const data = field(body, 'data')
  if (data === undefined) return rejected("missing parameter 'data'")
  if (type === 'tee') return { kind: 'answer', answer: answerTee(data, opts.rules) }
  if (type !== 'tpm') return rejected('invalid evidence type')
  return { kind: 'answer', answer: answerTpm(data, opts) }
}

/** `_tpm_verify`: required fields, a policy, then the evaluation. */
function answerTpm(data: unknown, opts: CheckOptions): EvidenceAnswer {
  const f = new Failure(opts.rules)
  for (const k of REQUIRED) {
    if (field(data, k) === undefined) {
      f.add('default.missing_param', { message: `missing parameter "${k}"` }, false)
      return answer(400, f, {})
    }
  }
  const d = data as Data
  const runtimePolicy = field(d, 'runtime_policy')
  const mbPolicy = field(d, 'mb_policy')
  if (!truthy(field(d, 'tpm_policy')) && !truthy(runtimePolicy) && !truthy(mbPolicy)) {
    const message =
      'at least one policy (tpm_policy, runtime_policy, or mb_policy) must be provided'
    f.add('default.missing_policy', { message }, false)
    return answer(400, f, {})
  }
  // upstream loads the runtime policy before anything else, and answers 500 when it cannot
  let ima: Evidence['ima']
  if (truthy(runtimePolicy)) {
    if (typeof runtimePolicy !== 'string')
      return invalidParam(f, 'runtime_policy must be JSON text')
    try {
      ima = { list: imaList(d), policy: loadRuntimePolicy(runtimePolicy, {}) }
    } catch (err) {
      return invalidParam(f, `runtime_policy is not a valid runtime policy: ${messageOf(err)}`)
    }
  } else ima = { list: imaList(d), policy: null }
  const read = readEvidence(f, d, ima, mbPolicy)
  if (read === undefined) return answer(200, f, {})
  const { evidence, tpmPolicyError } = read
  if (tpmPolicyError !== undefined) {
    // upstream reads tpm_policy first in check_pcrs: nothing else is checked once the quote holds
    const out = evaluateEvidence({ ...evidence, ima: undefined, mb: undefined }, opts)
    if (out.kind === 'refused') return answer(200, out.failure, {})
    const g = new Failure(opts.rules)
    invalidQuote(g, tpmPolicyError)
    return answer(200, g, {})
  }
  const out = evaluateEvidence(evidence, opts)
  if (out.kind === 'reboot') throw new Error('IMA reboot without an incremental state')
  const checked = out.kind === 'checked'
  const checks: EvidenceChecks = {
    quote: checked,
    tpmPolicy: checked && evidence.tpmPolicy !== null,
    ima: checked && out.ima !== undefined,
    mb: checked && out.mb !== undefined,
  }
  return answer(200, out.failure, out.failure.failed ? {} : data, checks)
}

/**
 * The evidence, or undefined with upstream's failure added (`process_verify_attestation`): the
 * hash algorithm, the AK, the nonce and quote, the policies. Shared with `/verify/identity`.
 */
export function readEvidence(
  f: Failure,
  d: Data,
  ima: Evidence['ima'],
  mbPolicy: unknown,
): { evidence: Evidence; tpmPolicyError?: string } | undefined {
  const hashAlg = d.hash_alg
  if (typeof hashAlg !== 'string' || !isHashAlg(hashAlg)) {
    const message = `TPM Quote is using an unrecognized hash algorithm: ${pyStr(hashAlg)}`
    f.add('qoute_validation.invalid_hash_alg', { message, data: hashAlg }, false)
    return undefined
  }
  // upstream decodes the AK, then splits the quote: either failing is `invalid_quote`
  let ak: KeyObject
  try {
    ak = readAk(d.tpm_ak)
    if (typeof d.nonce !== 'string') throw new Error('nonce must be a string')
    if (typeof d.quote !== 'string') throw new Error('quote must be a string')
    parseQuoteString(d.quote)
  } catch (err) {
    invalidQuote(f, messageOf(err))
    return undefined
  }
  const evidence: Evidence = { quote: d.quote, nonce: d.nonce, hashAlg, ak, tpmPolicy: null, ima }
  if (truthy(mbPolicy)) evidence.mb = readMb(d, mbPolicy)
  const tpmPolicy = field(d, 'tpm_policy')
  if (!truthy(tpmPolicy)) return { evidence }
  try {
    evidence.tpmPolicy = parseTpmPolicy(tpmPolicy)
    return { evidence }
  } catch (err) {
    return { evidence, tpmPolicyError: messageOf(err) }
  }
}

function invalidQuote(f: Failure, message: string): void {
  f.add('qoute_validation.invalid_quote', { message: `Quote validation failed: ${message}` }, false)
}

/** A field upstream cannot read at all (it answers 500): 400 with the reason. */
function invalidParam(f: Failure, message: string): EvidenceAnswer {
  f.add('default.invalid_param', { message }, false)
  return answer(400, f, {})
}

/** The IMA list (upstream's default is `""`: PCR 10, when quoted, is then checked against nothing). */
function imaList(d: Data): string {
  const list = field(d, 'ima_measurement_list')
  return typeof list === 'string' ? list : ''
}

/** The AK: a TPM2B_PUBLIC in base64, as upstream (`pubkey_from_tpm2b_public`). */
function readAk(v: unknown): KeyObject {
  if (typeof v !== 'string') throw new Error('tpm_ak must be a string')
  return toKeyObject(parseTpm2bPublic(decodeBase64Field(v, 'tpm_ak')))
}

function unreadable(event_id: string, message: string, recoverable: boolean): Unreadable {
  return { unreadable: { event_id, context: { message }, recoverable } }
}

function messageOf(err: unknown): string {
  return isKeylimeError(err) || err instanceof Error ? err.message : 'invalid'
}

/**
 * `mb_policy` (the refstate as JSON text: anything else is upstream's `invalid_mb_policy`) and
 * `mb_log` (base64). The refstate is always evaluated: upstream passes `count = -1`, so with its
 * default `measured_boot_evaluate = once` it checks only the log against the PCRs and ignores the
 * refstate it was given (docs/compatibility.md).
 */
function readMb(d: Data, mbPolicy: unknown): Evidence['mb'] {
  if (typeof mbPolicy !== 'string') {
    return unreadable('pcr_validation.invalid_mb_policy', 'Invalid measured boot policy', true)
  }
  let log: Buffer
  try {
    log = decodeBase64Field(field(d, 'mb_log') ?? '', 'mb_log')
  } catch {
    const why = 'Measured boot log could not be decoded'
    return unreadable('measured_boot.parser.log.base64decode', why, true)
  }
  return {
    log: log.length === 0 ? null : log,
    refstate: mbPolicy,
    evaluate: 'always',
    attestationCount: 0,
  }
}

/** `_tee_verify`: the fields upstream requires; no TEE verifier here (see docs/compatibility.md). */
function answerTee(data: unknown, rules: SeverityRules): EvidenceAnswer {
  const f = new Failure(rules)
  const missing = (k: string) => {
    f.add('tee_attestation.missing_param', { message: `missing parameter "${k}"` }, false)
    return answer(400, f, {})
  }
  for (const k of ['tee-evidence', 'nonce', 'tee-pubkey-x-b64', 'tee-pubkey-y-b64']) {
    if (field(data, k) === undefined) return missing(k)
  }
  const evidence = field(data, 'tee-evidence')
  for (const k of ['tee', 'evidence']) if (field(evidence, k) === undefined) return missing(k)
  if (field(evidence, 'tee') !== 'snp') {
    f.add('tee_attestation.invalid.tee', { message: 'invalid tee argument' }, false)
  } else {
    const message = 'SEV-SNP evidence is not supported by keylime-ts'
    f.add('tee_attestation.unsupported', { message }, false)
  }
  return answer(200, f, {})
}
