/**
 * Hostile `quotes/integrity` answers (issue 17, finding 1): each answer of the catalogue
 * (`test/support/hostile-answers.ts`) fails the round with `qoute_validation.invalid_data` and never
 * throws — in `checkQuoteAnswer` itself, and through the check pool with a real worker (the path
 * that ended the process: worker error → inline re-run inside `onmessage` → uncaught TypeError).
 * Also the pool's own failure paths: a worker's `error` answer rejects with a typed error and is
 * not re-run inline, a job orphaned by a dying worker finishes inline, more runtime or measured-boot
 * policies than a worker keeps are re-sent, and a failure's events are capped on the way back with the same verdict.
 *
 * @module
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { ImaLog } from '../../../test/support/fleet/ima-log.ts'
import { freshSoftTpm, type SoftTpm } from '../../../test/support/fleet/soft-tpm.ts'
import { type BaseAnswer, baseAnswer, hostileCases } from '../../../test/support/hostile-answers.ts'
import {
  emptyRuntimePolicy,
  initialImaState,
  imaStateToJSON,
  loadRuntimePolicy,
} from '../../ima/index.ts'
import { getLogger } from '../../log/logger.ts'
import { cachedTpmPolicy, recordFromData, tpmPolicyCache } from './check-job.ts'
import { CheckPool } from './check-pool.ts'
import { type CheckOptions, type CheckResult, checkQuoteAnswer } from './check-quote.ts'
import { isKeylimeError } from '../../errors.ts'
import { SeverityRules } from './failure.ts'

const opts: CheckOptions = {
  rules: new SeverityRules(),
  mbPolicyName: 'example',
  mbEvaluate: 'once',
  ignoreTomtouErrors: false,
}
// Replay only: every path excluded (a null runtime policy is upstream's empty policy, under
// which the unsigned entries of the synthetic log are not_in_allowlist).
const replayText = JSON.stringify({ ...emptyRuntimePolicy(), excludes: ['.*'] })
const replay = loadRuntimePolicy(replayText)
const replayKey = 'replay:1'
const replayOf = () => replayText
const noPolicies = { ima: replay, mb: null }
const ima = new ImaLog(40, ['sha256'])
let tpm: SoftTpm

beforeAll(() => {
  tpm = freshSoftTpm()
  tpm.restorePcr('sha256', 10, ima.pcr10('sha256') as Uint8Array)
})

/** A record of the soft TPM's agent, as the verifier holds it before its first quote. */
function record() {
  return recordFromData(
    {
      id: 'hostile',
      publicKey: '',
      akTpm: Buffer.from(tpm.akTpm2b).toString('base64'),
      acceptHash: ['sha256'],
      acceptEnc: ['ecc'],
      acceptSign: ['ecdsa'],
      clock: { clock: 0, resetcount: 0, restartcount: 0, safe: 1 },
      tpmPolicyText: '{"mask": "0x400"}',
      imaSignVerificationKeys: '',
      attestationCount: 0,
      ima: imaStateToJSON(initialImaState()),
    },
    cachedTpmPolicy(tpmPolicyCache(), '{"mask": "0x400"}'),
  )
}

/** A valid answer to `nonce` (PCRs 10 and 16, the whole IMA list). */
function base(nonce: string): BaseAnswer {
  return baseAnswer(tpm, nonce, [10], ima.text)
}

function eventOf(r: CheckResult): string {
  return r.kind === 'fail' ? (r.failure.highest?.event_id ?? 'none') : r.kind
}

describe('checkQuoteAnswer on hostile answers', () => {
  test('the valid answer the cases start from passes', () => {
    const r = checkQuoteAnswer(record(), base('n1'), 'n1', noPolicies, opts)
    expect(eventOf(r)).toBe('pass')
  })

  for (const c of hostileCases()) {
    test(`${c.name} → ${c.event}, no throw`, () => {
      const results = JSON.parse(c.build(base('n2')))
      const r = checkQuoteAnswer(record(), results, 'n2', noPolicies, opts)
      expect(eventOf(r)).toBe(c.event)
      if (r.kind === 'fail') expect(r.failure.recoverable).toBe(false)
    })
  }
})

