/**
 * Fuzz harness of `checkQuoteAnswer` (issue 17): whole agent answers built from real seeds
 * (`answer-fuzz-kit.ts`) — a fresh quote of the soft TPM, a guest's IMA list (whole, or the tail
 * after a stored incremental state), a UEFI event log — then 0–3 stacked mutations: a hostile value
 * of any JSON type in any field, a deleted field, a re-signed mutated quote (attest bytes or PCR
 * blob, so it passes the signature check), mutated IMA text, mutated log bytes, odd algorithm names,
 * odd public keys, odd numbers, prototype-looking keys, a `results` that is not an object; against
 * records and policies of several kinds.
 *
 * Each case must return (never throw) within `slowMs`, with a coherent result that survives the
 * trip to and from a check worker (`resultToData` → structured clone → `resultFromData`) with the
 * same verdict. Outcomes are counted by verdict and highest event id.
 *
 * @module
 */
import type { ImaAgentState } from '../../src/ima/index.ts'
import { initialImaState, imaStateToJSON } from '../../src/ima/index.ts'
import type { BoundedCache } from '../../src/protocol/bounded-cache.ts'
import { caseSeed, mutate, Prng } from './fuzz/fuzz-parser.ts'
import {
  cachedTpmPolicy,
  recordFromData,
  resultFromData,
  resultToData,
  tpmPolicyCache,
} from '../../src/verifier/checks/check-job.ts'
import {
  type CheckOptions,
  type CheckResult,
  checkQuoteAnswer,
  type RoundPolicies,
} from '../../src/verifier/checks/check-quote.ts'
import { SeverityRules } from '../../src/verifier/checks/failure.ts'
import { QUOTE_ANSWER_SHAPE } from '../../src/verifier/checks/parse-quote-answer.ts'
import type { TpmPolicy } from '../../src/protocol/tpm-policy.ts'
import {
  algVariant,
  type FuzzKit,
  fuzzNonce,
  hostileValue,
  mutateQuote,
  mutateText,
  numberVariant,
  pemVariant,
  quotePcrs,
  setPcrs,
  withProtoKeys,
} from './answer-fuzz-kit.ts'

/** Options of a fuzz run. */
export interface AnswerFuzzOptions {
  /** Cases (default 3000). */
  cases?: number
  /** Run seed (default 1). */
  seed?: number
  /** A case slower than this is a failure (default 2000 ms). */
  slowMs?: number
  /** Failures kept (default 20). */
  maxFailures?: number
}

/** One failing case. */
export interface AnswerFuzzFailure {
  index: number
  caseSeed: number
  mutations: string[]
  problem: string
}

/** Outcome of a fuzz run. */
export interface AnswerFuzzReport {
  name: string
  cases: number
  /** Cases by outcome (`pass`, `reboot`, `fail:<highest event id>`, …). */
  outcomes: Record<string, number>
  /** Cases by mutation applied. */
  mutations: Record<string, number>
  maxMs: number
  /** Failing cases (the first `maxFailures` are listed in `failures`). */
  failed: number
  /** The slowest case (to rebuild and time it alone). */
  slowest: { index: number; caseSeed: number; mutations: string[] } | undefined
  failures: AnswerFuzzFailure[]
}

/** Runs `one` for each case and gathers the report (shared with `fuzz-evidence.ts`). */
export function runAnswerFuzz(
  name: string,
  opts: AnswerFuzzOptions,
  one: (p: Prng, mutations: string[]) => string,
): AnswerFuzzReport {
  const cases = opts.cases ?? 3000
  const slowMs = opts.slowMs ?? 2000
  const report: AnswerFuzzReport = {
    name,
    cases,
    outcomes: {},
    mutations: {},
    maxMs: 0,
    failed: 0,
    slowest: undefined,
    failures: [],
  }
  for (let i = 0; i < cases; i++) {
    const s = caseSeed(opts.seed ?? 1, i)
    const mutations: string[] = []
    const fail = (problem: string) => {
      report.failed++
      if (report.failures.length < (opts.maxFailures ?? 20)) {
        report.failures.push({ index: i, caseSeed: s, mutations, problem })
      }
    }
    const t0 = performance.now()
    try {
      const outcome = one(new Prng(s), mutations)
      report.outcomes[outcome] = (report.outcomes[outcome] ?? 0) + 1
    } catch (e) {
      if (process.env.FUZZ_STACK) console.error(e)
      const at = e instanceof Error ? (e.stack?.split('\n')[1]?.trim() ?? '') : ''
      fail(`threw: ${e instanceof Error ? `${e.name}: ${e.message} ${at}` : typeof e}`)
    }
    const ms = performance.now() - t0
    if (ms > report.maxMs) {
      report.maxMs = ms
      report.slowest = { index: i, caseSeed: s, mutations }
    }
    if (ms > slowMs) fail(`slow case: ${ms.toFixed(1)} ms`)
    for (const m of mutations) report.mutations[m] = (report.mutations[m] ?? 0) + 1
  }
  return report
}

