/**
 * `POST /verify/evidence` (API 2.4/2.5, upstream `cloud_verifier_tornado.py:
 * VerifyEvidenceHandler` with the TPM evidence verifier): the adapter from a request body to
 * {@link evaluateEvidence} and back to upstream's `{valid, claims, failures}` answer.
 *
 * It runs in a check worker (`check-worker.ts`, job `evidence`): a large IMA list costs seconds
 * of CPU, which must not hold the event loop. {@link verifyEvidenceBody} is the worker's entry
 * (raw bytes in, a verdict out, never a throw); {@link answerEvidenceRequest} is total on any JSON
 * object (fuzzed by `test/support/fuzz-evidence.ts`).
 *
 * `failures` is capped at {@link MAX_EVIDENCE_FAILURES} (a hostile list yields one failure per
 * line), and `failures_omitted`, present only then, counts the rest.
 *
 * @module
 */
import { createPublicKey, type KeyObject } from 'node:crypto'
import { isKeylimeError } from '../../errors.ts'
import { parseJsonObject } from '../../http/read-json.ts'
import { loadRuntimePolicy } from '../../ima/index.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'
import { readPemBlock } from '../../protocol/read-pem-block.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'
import { type HashAlg, isHashAlg } from '../../tpm/constants.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import {
  type Evidence,
  type EvidenceOptions,
  type EvidenceOutcome,
  evaluateEvidence,
  type Unreadable,
} from './evaluate-evidence.ts'
import { Failure, type SeverityRules } from './failure.ts'

/** Most failures an answer lists; the rest are counted in `failures_omitted`. */
export const MAX_EVIDENCE_FAILURES = 100

/** The `results` of the answer. */
export interface EvidenceResults {
  valid: boolean
  claims: Record<string, unknown>
  failures: { type: string; context: Record<string, unknown> }[]
  /** Failures not listed (only when some were left out). */
  failures_omitted?: number
}

/** The answer: HTTP status and `results`. */
export interface EvidenceAnswer {
  status: 200 | 400
  results: EvidenceResults
}

/** What {@link verifyEvidenceBody} gives: an answer, or a typed refusal of the body itself. */
export type EvidenceVerdict =
  | { kind: 'answer'; answer: EvidenceAnswer }
  | { kind: 'rejected'; status: number; code: string; message: string }

/** The `data` of a `tpm` body, read field by field. */
type Data = Record<string, unknown>

function answer(status: 200 | 400, f: Failure, claims: Record<string, unknown>): EvidenceAnswer {
  const results: EvidenceResults = {
    valid: !f.failed,
    claims,
    failures: f.events
      .slice(0, MAX_EVIDENCE_FAILURES)
      .map((e) => ({ type: e.event_id, context: e.context })),
  }
  const omitted = f.events.length - results.failures.length
  if (omitted > 0) results.failures_omitted = omitted
  return { status, results }
}

/** The answer for an evaluation that threw (a bug or a resource limit, never a crash). */
export function evidenceException(message: string, rules: SeverityRules): EvidenceAnswer {
  const f = new Failure(rules)
  const context = { context: 'Evidence caused the verifier to throw an exception', data: message }
  f.add('internal.verifier.exception', context, false)
  return answer(200, f, {})
}

/**
 * Parses and answers a request body (raw bytes). Never throws: a body that is not a JSON object
 * is `rejected` (400, as `readJsonObject` answers), and an evaluation that throws becomes an
 * `internal.verifier.exception` failure.
 */
