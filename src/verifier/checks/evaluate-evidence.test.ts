/**
 * {@link evaluateEvidence} as a pure function: evidence built from a soft TPM and the fixture IMA
 * lists and UEFI logs (`test/support/answer-fuzz-kit.ts`), no database, no sockets.
 *
 * @module
 */
import { beforeEach, describe, expect, test } from 'bun:test'
import { freshSoftTpm } from '../../../test/support/fleet/soft-tpm.ts'
import { buildFuzzKit, MB_PCRS } from '../../../test/support/answer-fuzz-kit.ts'
import { initialImaState } from '../../ima/index.ts'
import { parseTpmPolicy } from '../../protocol/tpm-policy.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { type Evidence, type EvidenceOutcome, evaluateEvidence } from './evaluate-evidence.ts'
import { answerEvidenceRequest, type EvidenceVerdict } from './evidence-request.ts'
import { SeverityRules } from './failure.ts'

const kit = buildFuzzKit(freshSoftTpm())
const tpm = kit.tpm
const ak = toKeyObject(parseTpm2bPublic(tpm.akTpm2b))
const opts = {
  rules: new SeverityRules(),
  mbPolicyName: 'example',
  mbEvaluate: 'once',
  ignoreTomtouErrors: false,
}
const seed = (name: string) => kit.ima.find((s) => s.name === name) ?? kit.ima[0]!
const PCR15 = 'ab'.repeat(32)

beforeEach(() => {
  for (let i = 0; i < 24; i++) tpm.resetPcr(i)
  tpm.restorePcr('sha256', 15, Buffer.from(PCR15, 'hex'))
})

/** Evidence quoting `pcrs` for nonce `n1`, with no policies. */
function evidence(pcrs: number[], more: Partial<Evidence> = {}): Evidence {
  return {
    quote: tpm.quote('n1', pcrs).quote,
    nonce: 'n1',
    hashAlg: 'sha256',
    ak,
    tpmPolicy: null,
    ...more,
  }
}

/** The event ids of an outcome, in order. */
function events(o: EvidenceOutcome): string[] {
  return o.kind === 'reboot' ? ['reboot'] : o.failure.events.map((e) => e.event_id)
}

function contextOf(o: EvidenceOutcome, id: string): Record<string, unknown> | undefined {
  return o.kind === 'reboot' ? undefined : o.failure.events.find((e) => e.event_id === id)?.context
}

describe('evaluateEvidence: the quote', () => {
  test('a good quote passes and gives its PCRs and clock', () => {
    const tpmPolicy = parseTpmPolicy({ '15': [PCR15] })
    const o = evaluateEvidence(evidence([15], { tpmPolicy }), opts)
    expect(o.kind).toBe('checked')
    if (o.kind !== 'checked') return
    expect(o.failure.failed).toBe(false)
    expect(Buffer.from(o.quote.pcrs.get('sha256')?.get(15) ?? []).toString('hex')).toBe(PCR15)
    expect(o.quote.clockInfo.safe).toBe(true)
  })

  test('a quote signed by another AK is refused', () => {
    const other = freshSoftTpm()
    const o = evaluateEvidence(evidence([15], { quote: other.quote('n1', [15]).quote }), opts)
    expect(o.kind).toBe('refused')
    expect(events(o)).toEqual(['qoute_validation.quote_validation'])
    expect(contextOf(o, 'qoute_validation.quote_validation')?.message).toBe('Quote data validation')
  })

  test('a quote over another nonce is refused', () => {
    const o = evaluateEvidence(evidence([15], { nonce: 'n2' }), opts)
    expect(o.kind).toBe('refused')
    expect(String(contextOf(o, 'qoute_validation.quote_validation')?.error)).toContain('nonce')
  })

  test('a malformed quote string is a typed failure, not a throw', () => {
    for (const quote of ['', 'r', 'rAAAA:BBBB', 'r%%%:%%%:%%%', `r${'A'.repeat(4096)}::`]) {
      const o = evaluateEvidence(evidence([15], { quote }), opts)
      expect(events(o)).toEqual(['qoute_validation.quote_validation'])
      expect(String(contextOf(o, 'qoute_validation.quote_validation')?.error)).toMatch(/^ERR_/)
    }
  })

  test('a clock that did not advance since the previous quote is refused', () => {
    const previousClock = { clock: 2 ** 50, resetcount: 1, restartcount: 0, safe: 1 }
    const o = evaluateEvidence(evidence([15], { previousClock }), opts)
    expect(o.kind).toBe('refused')
    expect(contextOf(o, 'qoute_validation.quote_validation')?.data).toBe(
      'clock timestamp did issued by TPM did not increase between two consecutive quotes',
    )
  })
})

