import { describe, expect, test } from 'bun:test'
import { type LivenessRow, pushAttestationStatus, timeoutAt } from './liveness.ts'
import { failureReason } from './verify-attestation.ts'

const row = (o: Partial<LivenessRow> = {}): LivenessRow => ({
  accept_attestations: true,
  consecutive_attestation_failures: 0,
  attestation_count: 0,
  last_received_quote: 0,
  ...o,
})
const T = 1_800_000_000 // epoch seconds of the last evidence

describe('pushAttestationStatus (push-protocol.md §1.3)', () => {
  test('PENDING before the first attestation, PASS after one', () => {
    expect(pushAttestationStatus(row(), 2, T * 1000)).toBe('PENDING')
    const ok = row({ attestation_count: 3, last_received_quote: T })
    expect(pushAttestationStatus(ok, 2, T * 1000 + 9_999)).toBe('PASS')
  })
  test('TIMEOUT at quote_interval × 5 without evidence, from the row alone', () => {
    const ok = row({ attestation_count: 3, last_received_quote: T })
    expect(timeoutAt(ok, 2)).toBe((T + 10) * 1000)
    expect(pushAttestationStatus(ok, 2, (T + 10) * 1000)).toBe('TIMEOUT')
  })
  test('TIMEOUT when attestations were switched off; FAIL wins over both', () => {
    expect(pushAttestationStatus(row({ accept_attestations: false }), 2, 0)).toBe('TIMEOUT')
    const failed = row({ consecutive_attestation_failures: 1, accept_attestations: false })
    expect(pushAttestationStatus(failed, 2, 0)).toBe('FAIL')
  })
  test('no timeout before the first evidence', () => {
    expect(timeoutAt(row(), 2)).toBeUndefined()
  })
})

describe('failureReason (upstream TPMEngine)', () => {
  test('quote, MB PCR and IMA PCR events break the evidence chain', () => {
    expect(failureReason(['qoute_validation.quote_validation'])).toBe('broken_evidence_chain')
    expect(failureReason(['measured_boot.invalid_pcr_0'])).toBe('broken_evidence_chain')
    expect(failureReason(['ima.validation.ima-ng.not_in_allowlist', 'ima.pcr_mismatch'])).toBe(
      'broken_evidence_chain',
    )
  })
  test('anything else violates the policy', () => {
    expect(failureReason(['pcr_validation.invalid_pcr_15'])).toBe('policy_violation')
    expect(failureReason(['ima.validation.ima-ng.not_in_allowlist'])).toBe('policy_violation')
  })
})
