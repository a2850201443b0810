/**
 * Fuzz harness of the `/verify/evidence` evaluation (`evaluateEvidence`, issue 17): request bodies
 * built from the same real seeds as the quote harness (`answer-fuzz-kit.ts`) — a fresh quote, the
 * AK as TPM2B or PEM, a guest's IMA list with the runtime policy made from it, a UEFI log with its
 * refstate, a `tpm_policy` — then 0–3 stacked mutations: hostile values of any type in any field of
 * `data` or of the body, deleted fields, re-signed mutated quotes, mutated IMA text, log bytes,
 * policy texts (runtime, measured boot, `tpm_policy`), odd AKs and algorithm names. One case in ten
 * goes through {@link verifyEvidenceBody} as mutated JSON bytes instead (the worker's entry).
 *
 * Each case must return within `slowMs` a `200`/`400` answer whose `results` has a boolean `valid`,
 * at most 100 failures, and survives `JSON.stringify` and a structured clone (the trip back from
 * the worker). Outcomes are counted by status, validity and first failure type.
 *
 * @module
 */
import { mutate, type Prng } from './fuzz/fuzz-parser.ts'
import {
  answerEvidenceRequest,
  type EvidenceAnswer,
  MAX_EVIDENCE_FAILURES,
  verifyEvidenceBody,
} from '../../src/verifier/checks/evidence-request.ts'
import { SeverityRules } from '../../src/verifier/checks/failure.ts'
import {
  algVariant,
  type FuzzKit,
  type FuzzQuote,
  fuzzNonce,
  hostileValue,
  MB_PCRS,
  mutateQuote,
  mutateText,
  pemVariant,
  quotePcrs,
  setPcrs,
  withProtoKeys,
} from './answer-fuzz-kit.ts'
import { type AnswerFuzzOptions, type AnswerFuzzReport, runAnswerFuzz } from './fuzz-check-quote.ts'

const OPTS = {
  rules: new SeverityRules(),
  mbPolicyName: 'example',
  mbEvaluate: 'always',
  ignoreTomtouErrors: false,
}
const DATA_FIELDS = [
  'quote',
  'nonce',
  'hash_alg',
  'tpm_ek',
  'tpm_ak',
  'tpm_policy',
  'runtime_policy',
  'mb_policy',
  'mb_log',
  'ima_measurement_list',
]
const MUTATIONS = [
  'hostile-value',
  'delete-field',
  'quote',
  'ima-text',
  'mb-bytes',
  'runtime-policy',
  'mb-policy',
  'tpm-policy',
  'tpm-ak',
  'alg',
  'proto-keys',
]
const TPM_POLICIES: readonly unknown[] = [
  `{"15": ["${'00'.repeat(32)}"]}`,
  { 15: ['00'.repeat(32)], mask: '0x8000' },
  { 23: 'ff'.repeat(32) },
  { mask: 1 },
  { 99: [] },
  '{"mask": "0xffffffffff"}',
  '[1, 2]',
  '{',
]

const b64 = (s: string | Uint8Array) => Buffer.from(s).toString('base64')

function outcomeOf(a: EvidenceAnswer): string {
  const r = a.results
  if (typeof r.valid !== 'boolean') throw new Error('results.valid is not a boolean')
  if (r.failures.length > MAX_EVIDENCE_FAILURES)
    throw new Error(`${r.failures.length} failures listed`)
  if (a.status !== 200 && a.status !== 400) throw new Error(`status ${a.status}`)
  JSON.stringify(r)
  structuredClone(r)
  return `${a.status}:${r.valid ? 'valid' : 'invalid'}:${r.failures[0]?.type ?? 'none'}`
}