describe('evaluateEvidence: PCR 16 and tpm_policy', () => {
  test('PCR 16 binds the NK: bound passes, another key or no PCR 16 fails', () => {
    tpm.bindNk()
    const bound = evaluateEvidence(evidence([15, 16], { nk: tpm.nkPem }), opts)
    expect(events(bound)).toEqual([])
    const other = freshSoftTpm().nkPem
    expect(events(evaluateEvidence(evidence([15, 16], { nk: other }), opts))).toEqual([
      'pcr_validation.invalid_pcr_16',
    ])
    expect(events(evaluateEvidence(evidence([15], { nk: tpm.nkPem }), opts))).toEqual([
      'pcr_validation.missing_pcr_16',
    ])
  })

  test('a PCR outside its allowlist fails with got and expected', () => {
    const tpmPolicy = parseTpmPolicy({ '15': ['cd'.repeat(32)] })
    const o = evaluateEvidence(evidence([15], { tpmPolicy }), opts)
    expect(events(o)).toEqual(['pcr_validation.invalid_pcr_15'])
    expect(contextOf(o, 'pcr_validation.invalid_pcr_15')).toEqual({
      context: 'PCR value is not in allowlist',
      got: PCR15,
      expected: ['cd'.repeat(32)],
    })
    if (o.kind === 'checked') expect(o.failure.recoverable).toBe(true)
  })

  test('PCRs of the policy missing in the quote are one event (upstream check_pcrs)', () => {
    const tpmPolicy = parseTpmPolicy({ '15': [PCR15], '22': ['00'.repeat(32)], '23': ['00'] })
    const o = evaluateEvidence(evidence([15], { tpmPolicy }), opts)
    expect(events(o)).toEqual(['pcr_validation.missing_pcrs'])
    expect(contextOf(o, 'pcr_validation.missing_pcrs')?.data).toEqual([22, 23])
  })

  test('an unreadable tpm_policy is reported at its stage, after the quote', () => {
    const bad = {
      unreadable: {
        event_id: 'pcr_validation.invalid_tpm_policy',
        context: {},
        recoverable: false,
      },
    }
    expect(events(evaluateEvidence(evidence([15], { tpmPolicy: bad }), opts))).toEqual([
      'pcr_validation.invalid_tpm_policy',
    ])
    const refused = evaluateEvidence(evidence([15], { tpmPolicy: bad, nonce: 'n2' }), opts)
    expect(events(refused)).toEqual(['qoute_validation.quote_validation'])
  })
})

