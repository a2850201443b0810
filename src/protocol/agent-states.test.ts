import { expect, test } from 'bun:test'
import { AGENT_STATES, agentStateName, attestationStatus, stateName } from './agent-states.ts'

test('state numbers and names are upstream states.py', () => {
  expect(Object.values(AGENT_STATES)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
  expect(stateName(9)).toBe('INVALID_QUOTE')
  expect(stateName(11)).toBe('UNKNOWN')
  expect(stateName(null)).toBe('UNKNOWN')
})

test('the tenant prints STATE_REPRESENTATIONS, Unknown (n) otherwise', () => {
  expect(agentStateName(0)).toBe('Registered')
  expect(agentStateName(4)).toBe('Get Quote (retry)')
  expect(agentStateName(10)).toBe('Tenant Quote Failed')
  expect(agentStateName(11)).toBe('Unknown (11)')
  expect(agentStateName(1.5)).toBe('Unknown (1.5)')
  expect(agentStateName('3')).toBe('Unknown (3)')
  expect(agentStateName(null)).toBe('Unknown (null)')
})

test('attestation_status of API 2.5', () => {
  expect(attestationStatus(AGENT_STATES.GET_QUOTE)).toBe('PASS')
  expect(attestationStatus(AGENT_STATES.INVALID_QUOTE)).toBe('FAIL')
  expect(attestationStatus(AGENT_STATES.START)).toBe('PENDING')
})
