/**
 * A CI-sized slice of the agent-answer fuzzing (issue 17): 3,000 whole `quotes/integrity` answers
 * through `checkQuoteAnswer` and 3,000 `/verify/evidence` bodies through the evidence evaluation
 * (`test/support/fuzz-check-quote.ts`, `fuzz-evidence.ts`), each with its own run seed; no case may
 * throw, be slow or give an incoherent result. `bench/fuzz-check-quote.ts` runs 1,000,000 of each.
 *
 * @module
 */
import { describe, expect, test } from 'bun:test'
import { freshSoftTpm } from '../../../test/support/fleet/soft-tpm.ts'
import { buildFuzzKit } from '../../../test/support/answer-fuzz-kit.ts'
import { fuzzCheckQuote } from '../../../test/support/fuzz-check-quote.ts'
import { fuzzEvidence } from '../../../test/support/fuzz-evidence.ts'

const kit = buildFuzzKit(freshSoftTpm())

describe('agent answer fuzzing', () => {
  test('checkQuoteAnswer: 3,000 hostile answers, no throw, every verdict reached', () => {
    const r = fuzzCheckQuote(kit, { cases: 3000, seed: 17 })
    expect(r.failures).toEqual([])
    // the harness reaches the deep checks, not only the shape check
    for (const o of [
      'pass',
      'reboot',
      'fail:qoute_validation.invalid_data',
      'fail:qoute_validation.quote_validation',
    ]) {
      expect(r.outcomes[o] ?? 0).toBeGreaterThan(0)
    }
    const deep = Object.keys(r.outcomes).filter((o) =>
      /^fail:(ima|measured_boot|pcr_validation)\./.test(o),
    )
    expect(deep.length).toBeGreaterThan(5)
  }, 60_000)

  test('evaluateEvidence: 3,000 hostile bodies, no throw, answers capped and cloneable', () => {
    const r = fuzzEvidence(kit, { cases: 3000, seed: 17 })
    expect(r.failures).toEqual([])
    expect(r.outcomes['200:valid:none'] ?? 0).toBeGreaterThan(0)
    const deep = Object.keys(r.outcomes).filter((o) =>
      /:(ima|measured_boot|pcr_validation)\./.test(o),
    )
    expect(deep.length).toBeGreaterThan(5)
  }, 60_000)
})