export function verifyEvidenceBody(bytes: Uint8Array, opts: EvidenceOptions): EvidenceVerdict {
  let body: Record<string, unknown>
  try {
    body = parseJsonObject(new TextDecoder().decode(bytes))
  } catch (err) {
    if (isKeylimeError(err)) {
      return { kind: 'rejected', status: err.status, code: err.code, message: err.message }
    }
    return { kind: 'answer', answer: evidenceException(errorText(err), opts.rules) }
  }
  try {
    return { kind: 'answer', answer: answerEvidenceRequest(body, opts) }
  } catch (err) {
    return { kind: 'answer', answer: evidenceException(errorText(err), opts.rules) }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : 'non-error exception'
}

const str = (d: Data, k: string): string | undefined =>
  Object.hasOwn(d, k) && typeof d[k] === 'string' ? d[k] : undefined

const has = (d: Data, k: string): boolean =>
  Object.hasOwn(d, k) && d[k] !== undefined && d[k] !== null && d[k] !== ''

/** Answers a parsed `/verify/evidence` body. */
export function answerEvidenceRequest(
  body: Record<string, unknown>,
  opts: EvidenceOptions,
): EvidenceAnswer {
  const f = new Failure(opts.rules)
  const d = requestData(f, body)
  if (d === undefined) return answer(400, f, {})
  const hashAlg = str(d, 'hash_alg') as string
  if (!isHashAlg(hashAlg)) {
    const message = `unsupported hash algorithm ${hashAlg.slice(0, 20)}`
    f.add('qoute_validation.invalid_hash_alg', { message }, false)
    return answer(200, f, {})
  }
  let ak: KeyObject
  try {
    ak = readAk(str(d, 'tpm_ak') as string)
  } catch (err) {
    const error = err instanceof Error ? err.message : 'invalid'
    f.add('qoute_validation.quote_validation', { message: 'Quote data validation', error }, false)
    return answer(200, f, {})
  }
  const evidence: Evidence = {
    quote: str(d, 'quote') as string,
    nonce: str(d, 'nonce') as string,
    hashAlg,
    ak,
    tpmPolicy: has(d, 'tpm_policy') ? readTpmPolicy(d.tpm_policy) : null,
  }
  if (has(d, 'mb_policy')) evidence.mb = readMb(d)
  if (has(d, 'runtime_policy')) evidence.ima = readIma(d)
  const out = evaluateEvidence(evidence, opts)
  return out.kind === 'checked'
    ? answer(200, out.failure, claimsOf(out, hashAlg))
    : refusedAnswer(out)
}

/** The checked `data` object, or undefined with the body's problems added (answered 400). */
function requestData(f: Failure, body: Record<string, unknown>): Data | undefined {
  const { type, data } = body
  if (type !== 'tpm') {
    if (type === 'tee')
      f.add('tee_attestation.unsupported', 'TEE evidence is not supported by keylime-ts', false)
    else f.add('default.missing_param', 'type must be "tpm" or "tee"', false)
    return undefined
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    f.add('qoute_validation.missing_param', 'data must be an object', false)
    return undefined
  }
  const d = data as Data
  for (const k of ['quote', 'nonce', 'hash_alg', 'tpm_ek', 'tpm_ak']) {
    if (!str(d, k)) {
      f.add('qoute_validation.missing_param', { message: `missing parameter ${k}` }, false)
    }
  }
  if (!has(d, 'tpm_policy') && !has(d, 'runtime_policy') && !has(d, 'mb_policy')) {
    const why = 'at least one of tpm_policy, runtime_policy, mb_policy is required'
    f.add('qoute_validation.missing_policy', why, false)
  }
  return f.failed ? undefined : d
}

/** The AK: a TPM2B_PUBLIC in base64, or one strict SPKI PEM block (OpenSSL would skip text around it). */
function readAk(text: string): KeyObject {
  try {
    return toKeyObject(parseTpm2bPublic(Buffer.from(text, 'base64')))
  } catch {
    const { der } = readPemBlock(text, ['PUBLIC KEY'], 16 * 1024)
    return createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' })
  }
}

function unreadable(event_id: string, message: string, recoverable: boolean): Unreadable {
  return { unreadable: { event_id, context: { message }, recoverable } }
}

function messageOf(err: unknown): string {
  return isKeylimeError(err) ? err.message : errorText(err)
}

function readTpmPolicy(v: unknown): Evidence['tpmPolicy'] {
  try {
    return parseTpmPolicy(v)
  } catch (err) {
    return unreadable('pcr_validation.invalid_tpm_policy', messageOf(err), false)
  }
}

/** `mb_policy` (JSON text or object) and `mb_log` (base64); evaluated on every call. */
function readMb(d: Data): Evidence['mb'] {
  let log: Buffer
  try {
    log = decodeBase64Field(str(d, 'mb_log') ?? '', 'mb_log')
  } catch {
    const why = 'Measured boot log could not be decoded'
    return unreadable('measured_boot.parser.log.base64decode', why, true)
  }
  return {
    log: log.length === 0 ? null : log,
    refstate: str(d, 'mb_policy') ?? JSON.stringify(d.mb_policy),
    evaluate: 'always', // no attestation history: `once` would mean never
    attestationCount: 0,
  }
}

/** `runtime_policy` (base64 of the policy JSON) and the whole `ima_measurement_list`. */
function readIma(d: Data): Evidence['ima'] {
  try {
    const text = decodeBase64Field(d.runtime_policy, 'runtime_policy').toString('utf8')
    return { list: str(d, 'ima_measurement_list'), policy: loadRuntimePolicy(text, {}) }
  } catch (err) {
    return unreadable('ima.policy.invalid', messageOf(err), false)
  }
}

/** Upstream's claims: the quoted PCRs, the clock, and what MB and IMA verified. */
function claimsOf(
  out: Extract<EvidenceOutcome, { kind: 'checked' }>,
  hashAlg: HashAlg,
): Record<string, unknown> {
  const { quote } = out
  const pcrs = quote.pcrs.get(hashAlg) ?? new Map<number, Uint8Array>()
  const claims: Record<string, unknown> = {
    pcrs: Object.fromEntries(
      [...pcrs].map(([n, v]) => [String(n), Buffer.from(v).toString('hex')]),
    ),
    clock_info: {
      clock: Number(quote.clockInfo.clock),
      reset_count: quote.clockInfo.resetCount,
      restart_count: quote.clockInfo.restartCount,
      safe: quote.clockInfo.safe,
    },
  }
  if (out.mb !== undefined) claims.measured_boot = out.mb
  if (out.ima?.ok === true) claims.ima = { entries_verified: out.ima.entriesVerified }
  return claims
}

/** The quote failed (nothing else was checked); a reboot cannot happen without IMA state. */
function refusedAnswer(out: Exclude<EvidenceOutcome, { kind: 'checked' }>): EvidenceAnswer {
  if (out.kind === 'reboot') throw new Error('IMA reboot without an incremental state')
  return answer(200, out.failure, {})
}