function mutateBody(
  kit: FuzzKit,
  p: Prng,
  body: Record<string, unknown>,
  q: FuzzQuote,
  mutations: string[],
): unknown {
  let out: unknown = body
  const rounds = p.int(10) === 0 ? 0 : 1 + p.int(3)
  for (let k = 0; k < rounds; k++) {
    if (typeof out !== 'object' || out === null) break
    const top = out as Record<string, unknown>
    const d = (
      typeof top.data === 'object' && top.data !== null && !Array.isArray(top.data) ? top.data : {}
    ) as Record<string, unknown>
    const m = p.int(24) === 0 ? 'body-shape' : p.pick(MUTATIONS)
    mutations.push(m)
    switch (m) {
      case 'hostile-value':
        if (p.int(6) === 0) top[p.pick(['type', 'data'])] = hostileValue(p)
        else d[p.pick(DATA_FIELDS)] = hostileValue(p)
        break
      case 'delete-field':
        delete d[p.pick(DATA_FIELDS)]
        break
      case 'quote':
        d.quote = mutateQuote(kit, p, q).quote
        break
      case 'ima-text':
        d.ima_measurement_list = mutateText(
          p,
          typeof d.ima_measurement_list === 'string' ? d.ima_measurement_list : '',
        )
        break
      case 'mb-bytes':
        d.mb_log =
          p.int(4) === 0
            ? mutateText(p, typeof d.mb_log === 'string' ? d.mb_log : '', 'latin1')
            : b64(mutate([p.pick(kit.mb).log], p.next()))
        break
      case 'runtime-policy':
        d.runtime_policy =
          p.int(4) === 0
            ? mutateText(p, b64(kit.policyText), 'latin1')
            : b64(mutateText(p, kit.policyText))
        break
      case 'mb-policy':
        d.mb_policy = p.int(3) === 0 ? hostileValue(p) : mutateText(p, kit.refstate)
        break
      case 'tpm-policy':
        d.tpm_policy = p.pick(TPM_POLICIES)
        break
      case 'tpm-ak':
        d.tpm_ak =
          p.int(2) === 0 ? pemVariant(kit, p, kit.akPem) : b64(mutate([kit.tpm.akTpm2b], p.next()))
        break
      case 'alg':
        d.hash_alg = algVariant(p)
        break
      case 'proto-keys':
        top.data = withProtoKeys(p, d)
        break
      default:
        out = p.pick([null, [], 'tpm', 1, { type: 'tee', data: d }, { type: 'tpm' }])
    }
  }
  return out
}

/** Fuzzes `evaluateEvidence` (and, one case in ten, `verifyEvidenceBody` on mutated bytes). */
export function fuzzEvidence(kit: FuzzKit, opts: AnswerFuzzOptions = {}): AnswerFuzzReport {
  return runAnswerFuzz('evaluateEvidence', opts, (p, mutations) => {
    const imaSeed = p.int(4) === 0 ? undefined : p.pick(kit.ima)
    const mbSeed = p.int(3) === 0 ? p.pick(kit.mb) : undefined
    const scramble = p.int(6) === 0
    if (scramble) mutations.push('pcr-values')
    setPcrs(kit, p, imaSeed, mbSeed, scramble)
    const nonce = fuzzNonce(p)
    const q = kit.tpm.quote(nonce, mbSeed === undefined ? quotePcrs(p, false) : [...MB_PCRS, 10])
    const data: Record<string, unknown> = {
      quote: q.quote,
      nonce,
      hash_alg: 'sha256',
      tpm_ek: b64(kit.tpm.ekTpm2b),
      tpm_ak: p.int(4) === 0 ? kit.akPem : b64(kit.tpm.akTpm2b),
    }
    if (imaSeed !== undefined) {
      data.runtime_policy = b64(kit.policyText)
      data.ima_measurement_list = imaSeed.list
    }
    if (mbSeed !== undefined) {
      data.mb_policy = p.int(4) === 0 ? JSON.parse(kit.refstate) : kit.refstate
      data.mb_log = b64(mbSeed.log)
    }
    if (p.int(3) === 0 || (imaSeed === undefined && mbSeed === undefined)) {
      data.tpm_policy = p.pick(TPM_POLICIES.slice(0, 3))
    }
    const body = mutateBody(kit, p, { type: 'tpm', data }, q, mutations)
    if (p.int(10) === 0) {
      mutations.push('json-bytes')
      const text = JSON.stringify(body) ?? ''
      const bytes = p.int(2) === 0 ? Buffer.from(text) : mutate([Buffer.from(text)], p.next())
      const v = verifyEvidenceBody(bytes, OPTS)
      return v.kind === 'answer' ? outcomeOf(v.answer) : `rejected:${v.status}:${v.code}`
    }
    const v = answerEvidenceRequest(body, OPTS)
    return v.kind === 'answer' ? outcomeOf(v.answer) : `rejected:${v.status}:${v.code}`
  })
}
