import { describe, expect, test } from 'bun:test'
import { AGENT_STATES as S } from '../../protocol/agent-states.ts'
import {
  failureStopsPolling,
  nextState,
  raisesSeverity,
  resumesOnClaim,
  resumeState,
  roundAction,
} from './transitions.ts'

describe('roundAction', () => {
  test('START always fetches the NK', () => {
    expect(roundAction(S.START, true)).toEqual({ kind: 'get-quote', fetchNk: true })
  })

  test('GET_QUOTE and its retry fetch the NK only while it is unknown', () => {
    for (const st of [S.GET_QUOTE, S.GET_QUOTE_RETRY]) {
      expect(roundAction(st, true)).toEqual({ kind: 'get-quote', fetchNk: false })
      expect(roundAction(st, false)).toEqual({ kind: 'get-quote', fetchNk: true })
    }
  })

  test('PROVIDE_V and its retry post V', () => {
    expect(roundAction(S.PROVIDE_V, true)).toEqual({ kind: 'provide-v' })
    expect(roundAction(S.PROVIDE_V_RETRY, false)).toEqual({ kind: 'provide-v' })
  })

  test('ended and removed agents are not polled', () => {
    for (const st of [
      S.REGISTERED,
      S.SAVED,
      S.FAILED,
      S.TERMINATED,
      S.INVALID_QUOTE,
      S.TENANT_FAILED,
    ])
      expect(roundAction(st, true)).toEqual({ kind: 'none' })
  })
})

describe('nextState', () => {
  test('the happy path: START → GET_QUOTE → PROVIDE_V → GET_QUOTE', () => {
    expect(nextState({ kind: 'quote-asked' })).toBe(S.GET_QUOTE)
    expect(nextState({ kind: 'quote-passed', deliverV: true })).toBe(S.PROVIDE_V)
    expect(nextState({ kind: 'v-done' })).toBe(S.GET_QUOTE)
    expect(nextState({ kind: 'quote-passed', deliverV: false })).toBe(S.GET_QUOTE)
  })

  test('communication failures go to the retry state of their step', () => {
    expect(nextState({ kind: 'unreachable', during: 'quote' })).toBe(S.GET_QUOTE_RETRY)
    expect(nextState({ kind: 'unreachable', during: 'v' })).toBe(S.PROVIDE_V_RETRY)
  })

  test('failures', () => {
    expect(nextState({ kind: 'check-failed' })).toBe(S.INVALID_QUOTE)
    expect(nextState({ kind: 'failed' })).toBe(S.FAILED)
    expect(nextState({ kind: 'nk-missing' })).toBe(S.START)
  })
})

describe('resumeState', () => {
  test('a polled agent that passed with a known NK resumes in GET_QUOTE', () => {
    expect(resumeState(S.GET_QUOTE, true, 1)).toBe(S.GET_QUOTE)
    expect(resumeState(S.GET_QUOTE_RETRY, true, 5)).toBe(S.GET_QUOTE)
  })

  test('everything else restarts at START', () => {
    expect(resumeState(S.GET_QUOTE, false, 1)).toBe(S.START)
    expect(resumeState(S.GET_QUOTE, true, 0)).toBe(S.START)
    expect(resumeState(S.PROVIDE_V, true, 1)).toBe(S.START)
    expect(resumeState(S.FAILED, true, 1)).toBe(S.START)
  })
})

test('resumesOnClaim skips ended and removed agents', () => {
  expect([S.START, S.GET_QUOTE, S.PROVIDE_V_RETRY, S.REGISTERED].every(resumesOnClaim)).toBe(true)
  expect([S.FAILED, S.TERMINATED, S.INVALID_QUOTE, S.TENANT_FAILED].some(resumesOnClaim)).toBe(
    false,
  )
})

test('failureStopsPolling: irrecoverable or at the maximum severity', () => {
  expect(failureStopsPolling(false, 0, 2)).toBe(true)
  expect(failureStopsPolling(true, 2, 2)).toBe(true)
  expect(failureStopsPolling(true, 1, 2)).toBe(false)
})

test('raisesSeverity only ratchets up', () => {
  expect(raisesSeverity(null, 0)).toBe(true)
  expect(raisesSeverity(0, 1)).toBe(true)
  expect(raisesSeverity(1, 1)).toBe(false)
  expect(raisesSeverity(2, 1)).toBe(false)
})
