import { describe, expect, test } from 'bun:test'
import type { EvidenceResults } from '../checks/evidence-request.ts'
import { appraiseEvidence } from './appraise-evidence.ts'

const results = (over: Partial<EvidenceResults>): EvidenceResults => ({
  valid: true,
  claims: { pcrs: { '10': '00' }, clock_info: {} },
  failures: [],
  ...over,
})

const fail = (...types: string[]) => ({
  valid: false,
  failures: types.map((type) => ({ type, context: {} })),
})

describe('appraiseEvidence', () => {
  test('valid on tpm_policy alone: affirming, hardware and configuration 2, no identity claim', () => {
    expect(appraiseEvidence(results({}))).toEqual({
      ear_status: 'affirming',
      ear_trustworthiness_vector: { hardware: 2, configuration: 2 },
    })
  })

  test('valid with IMA and measured boot: executables and configuration 2', () => {
    const claims = { pcrs: {}, ima: { entries_verified: 3 }, measured_boot: {} }
    expect(appraiseEvidence(results({ claims }))).toEqual({
      ear_status: 'affirming',
      ear_trustworthiness_vector: { hardware: 2, executables: 2, configuration: 2 },
    })
  })

  test('IMA failure: executables 96, configuration not claimed', () => {
    expect(appraiseEvidence(results(fail('ima.validation.ima_hash')))).toEqual({
      ear_status: 'contraindicated',
      ear_trustworthiness_vector: { hardware: 2, executables: 96 },
    })
  })

  test('PCR and MB failures: configuration 96', () => {
    for (const id of ['pcr_validation.invalid_pcr_7', 'measured_boot.invalid_pcr_0']) {
      expect(appraiseEvidence(results(fail(id)))).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { hardware: 2, configuration: 96 },
      })
    }
  })

  test('quote failure: hardware 99', () => {
    const r = results({ ...fail('qoute_validation.quote_validation'), claims: {} })
    expect(appraiseEvidence(r)).toEqual({
      ear_status: 'contraindicated',
      ear_trustworthiness_vector: { hardware: 99 },
    })
  })

  test('a verifier exception: none (no conclusion)', () => {
    const r = results({ ...fail('internal.verifier.exception'), claims: {} })
    expect(appraiseEvidence(r)).toEqual({ ear_status: 'none' })
  })
})
