/**
 * Every row of docs/ear.md's mapping table: operational state → `ear_status`, and the failure
 * event families → the trustworthiness vector.
 */
import { describe, expect, test } from 'bun:test'
import { AGENT_STATES as S } from '../../protocol/agent-states.ts'
import { type AgentResultView, appraiseAgent } from './appraise-agent.ts'
import { claimOfEvent } from './ar4si-vector.ts'

const view = (over: Partial<AgentResultView>): AgentResultView => ({
  state: S.GET_QUOTE,
  attestationCount: 3,
  lastEventId: null,
  hasRuntimePolicy: true,
  hasConfigPolicy: true,
  lastSuccessfulAttestation: 1_000,
  maxAgeSeconds: 10,
  now: 1_005,
  ...over,
})

const PASSING = { 'instance-identity': 2, hardware: 2, executables: 2, configuration: 2 }

describe('appraiseAgent: state → ear_status', () => {
  test('GET_QUOTE / PROVIDE_V after a passing quote: affirming, every checked category 2', () => {
    for (const state of [S.GET_QUOTE, S.PROVIDE_V]) {
      expect(appraiseAgent(view({ state }))).toEqual({
        ear_status: 'affirming',
        ear_trustworthiness_vector: PASSING,
      })
    }
  })

  test('a pass older than maximum_attestation_interval (polling stalled): warning', () => {
    expect(appraiseAgent(view({ now: 1_011 }))).toEqual({
      ear_status: 'warning',
      ear_trustworthiness_vector: PASSING,
    })
    expect(appraiseAgent(view({ now: 1_010 })).ear_status).toBe('affirming')
  })

  test('categories without a policy are not claimed', () => {
    const a = appraiseAgent(view({ hasRuntimePolicy: false, hasConfigPolicy: false }))
    expect(a.ear_trustworthiness_vector).toEqual({ 'instance-identity': 2, hardware: 2 })
  })

  test('retrying an unreachable agent after a pass: warning, the last vector kept', () => {
    for (const state of [S.GET_QUOTE_RETRY, S.PROVIDE_V_RETRY]) {
      expect(appraiseAgent(view({ state }))).toEqual({
        ear_status: 'warning',
        ear_trustworthiness_vector: PASSING,
      })
    }
  })

  test('no verdict yet (REGISTERED, START, SAVED, a first quote pending or retried): none', () => {
    for (const state of [S.REGISTERED, S.START, S.SAVED]) {
      expect(appraiseAgent(view({ state }))).toEqual({ ear_status: 'none' })
    }
    for (const state of [S.GET_QUOTE, S.GET_QUOTE_RETRY, S.PROVIDE_V, S.PROVIDE_V_RETRY]) {
      expect(appraiseAgent(view({ state, attestationCount: 0 }))).toEqual({ ear_status: 'none' })
    }
  })

  test('TERMINATED (being removed) and an unknown state: none', () => {
    expect(appraiseAgent(view({ state: S.TERMINATED }))).toEqual({ ear_status: 'none' })
    expect(appraiseAgent(view({ state: 42 }))).toEqual({ ear_status: 'none' })
    expect(appraiseAgent(view({ state: null }))).toEqual({ ear_status: 'none' })
  })

  test('INVALID_QUOTE, FAILED and TENANT_FAILED: contraindicated', () => {
    for (const state of [S.INVALID_QUOTE, S.FAILED, S.TENANT_FAILED]) {
      expect(appraiseAgent(view({ state, lastEventId: null }))).toEqual({
        ear_status: 'contraindicated',
      })
    }
  })
})

describe('appraiseAgent: the failure event → the vector', () => {
  const failed = (lastEventId: string) =>
    appraiseAgent(view({ state: S.INVALID_QUOTE, lastEventId }))

  test('IMA failure: executables 96, the quote (hardware, instance) affirmed', () => {
    for (const id of [
      'ima.validation.ima_hash',
      'ima.policy.invalid',
      'qoute_validation.invalid_ima_entry_nb',
    ]) {
      expect(failed(id)).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { executables: 96, hardware: 2, 'instance-identity': 2 },
      })
    }
  })

  test('tpm_policy (PCR) failure: configuration 96', () => {
    for (const id of ['pcr_validation.invalid_pcr_15', 'pcr_validation.missing_pcrs']) {
      expect(failed(id)).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { configuration: 96, hardware: 2, 'instance-identity': 2 },
      })
    }
  })

  test('measured-boot failure: configuration 96', () => {
    for (const id of ['measured_boot.invalid_pcr_0', 'qoute_validation.invalid_mb_policy']) {
      expect(failed(id)).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { configuration: 96, hardware: 2, 'instance-identity': 2 },
      })
    }
  })

  test('PCR 16 (the NK binding): instance-identity 97', () => {
    expect(failed('pcr_validation.invalid_pcr_16')).toEqual({
      ear_status: 'contraindicated',
      ear_trustworthiness_vector: { 'instance-identity': 97, hardware: 2 },
    })
  })

  test('quote failure (signature, nonce, digest): hardware 99 and nothing else', () => {
    for (const id of ['qoute_validation.quote_validation', 'quote_validation.quote_validation']) {
      expect(failed(id)).toEqual({
        ear_status: 'contraindicated',
        ear_trustworthiness_vector: { hardware: 99 },
      })
    }
  })

  test('internal events (unreachable, exception): contraindicated with no vector', () => {
    for (const id of ['internal.verifier.not_reachable', 'internal.verifier.exception']) {
      expect(claimOfEvent(id)).toBeUndefined()
      expect(appraiseAgent(view({ state: S.FAILED, lastEventId: id }))).toEqual({
        ear_status: 'contraindicated',
      })
    }
  })

  test('EK events: instance-identity 97', () => {
    expect(claimOfEvent('ek.pub')).toEqual({ category: 'instance-identity', value: 97 })
  })
})
