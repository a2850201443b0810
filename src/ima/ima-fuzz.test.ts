/**
 * Fuzz tests: ≥ 5,000 mutated inputs each for the ASCII parser, the binary parser and the policy
 * JSON loader. Each case must return a value or throw a typed KeylimeError; `bench/fuzz-ima.ts`
 * runs 1,000,000.
 */

import { describe, expect, test } from 'bun:test'
import { fuzzParser } from '../../test/support/fuzz/fuzz-parser.ts'
import { IMA_FUZZ_TARGETS, imaFuzzSeeds } from '../../test/support/fuzz/ima-targets.ts'

describe('IMA parsers under fuzzing (value or typed error only)', () => {
  const seeds = imaFuzzSeeds()
  for (const name of ['ascii', 'binary', 'policy'] as const) {
    test(`${name}: 5,000 cases`, () => {
      const r = fuzzParser(name, seeds[name], IMA_FUZZ_TARGETS[name], { cases: 5000, seed: 7 })
      expect(r.failures).toEqual([])
      expect(r.accepted + r.rejected).toBe(5000)
      expect(r.rejected).toBeGreaterThan(0)
    })
  }
})
