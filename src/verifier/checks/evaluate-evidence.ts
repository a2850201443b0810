/**
 * `POST /verify/evidence` (API 2.4/2.5, upstream `cloud_verifier_tornado.py:
 * VerifyEvidenceHandler` with the TPM evidence verifier): one-shot verification of a quote, with
 * optional runtime policy + IMA list, measured-boot policy + UEFI log, and `tpm_policy`.
 *
 * It is a pure function of the request body and the verifier options, so it runs in a check
 * worker (`check-worker.ts`, job `evidence`): a 95 MB IMA list costs seconds of CPU, which must
 * not hold the event loop. {@link verifyEvidenceBody} is the worker's entry (raw bytes in, a
 * verdict out, never a throw); {@link evaluateEvidence} the evaluation, total on any JSON object
 * (fuzzed by `test/support/fuzz-evidence.ts`).
 *
 * The answer keeps upstream's `{valid, claims, failures}`; `failures` is capped at
 * {@link MAX_EVIDENCE_FAILURES} (a hostile list yields one failure per line, 595,487 for 95 MB),
 * and `failures_omitted` (present only then) counts the rest.
 *
 * @module
 */
import { createPublicKey } from 'node:crypto'
import { isKeylimeError } from '../../errors.ts'
import { parseJsonObject } from '../../http/read-json.ts'
import {
  type CompiledRuntimePolicy,
  evaluateImaEvidence,
  loadRuntimePolicy,
} from '../../ima/index.ts'
import { evaluateMeasuredBootEvidence } from '../../mb/index.ts'
import { readPemBlock } from '../../protocol/read-pem-block.ts'
import { isHashAlg } from '../../tpm/constants.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { verifyQuote } from '../../tpm/verify-quote.ts'
import { decodeBase64Field } from '../../protocol/decode-base64-field.ts'
import { Failure, type SeverityRules } from './failure.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'

/** Most failures an answer lists; the rest are counted in `failures_omitted`. */
export const MAX_EVIDENCE_FAILURES = 100

/** Verifier options the evaluation needs. */
export interface EvidenceOptions {
  rules: SeverityRules
  /** `[verifier] measured_boot_policy_name`. */
  mbPolicyName: string
  /** `[verifier] ignore_tomtou_errors` as configured (upstream meaning). */
  ignoreTomtouErrors: boolean
}

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
  f.add(
    'internal.verifier.exception',
    { context: 'Evidence caused the verifier to throw an exception', data: message },
    false,
  )
  return answer(200, f, {})
}