describe('evaluateEvidence: IMA', () => {
  test('a list the runtime policy allows passes; PCR 10 is left to IMA', () => {
    const s = seed('b')
    tpm.restorePcr('sha256', 10, s.pcr10)
    const tpmPolicy = parseTpmPolicy({ '10': ['00'.repeat(32)] })
    const ima = { list: s.list, policy: kit.policy }
    const o = evaluateEvidence(evidence([10], { ima, tpmPolicy }), opts)
    expect(events(o)).toEqual([])
    if (o.kind === 'checked') expect(o.ima?.entriesVerified).toBeGreaterThan(0)
  })

  test('an entry the policy does not allow fails under ima.*', () => {
    const s = seed('synthetic')
    tpm.restorePcr('sha256', 10, s.pcr10)
    const o = evaluateEvidence(evidence([10], { ima: { list: s.list, policy: kit.policy } }), opts)
    expect(o.kind).toBe('checked')
    expect(events(o).length).toBeGreaterThan(0)
    expect(events(o).every((id) => id.startsWith('ima.'))).toBe(true)
    if (o.kind === 'checked') expect(o.ima?.ok).toBe(false)
  })

  test('no list: IMA fails when PCR 10 is quoted, one-shot or round; skipped when it is not', () => {
    const noList = { list: undefined, policy: kit.policy }
    const oneShot = evaluateEvidence(evidence([10], { ima: noList }), opts)
    expect(contextOf(oneShot, 'pcr_validation.unused_pcr_10')?.message).toBe(
      'IMA PCR in policy, but no measurement list provided',
    )
    // upstream check_pcrs: no PCR 10 in the quote, no IMA check (one-shot evidence too)
    expect(events(evaluateEvidence(evidence([15], { ima: noList }), opts))).toEqual([])
    const increment = { state: initialImaState(), startEntry: 0, boottime: 0, keyring: null }
    const round = evaluateEvidence(evidence([10], { ima: { ...noList, increment } }), opts)
    expect(contextOf(round, 'pcr_validation.unused_pcr_10')?.message).toBe(
      'IMA PCR in policy, but no measurement list provided',
    )
    // without a runtime policy too: upstream evaluates its empty policy (`tpm_main.py` check_quote)
    const noPolicy = { list: undefined, policy: null, increment }
    expect(events(evaluateEvidence(evidence([10], { ima: noPolicy }), opts))).toEqual([
      'pcr_validation.unused_pcr_10',
    ])
  })

  test('a pull round continues the stored state, and restarts after a reboot', () => {
    const s = seed('b')
    tpm.restorePcr('sha256', 10, s.pcr10)
    const first = { state: initialImaState(), startEntry: 0, boottime: 100, keyring: null }
    const o = evaluateEvidence(
      evidence([10], { ima: { list: s.list, policy: kit.policy, increment: first } }),
      opts,
    )
    expect(o.kind === 'checked' && o.ima?.ok).toBe(true)
    if (o.kind !== 'checked' || o.ima === undefined) return
    const state = o.ima.state
    const later = { state, startEntry: state.nextEntry, boottime: 200, keyring: null }
    const r = evaluateEvidence(
      evidence([10], { ima: { list: '', policy: kit.policy, increment: later } }),
      opts,
    )
    expect(r.kind).toBe('reboot')
  })
})

describe('evaluateEvidence: measured boot', () => {
  const [plain, secure] = kit.mb

  function setMbPcrs(pcrs: ReadonlyMap<number, Uint8Array>): void {
    for (const [n, v] of pcrs) if (n !== 10 && n !== 16 && n < 24) tpm.restorePcr('sha256', n, v)
  }

  test('the log of the refstate passes and gives boot aggregates', () => {
    setMbPcrs(plain!.pcrs)
    const mb = { log: plain!.log, refstate: kit.refstate, evaluate: 'always', attestationCount: 0 }
    const o = evaluateEvidence(evidence(MB_PCRS, { mb }), opts)
    expect(events(o)).toEqual([])
    if (o.kind === 'checked') expect(o.mb?.checkedPcrs.length).toBeGreaterThan(0)
  })

  test('another boot fails the MB policy', () => {
    setMbPcrs(secure!.pcrs)
    const mb = { log: secure!.log, refstate: kit.refstate, evaluate: 'always', attestationCount: 0 }
    const o = evaluateEvidence(evidence(MB_PCRS, { mb }), opts)
    expect(events(o)).toContain('measured_boot.policy_example')
  })

  test('a quoted PCR the log does not explain fails as measured_boot.invalid_pcr_N', () => {
    setMbPcrs(plain!.pcrs)
    tpm.restorePcr('sha256', 4, Buffer.alloc(32, 7))
    const mb = { log: plain!.log, refstate: kit.refstate, evaluate: 'always', attestationCount: 0 }
    expect(events(evaluateEvidence(evidence(MB_PCRS, { mb }), opts))).toContain(
      'measured_boot.invalid_pcr_4',
    )
  })

  test('an undecodable log is reported at the MB stage, which is then skipped', () => {
    const event_id = 'measured_boot.parser.log.base64decode'
    const mb = { unreadable: { event_id, context: { message: 'x' }, recoverable: true } }
    const o = evaluateEvidence(evidence([15], { mb }), opts)
    expect(events(o)).toEqual([event_id])
    if (o.kind === 'checked') expect(o.mb).toBeUndefined()
  })
})