const RULES = new SeverityRules()
const OPTS: readonly CheckOptions[] = [
  { rules: RULES, mbPolicyName: 'example', mbEvaluate: 'always', ignoreTomtouErrors: false },
  { rules: RULES, mbPolicyName: 'example', mbEvaluate: 'once', ignoreTomtouErrors: true },
]
const TPM_POLICIES = [
  '{}',
  '{"mask": "0x400"}',
  `{"15": ["${'00'.repeat(32)}"]}`,
  `{"15": ["${'ff'.repeat(32)}"], "mask": "0x8000"}`,
  `{"23": ["${'00'.repeat(32)}"]}`,
]
const ANSWER_MUTATIONS = [
  'hostile-value',
  'delete-field',
  'quote',
  'ima-text',
  'ima-entry',
  'mb-bytes',
  'alg',
  'pubkey',
  'boottime',
  'proto-keys',
]
const FIELDS = [...Object.keys(QUOTE_ANSWER_SHAPE), 'extra']

/** What a check case needs besides the kit, built once per run. */
interface Prepared {
  tpmPolicies: BoundedCache<TpmPolicy>
  /** The state after a pass on `vm/a`, and the `vm/b` lines that follow it. */
  stateA: ImaAgentState
  tailB: string
  entryB: number
}

function prepare(kit: FuzzKit): Prepared {
  const tpmPolicies = tpmPolicyCache()
  const a = kit.ima.find((s) => s.name === 'a')
  const b = kit.ima.find((s) => s.name === 'b')
  if (a === undefined || b === undefined)
    throw new Error('fuzz kit: vm/a and vm/b IMA seeds needed')
  setPcrs(kit, new Prng(0), a)
  kit.tpm.bindNk()
  const nonce = 'prepare0123456789abc'
  const answer = {
    quote: kit.tpm.quote(nonce, [10, 16]).quote,
    hash_alg: 'sha256',
    enc_alg: 'ecc',
    sign_alg: 'ecdsa',
    pubkey: kit.tpm.nkPem,
    ima_measurement_list: a.list,
    ima_measurement_list_entry: 0,
  }
  const rec = record(kit, tpmPolicies, '{}', '', 0, initialImaState())
  const r = checkQuoteAnswer(
    rec,
    answer,
    nonce,
    { ima: kit.policy, mb: null },
    OPTS[0] as CheckOptions,
  )
  if (r.kind !== 'pass') throw new Error(`fuzz kit: the vm/a answer does not pass (${r.kind})`)
  const lines = b.list.split('\n').filter((l) => l !== '')
  const entryB = r.updates.ima.nextEntry
  return {
    tpmPolicies,
    stateA: r.updates.ima,
    tailB: lines
      .slice(entryB)
      .map((l) => `${l}\n`)
      .join(''),
    entryB,
  }
}

function record(
  kit: FuzzKit,
  tpmPolicies: BoundedCache<TpmPolicy>,
  tpmPolicyText: string,
  publicKey: string,
  attestationCount: number,
  ima: ImaAgentState,
) {
  return recordFromData(
    {
      id: 'fuzz',
      publicKey,
      akTpm: Buffer.from(kit.tpm.akTpm2b).toString('base64'),
      acceptHash: ['sha256', 'sha1'],
      acceptEnc: ['ecc', 'rsa'],
      acceptSign: ['ecdsa', 'rsassa'],
      clock: { clock: 0, resetcount: 0, restartcount: 0, safe: 1 },
      tpmPolicyText,
      imaSignVerificationKeys: '',
      attestationCount,
      ima: imaStateToJSON(ima),
    },
    cachedTpmPolicy(tpmPolicies, tpmPolicyText),
  )
}

function outcomeOf(r: CheckResult): string {
  if (r.kind !== 'fail') return r.kind
  return `fail:${r.failure.highest?.event_id ?? '(no event)'}`
}