/**
 * Parses and evaluates a request body (raw bytes). Never throws: a body that is not a JSON
 * object is `rejected` (400, as `readJsonObject` answers), and an evaluation that throws becomes
 * an `internal.verifier.exception` failure.
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
    return { kind: 'answer', answer: evaluateEvidence(body, opts) }
  } catch (err) {
    return { kind: 'answer', answer: evidenceException(errorText(err), opts.rules) }
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : 'non-error exception'
}

/** Evaluates a parsed `/verify/evidence` body. */
export function evaluateEvidence(
  body: Record<string, unknown>,
  opts: EvidenceOptions,
): EvidenceAnswer {
  const f = new Failure(opts.rules)
  const claims: Record<string, unknown> = {}
  const type = body.type
  const data = body.data
  if (type !== 'tpm') {
    if (type === 'tee')
      f.add('tee_attestation.unsupported', 'TEE evidence is not supported by keylime-ts', false)
    else f.add('default.missing_param', 'type must be "tpm" or "tee"', false)
    return answer(400, f, claims)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    f.add('qoute_validation.missing_param', 'data must be an object', false)
    return answer(400, f, claims)
  }
  const d = data as Record<string, unknown>
  const str = (k: string): string | undefined =>
    Object.hasOwn(d, k) && typeof d[k] === 'string' ? d[k] : undefined
  for (const k of ['quote', 'nonce', 'hash_alg', 'tpm_ek', 'tpm_ak']) {
    if (!str(k)) {
      f.add('qoute_validation.missing_param', { message: `missing parameter ${k}` }, false)
    }
  }
  const has = (k: string) =>
    Object.hasOwn(d, k) && d[k] !== undefined && d[k] !== null && d[k] !== ''
  if (!has('tpm_policy') && !has('runtime_policy') && !has('mb_policy')) {
    f.add(
      'qoute_validation.missing_policy',
      'at least one of tpm_policy, runtime_policy, mb_policy is required',
      false,
    )
  }
  if (f.failed) return answer(400, f, claims)
  const hashAlg = str('hash_alg') as string
  if (!isHashAlg(hashAlg)) {
    f.add(
      'qoute_validation.invalid_hash_alg',
      { message: `unsupported hash algorithm ${hashAlg.slice(0, 20)}` },
      false,
    )
    return answer(200, f, claims)
  }
  let verified: ReturnType<typeof verifyQuote>
  try {
    const akText = str('tpm_ak') as string
    let ak: ReturnType<typeof toKeyObject>
    try {
      ak = toKeyObject(parseTpm2bPublic(Buffer.from(akText, 'base64')))
    } catch {
      // a PEM AK: one strict SPKI block (OpenSSL alone would skip any text around it)
      const { der } = readPemBlock(akText, ['PUBLIC KEY'], 16 * 1024)
      ak = createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' })
    }
    verified = verifyQuote({
      quote: str('quote') as string,
      akPublic: ak,
      nonce: str('nonce') as string,
      hashAlg,
    })
  } catch (err) {
    f.add(
      'qoute_validation.quote_validation',
      { message: 'Quote data validation', error: err instanceof Error ? err.message : 'invalid' },
      false,
    )
    return answer(200, f, claims)
  }
  const pcrs = verified.pcrs.get(hashAlg) ?? new Map<number, Uint8Array>()
  claims.pcrs = Object.fromEntries(
    [...pcrs].map(([n, v]) => [String(n), Buffer.from(v).toString('hex')]),
  )
  claims.clock_info = {
    clock: Number(verified.clockInfo.clock),
    reset_count: verified.clockInfo.resetCount,
    restart_count: verified.clockInfo.restartCount,
    safe: verified.clockInfo.safe,
  }
  const used = new Set<number>()
  let bootAggregates: string[] | undefined
  if (has('mb_policy')) {
    const mb = evaluateMeasuredBootEvidence({
      mb_log: str('mb_log'),
      mb_policy: str('mb_policy') ?? JSON.stringify(d.mb_policy),
      hash_alg: hashAlg,
      quotedPcrs: verified.pcrs,
      policyName: opts.mbPolicyName,
    })
    const c = mb.ok ? mb.claims : mb.claims
    if (c !== undefined) {
      claims.measured_boot = c
      for (const n of c.checkedPcrs) used.add(n)
      bootAggregates = c.bootAggregates[hashAlg]
    }
    if (!mb.ok) f.addAll(mb.failures)
  }
  if (has('runtime_policy')) {
    let policy: CompiledRuntimePolicy | null = null
    try {
      const text = decodeBase64Field(d.runtime_policy, 'runtime_policy').toString('utf8')
      policy = loadRuntimePolicy(text, {})
    } catch (err) {
      f.add(
        'ima.policy.invalid',
        { message: isKeylimeError(err) ? err.message : errorText(err) },
        false,
      )
    }
    if (policy !== null) {
      const pcr10 = pcrs.get(10)
      const list = str('ima_measurement_list')
      if (pcr10 === undefined || list === undefined) {
        f.add('pcr_validation.unused_pcr_10', 'IMA PCR or measurement list missing', true)
      } else {
        const r = evaluateImaEvidence({
          list,
          quotedPcr10: pcr10,
          bank: hashAlg,
          policy,
          bootAggregates,
          config: { ignoreTomtouErrors: !opts.ignoreTomtouErrors },
        })
        if (r.ok === false) f.addAll(r.failures)
        else if (r.ok === true) claims.ima = { entries_verified: r.entriesVerified }
      }
      used.add(10)
    }
  }
  if (has('tpm_policy')) {
    try {
      const tp = parseTpmPolicy(d.tpm_policy)
      for (const [n, allowed] of tp.pcrs) {
        const got = pcrs.get(n)
        if (got === undefined)
          f.add(
            'pcr_validation.missing_pcrs',
            { context: 'PCRs are missing in quote', data: [n] },
            true,
          )
        else if (!used.has(n) && !allowed.includes(Buffer.from(got).toString('hex'))) {
          f.add(
            `pcr_validation.invalid_pcr_${n}`,
            {
              context: 'PCR value is not in allowlist',
              got: Buffer.from(got).toString('hex'),
              expected: [...allowed],
            },
            true,
          )
        }
      }
    } catch (err) {
      f.add(
        'pcr_validation.invalid_tpm_policy',
        { message: isKeylimeError(err) ? err.message : errorText(err) },
        false,
      )
    }
  }
  return answer(200, f, claims)
}
