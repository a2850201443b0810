import { describe, expect, test } from 'bun:test'
import { generateSoftTpmKey, SoftTpm } from '../../../test/support/fleet/soft-tpm.ts'
import type { EvidenceItemRow } from '../store/attestations.ts'
import { PushError } from './json-api.ts'
import { readEvidence } from './read-evidence.ts'

const tpm = new SoftTpm({
  keys: {
    ek: generateSoftTpmKey('ecc'),
    ak: generateSoftTpmKey('ecc'),
    nk: generateSoftTpmKey('rsa'),
  },
})
const challenge = new Uint8Array(16).fill(7)

function item(o: Partial<EvidenceItemRow>): EvidenceItemRow {
  return {
    id: 1,
    agent_id: 'a',
    attestation_index: 0,
    evidence_class: 'certification',
    evidence_type: 'tpm_quote',
    capabilities__component_version: null,
    capabilities__evidence_version: null,
    capabilities__signature_schemes: null,
    capabilities__hash_algorithms: null,
    capabilities__available_subjects: null,
    capabilities__certification_keys: null,
    capabilities__entry_count: null,
    capabilities__supports_partial_access: null,
    capabilities__appendable: null,
    capabilities__formats: null,
    capabilities__meta: null,
    chosen_parameters__challenge: challenge,
    chosen_parameters__signature_scheme: 'ecdsa',
    chosen_parameters__hash_algorithm: 'sha256',
    chosen_parameters__selected_subjects: JSON.stringify({ sha256: [0, 15] }),
    chosen_parameters__certification_key: null,
    chosen_parameters__starting_offset: null,
    chosen_parameters__entry_count: null,
    chosen_parameters__format: null,
    chosen_parameters__meta: null,
    data__subject_data: null,
    data__message: null,
    data__signature: null,
    data__entry_count: null,
    data__entries: null,
    data__meta: null,
    results__certified_entry_count: null,
    results__meta: null,
    ...o,
  }
}
const QUOTE = item({})
const IMA = item({
  id: 2,
  evidence_class: 'log',
  evidence_type: 'ima_log',
  capabilities__entry_count: 10,
  chosen_parameters__starting_offset: 4,
})

const quoteData = (pcrs: number[]) => {
  const q = tpm.quote(challenge, pcrs)
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
  return {
    evidence_class: 'certification',
    evidence_type: 'tpm_quote',
    data: { message: b64(q.attest), signature: b64(q.signature), subject_data: b64(q.pcrBlob) },
  }
}
const imaData = (lines: number) => ({
  evidence_class: 'log',
  evidence_type: 'ima_log',
  data: { entry_count: lines, entries: 'x\n'.repeat(lines) },
})

function pointers(fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof PushError) return err.problems.map((p) => p.pointer)
    throw err
  }
  throw new Error('not refused')
}

describe('readEvidence', () => {
  test('a genuine quote and log: stored parts, meta.pcrs and clock_info, entries counted here', () => {
    const out = readEvidence({ evidence_collected: [quoteData([0, 15]), imaData(6)] }, [QUOTE, IMA])
    const meta = JSON.parse(out[0]!.values.data__meta as string)
    expect(Object.keys(meta.pcrs.sha256)).toEqual(['0', '15'])
    expect(meta.pcrs.sha256['15']).toMatch(/^0x[0-9a-f]{64}$/)
    expect(meta.clock_info.reset_count).toBe(1)
    expect(out[1]!.values.data__entry_count).toBe(6)
  })
  test('the order and count must be as requested', () => {
    expect(
      pointers(() => readEvidence({ evidence_collected: [quoteData([0, 15])] }, [QUOTE, IMA])),
    ).toEqual(['/data/attributes/evidence_collected'])
    expect(
      pointers(() =>
        readEvidence({ evidence_collected: [imaData(6), quoteData([0, 15])] }, [QUOTE, IMA]),
      ),
    ).toEqual(['/data/attributes/evidence_collected/0', '/data/attributes/evidence_collected/1'])
  })
  test('a quote lacking a requested PCR is refused', () => {
    expect(pointers(() => readEvidence({ evidence_collected: [quoteData([0])] }, [QUOTE]))).toEqual(
      ['/data/attributes/evidence_collected/0/data/subject_data'],
    )
  })
  test('an IMA log shorter than the agent reported is refused', () => {
    expect(
      pointers(() =>
        readEvidence({ evidence_collected: [quoteData([0, 15]), imaData(5)] }, [QUOTE, IMA]),
      ),
    ).toEqual(['/data/attributes/evidence_collected/1/data/entries'])
  })
  test('malformed parts are 422s, never throws of another kind', () => {
    const bad = {
      evidence_class: 'certification',
      evidence_type: 'tpm_quote',
      data: { message: '!!', signature: 'AA==', subject_data: 'AAAA' },
    }
    expect(pointers(() => readEvidence({ evidence_collected: [bad] }, [QUOTE]))).toEqual([
      '/data/attributes/evidence_collected/0/data/message',
    ])
    const junk = { ...bad, data: { message: 'AAAA', signature: 'AAAA', subject_data: 'AAAA' } }
    expect(pointers(() => readEvidence({ evidence_collected: [junk] }, [QUOTE]))).toEqual([
      '/data/attributes/evidence_collected/0/data',
    ])
  })
})
