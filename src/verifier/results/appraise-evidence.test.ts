import { describe, expect, test } from 'bun:test'
import type { EvidenceChecks, EvidenceResults } from '../checks/evidence-request.ts'
import { appraiseEvidence } from './appraise-evidence.ts'

const passed: EvidenceResults = { valid: true, claims: {}, failures: [] }

const fail = (...types: string[]): EvidenceResults => ({
  valid: false,
  claims: {},
  failures: types.map((type) => ({ type, context: {} })),
})

const ran = (over: Partial<EvidenceChecks>): EvidenceChecks => ({
  quote: true,
  tpmPolicy: false,
  ima: false,
  mb: false,
  ...over,
})

describe('appraiseEvidence', () => {
  test('valid on tpm_policy alone: affirming, hardware and configuration 2, no identity claim', () => {
    expect(appraiseEvidence(passed, ran({ tpmPolicy: true }))).toEqual({
      ear_status: 'affirming',
      ear_trustworthiness_vector: { hardware: 2, configuration: 2 },
    })
  })

  test('valid with IMA and measured boot: executables and configuration 2', () => {
    expect(appraiseEvidence(passed, ran({ ima: true, mb: true }))).toEqual({
      ear_status: 'affirming',
      ear_trustworthiness_vector: { hardware: 2, executables: 2, configuration: 2 },
    })
  })

  test('valid with IMA alone: configuration not claimed', () => {
    expect(appraiseEvidence(passed, ran({ ima: true }))).toEqual({
      ear_status: 'affirming',
      ear_trustworthiness_vector: { hardware: 2, executables: 2 },
    })
  })

  test('IMA failure: executables 96, configuration not claimed', () => {
    expect(appraiseEvidence(fail('ima.validation.ima_hash'), ran({ ima: true }))).toEqual({
      ear_status: 'contraindicated',
      ear_trustworthiness_vector: { hardware: 2, executables: 96 },
    })
  })

  test('PCR and MB failures: configuration 96', () => {
    for (const id of ['pcr_validation.invalid_pcr_7', 'measured_boot.invalid_pcr_0']) {
      expect(appraiseEvidence(fail(id), ran({ tpmPolicy: true, mb: true }))).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { hardware: 2, configuration: 96 },
      })
    }
  })

  test('quote failure: hardware 99', () => {
    const r = appraiseEvidence(fail('qoute_validation.quote_validation'), ran({ quote: false }))
    expect(r).toEqual({
      ear_status: 'contraindicated',
      ear_trustworthiness_vector: { hardware: 99 },
    })
  })

  test('a verifier exception: none (no conclusion)', () => {
    const r = appraiseEvidence(fail('internal.verifier.exception'), ran({ quote: false }))
    expect(r).toEqual({ ear_status: 'none' })
  })
})