describe('check pool with a real worker on hostile answers', () => {
  let pool: CheckPool
  beforeAll(async () => {
    pool = await CheckPool.start({
      size: 1,
      check: opts,
      labels: [],
      severityPolicy: [],
      log: getLogger('verifier'),
    })
  })
  afterAll(() => pool.close())

  test('every hostile answer fails its round in the worker; the process goes on', async () => {
    expect(pool.size).toBe(1)
    const seen: string[] = []
    for (const c of hostileCases()) {
      const results = JSON.parse(c.build(base('n3')))
      seen.push(
        `${c.name}: ${eventOf(await pool.check(record(), results, 'n3', noPolicies, replayKey, replayOf))}`,
      )
    }
    expect(seen).toEqual(hostileCases().map((c) => `${c.name}: ${c.event}`))
    expect(pool.inline).toBe(0)
    // and a valid heavy answer still passes there afterwards
    const ok = await pool.check(record(), base('n4'), 'n4', noPolicies, replayKey, replayOf)
    expect(eventOf(ok)).toBe('pass')
  }, 30_000)

  test('a failure with many events comes back capped, with the same verdict', async () => {
    // an enforced policy that allows none of the 40 entries: one event per entry
    const policy = JSON.parse(ima.runtimePolicy()) as {
      meta: { generator: number }
      digests: object
    }
    policy.meta.generator = 3
    policy.digests = { '/nothing': ['00'.repeat(32)] }
    const text = JSON.stringify(policy)
    const lease = loadRuntimePolicy(text, {})
    const big = new ImaLog(300, ['sha256'])
    tpm.restorePcr('sha256', 10, big.pcr10('sha256') as Uint8Array)
    try {
      const answer = { ...base('n5'), ima_measurement_list: big.text }
      const policies = { ima: lease, mb: null }
      const inline = checkQuoteAnswer(record(), answer, 'n5', policies, opts)
      const viaWorker = await pool.check(record(), answer, 'n5', policies, 'p:1', () => text)
      expect(inline.kind).toBe('fail')
      expect(viaWorker.kind).toBe('fail')
      if (inline.kind !== 'fail' || viaWorker.kind !== 'fail') return
      expect(inline.failure.events.length).toBeGreaterThan(200)
      expect(viaWorker.failure.events.length).toBeLessThanOrEqual(101)
      expect(viaWorker.failure.events.length + viaWorker.failure.omitted).toBe(
        inline.failure.events.length,
      )
      expect(viaWorker.failure.highest?.event_id).toBe(inline.failure.highest?.event_id as string)
      expect(viaWorker.failure.recoverable).toBe(inline.failure.recoverable)
    } finally {
      tpm.restorePcr('sha256', 10, ima.pcr10('sha256') as Uint8Array)
    }
  })

  test('more runtime policies than a worker keeps: each is re-sent, none is missing', async () => {
    const text = ima.runtimePolicy()
    const lease = loadRuntimePolicy(text, {})
    for (let i = 0; i < 40; i++) {
      const key = `p${i % 20}:1`
      const r = await pool.check(
        record(),
        base('n6'),
        'n6',
        { ima: lease, mb: null },
        key,
        () => text,
      )
      expect(eventOf(r)).toBe('pass')
    }
  }, 30_000)

  test('more MB policies than a worker keeps, and one too large to keep: verdicts as inline', async () => {
    // odd versions do not parse (qoute_validation.invalid_mb_policy), even ones do
    const text = (n: number) =>
      n % 2 === 0 ? JSON.stringify({ scrtm_and_bios: [{ platform_manufacturer: n }] }) : `{${n}`
    const big = `${text(0)}${' '.repeat(3 * 1024 * 1024)}`
    // 20 keys twice round (the worker keeps 16); the big one twice in a row (never kept)
    const rounds = [-1, -1, ...Array.from({ length: 40 }, (_, i) => i % 20)]
    const seen = new Set<string>()
    for (const n of rounds) {
      const mb = n < 0 ? big : text(n)
      const answer = base('n8')
      const inline = checkQuoteAnswer(record(), answer, 'n8', { ima: replay, mb }, opts)
      const policies = { ima: replay, mb, mbKey: `m${n}:1` }
      const r = await pool.check(record(), answer, 'n8', policies, replayKey, replayOf)
      expect(eventOf(r)).toBe(eventOf(inline))
      seen.add(eventOf(r))
    }
    expect(seen).toEqual(new Set(['pass', 'qoute_validation.invalid_mb_policy']))
  }, 30_000)
})

describe('check pool failure paths (misbehaving worker)', () => {
  let pool: CheckPool
  beforeAll(async () => {
    pool = await CheckPool.start({
      size: 1,
      entry: new URL('../../../test/support/misbehaving-check-worker.ts', import.meta.url).href,
      check: opts,
      labels: [],
      severityPolicy: [],
      log: getLogger('verifier'),
    })
  })
  afterAll(() => pool.close())

  test("a worker's error answer rejects with a typed error and is not re-run inline", async () => {
    expect(pool.size).toBe(1)
    const hostile = JSON.parse(hostileCases()[0]?.build(base('n7')) as string)
    const err = await Promise.resolve(
      pool.check(record(), hostile, 'n7', noPolicies, replayKey, replayOf),
    ).catch((e: unknown) => e)
    expect(isKeylimeError(err) && err.code).toBe('ERR_VERIFIER_CHECK_FAILED')
    expect(pool.inline).toBe(0)
  })

  test('a job orphaned by a dying worker finishes inline with the right verdict', async () => {
    const answer = base('die')
    const r = await pool.check(record(), answer, 'die', noPolicies, replayKey, replayOf)
    expect(eventOf(r)).toBe('pass')
    expect(pool.inline).toBe(1)
  })
})