/** Checks the result's coherence and its round trip through a worker's plain data. */
function verified(r: CheckResult): string {
  const outcome = outcomeOf(r)
  if (r.kind === 'fail' && (!r.failure.failed || r.failure.highest === undefined)) {
    throw new Error('a fail result without a failure event')
  }
  if (r.kind === 'pass' && typeof r.updates.publicKey !== 'string')
    throw new Error('bad pass updates')
  const back = resultFromData(structuredClone(resultToData(1, r)), RULES)
  if (outcomeOf(back) !== outcome)
    throw new Error(`worker round trip: ${outcome} became ${outcomeOf(back)}`)
  return outcome
}

/** Fuzzes `checkQuoteAnswer` with whole agent answers. */
export function fuzzCheckQuote(kit: FuzzKit, opts: AnswerFuzzOptions = {}): AnswerFuzzReport {
  const prep = prepare(kit)
  return runAnswerFuzz('checkQuoteAnswer', opts, (p, mutations) => {
    const imaSeed = p.int(8) === 0 ? undefined : p.pick(kit.ima)
    const mbSeed = p.int(3) === 0 ? p.pick(kit.mb) : undefined
    const incremental = imaSeed?.name === 'b' && p.int(3) === 0
    const scramble = p.int(6) === 0
    if (scramble) mutations.push('pcr-values')
    setPcrs(kit, p, imaSeed, mbSeed, scramble)
    const nonce = fuzzNonce(p)
    kit.tpm.bindNk()
    const useMb = mbSeed !== undefined ? p.int(4) !== 0 : p.int(16) === 0
    const q = kit.tpm.quote(nonce, quotePcrs(p, mbSeed !== undefined || useMb))
    const partial = p.int(2) === 0
    let results: unknown
    const r: Record<string, unknown> = {
      quote: q.quote,
      hash_alg: 'sha256',
      enc_alg: 'ecc',
      sign_alg: 'ecdsa',
      boottime: 1_700_000_000,
    }
    if (!partial) r.pubkey = kit.tpm.nkPem
    if (imaSeed !== undefined) {
      r.ima_measurement_list = incremental ? prep.tailB : imaSeed.list
      r.ima_measurement_list_entry = incremental ? prep.entryB : 0
    }
    if (mbSeed !== undefined) r.mb_measurement_list = Buffer.from(mbSeed.log).toString('base64')
    results = r
    const rounds = p.int(10) === 0 ? 0 : 1 + p.int(3)
    for (let k = 0; k < rounds; k++) {
      if (typeof results !== 'object' || results === null || Array.isArray(results)) break
      const o = results as Record<string, unknown>
      const m = p.int(24) === 0 ? 'results-shape' : p.pick(ANSWER_MUTATIONS)
      mutations.push(m)
      switch (m) {
        case 'hostile-value':
          o[p.pick(FIELDS)] = hostileValue(p)
          break
        case 'delete-field':
          delete o[p.pick(FIELDS)]
          break
        case 'quote':
          o.quote = mutateQuote(kit, p, q).quote
          break
        case 'ima-text':
          o.ima_measurement_list = mutateText(
            p,
            typeof o.ima_measurement_list === 'string' ? o.ima_measurement_list : '',
          )
          break
        case 'ima-entry':
          o.ima_measurement_list_entry = numberVariant(p, prep.entryB)
          break
        case 'mb-bytes': {
          const seed = mbSeed ?? p.pick(kit.mb)
          o.mb_measurement_list =
            p.int(4) === 0
              ? mutateText(p, Buffer.from(seed.log).toString('base64'), 'latin1')
              : Buffer.from(mutate([seed.log], p.next())).toString('base64')
          break
        }
        case 'alg':
          o[p.pick(['hash_alg', 'enc_alg', 'sign_alg'])] = algVariant(p)
          break
        case 'pubkey':
          o.pubkey = pemVariant(kit, p, kit.tpm.nkPem)
          break
        case 'boottime':
          o.boottime = numberVariant(p, 1_700_000_000)
          break
        case 'proto-keys':
          results = withProtoKeys(p, o)
          break
        default:
          results = p.pick([null, [], 'results', 1, true, [results]])
      }
    }
    const policies: RoundPolicies = {
      ima: imaSeed !== undefined && p.int(2) === 0 ? kit.policy : null,
      mb: useMb ? kit.refstate : null,
    }
    const rec = record(
      kit,
      prep.tpmPolicies,
      p.pick(TPM_POLICIES),
      partial || p.int(4) === 0 ? kit.tpm.nkPem : '',
      p.int(3) === 0 ? 3 : 0,
      incremental ? prep.stateA : initialImaState(),
    )
    return verified(checkQuoteAnswer(rec, results, nonce, policies, p.pick(OPTS)))
  })
}