describe('answerEvidenceRequest (the /verify/evidence adapter)', () => {
  const answerOf = (v: EvidenceVerdict) => {
    if (v.kind !== 'answer') throw new Error(`rejected: ${v.message}`)
    return v.answer
  }

  test('type and data are checked first: a 400 refusal with upstream reason', () => {
    expect(answerEvidenceRequest({ data: {} }, opts)).toMatchObject({
      kind: 'rejected',
      status: 400,
      message: "missing parameter 'type'",
    })
    expect(answerEvidenceRequest({ type: 'tpm', data: '' }, opts)).toMatchObject({
      message: "missing parameter 'data'",
    })
    expect(answerEvidenceRequest({ type: 'x', data: {} }, opts)).toMatchObject({
      message: 'invalid evidence type',
    })
    // a body that is not an object has no `type` (upstream: `"type" in body`)
    expect(answerEvidenceRequest([], opts)).toMatchObject({ kind: 'rejected' })
  })

  test('the first missing TPM field is a 400 default.missing_param; TEE fields likewise', () => {
    const bad = answerOf(answerEvidenceRequest({ type: 'tpm', data: { quote: 'q' } }, opts))
    expect(bad.status).toBe(400)
    expect(bad.results.failures).toEqual([
      { type: 'default.missing_param', context: { message: 'missing parameter "nonce"' } },
    ])
    const tee = answerOf(answerEvidenceRequest({ type: 'tee', data: {} }, opts))
    expect(tee.status).toBe(400)
    expect(tee.results.failures.map((f) => f.type)).toEqual(['tee_attestation.missing_param'])
  })

  test('runtime_policy must be JSON text (base64 is refused with a 400, not guessed)', () => {
    const data = {
      quote: 'r',
      nonce: 'n',
      hash_alg: 'sha256',
      tpm_ek: 'x',
      tpm_ak: 'x',
      runtime_policy: Buffer.from('{}').toString('base64'),
    }
    const a = answerOf(answerEvidenceRequest({ type: 'tpm', data }, opts))
    expect(a.status).toBe(400)
    expect(a.results.failures.map((f) => f.type)).toEqual(['default.invalid_param'])
  })

  test('valid evidence echoes data as claims; unreadable parts are their stage events', () => {
    tpm.restorePcr('sha256', 15, Buffer.alloc(32, 7))
    const data = {
      quote: tpm.quote('n1', [15]).quote,
      nonce: 'n1',
      hash_alg: 'sha256',
      tpm_ek: 'x',
      tpm_ak: Buffer.from(tpm.akTpm2b).toString('base64'),
      tpm_policy: { '15': ['07'.repeat(32)] },
    }
    const ok = answerOf(answerEvidenceRequest({ type: 'tpm', data }, opts))
    expect(ok).toEqual({
      status: 200,
      results: { valid: true, claims: data, failures: [] },
      checks: { quote: true, tpmPolicy: true, ima: false, mb: false },
    })
    const mb = { ...data, mb_policy: kit.refstate, mb_log: '%%%' }
    const a = answerOf(answerEvidenceRequest({ type: 'tpm', data: mb }, opts))
    expect(a.status).toBe(200)
    expect(a.results.claims).toEqual({})
    expect(a.results.failures.map((f) => f.type)).toEqual(['measured_boot.parser.log.base64decode'])
    expect(a.checks).toEqual({ quote: true, tpmPolicy: true, ima: false, mb: false })
    const policy = { ...data, tpm_policy: { '15': 'not a list' } }
    const p = answerOf(answerEvidenceRequest({ type: 'tpm', data: policy }, opts))
    expect(p.results.failures.map((f) => f.type)).toEqual(['qoute_validation.invalid_quote'])
  })
})
