import { describe, expect, test } from 'bun:test'
import { PushError } from './json-api.ts'
import { requiredPcrs, type SelectionContext, selectEvidence } from './capabilities.ts'

const AK = 'AAAA'
const ctx = (o: Partial<SelectionContext> = {}): SelectionContext => ({
  tpmPolicyPcrs: [15],
  mbActive: false,
  imaActive: false,
  acceptHash: ['sha256', 'sha1'],
  acceptSign: ['rsassa', 'ecdsa'],
  akTpm: AK,
  ...o,
})

const key = (o: Record<string, unknown> = {}) => ({
  key_class: 'asymmetric',
  key_algorithm: 'rsa',
  key_size: 2048,
  server_identifier: 'ak',
  local_identifier: '000b',
  public: AK,
  allowable_hash_algorithms: ['sha256'],
  allowable_signature_schemes: ['rsassa'],
  ...o,
})

const offer = (
  o: { keys?: unknown[]; subjects?: unknown; imaCount?: number; boot?: string } = {},
) => ({
  evidence_supported: [
    {
      evidence_class: 'certification',
      evidence_type: 'tpm_quote',
      capabilities: {
        component_version: '2.0',
        hash_algorithms: ['sha1', 'sha256'],
        signature_schemes: ['rsassa'],
        available_subjects: o.subjects ?? { sha1: [0, 10, 15], sha256: [0, 10, 15] },
        certification_keys: o.keys ?? [key()],
      },
    },
    {
      evidence_class: 'log',
      evidence_type: 'ima_log',
      capabilities: {
        entry_count: o.imaCount ?? 100,
        supports_partial_access: true,
        appendable: true,
        formats: ['text/plain'],
      },
    },
  ],
  system_info: { boot_time: o.boot ?? '2026-01-15T10:30:00Z' },
})

/** The 422 pointers of a refused offer. */
function pointers(fn: () => unknown): string[] {
  try {
    fn()
  } catch (err) {
    if (err instanceof PushError) return err.problems.map((p) => p.pointer)
    throw err
  }
  throw new Error('not refused')
}

describe('requiredPcrs', () => {
  test('tpm_policy PCRs, the MB PCRs with an MB policy, PCR 10 with a runtime policy', () => {
    expect(requiredPcrs(ctx())).toEqual([15])
    expect(requiredPcrs(ctx({ imaActive: true }))).toEqual([10, 15])
    expect(requiredPcrs(ctx({ tpmPolicyPcrs: [], mbActive: true }))).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15,
    ])
  })
})

describe('selectEvidence', () => {
  test('the first accepted bank holding every PCR gets the list, other banks null', () => {
    const s = selectEvidence(offer(), ctx())
    const q = s.items[0]!
    expect(q.chosen_parameters__hash_algorithm).toBe('sha256')
    expect(q.chosen_parameters__signature_scheme).toBe('rsassa')
    expect(JSON.parse(q.chosen_parameters__selected_subjects!)).toEqual({
      sha1: null,
      sha256: [15],
    })
    expect(q.chosen_parameters__challenge).toHaveLength(16)
    // no runtime policy: no IMA log requested
    expect(s.items.map((i) => i.evidence_type)).toEqual(['tpm_quote'])
  })

  test('two selections get different challenges', () => {
    const a = selectEvidence(offer(), ctx()).items[0]!.chosen_parameters__challenge!
    const b = selectEvidence(offer(), ctx()).items[0]!.chosen_parameters__challenge!
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(false)
  })

  test('a bank without every required PCR is not chosen; none left is a 422', () => {
    const sha1Key = key({ allowable_hash_algorithms: ['sha256', 'sha1'] })
    const s = selectEvidence(
      offer({ keys: [sha1Key], subjects: { sha1: [15], sha256: [0] } }),
      ctx(),
    )
    expect(JSON.parse(s.items[0]!.chosen_parameters__selected_subjects!)).toEqual({
      sha1: [15],
      sha256: null,
    })
    expect(
      pointers(() => selectEvidence(offer({ subjects: { sha1: [15], sha256: [0] } }), ctx())),
    ).toEqual(['/data/attributes/evidence_supported/0/capabilities/available_subjects'])
  })

  test('the enrolled AK is preferred over another key named ak', () => {
    const other = key({ public: 'BBBB', local_identifier: 'other' })
    const s = selectEvidence(offer({ keys: [other, key()] }), ctx())
    expect(JSON.parse(s.items[0]!.chosen_parameters__certification_key!).public).toBe(AK)
  })

  test('422 with pointers: a bank not in hash_algorithms, a key that cannot sign, no quote', () => {
    expect(pointers(() => selectEvidence(offer({ subjects: { sha384: [15] } }), ctx()))).toContain(
      '/data/attributes/evidence_supported/0/capabilities/available_subjects/sha384',
    )
    expect(
      pointers(() =>
        selectEvidence(
          offer({ keys: [key({ key_algorithm: 'ecc' })] }),
          ctx({ acceptSign: ['rsassa'] }),
        ),
      ),
    ).toContain('/data/attributes/evidence_supported/0/capabilities/certification_keys')
    expect(
      pointers(() => selectEvidence(offer({ keys: [{ key_class: 'asymmetric' }] }), ctx())),
    ).toContain(
      '/data/attributes/evidence_supported/0/capabilities/certification_keys/0/key_algorithm',
    )
    expect(pointers(() => selectEvidence({ evidence_supported: [] }, ctx()))).toEqual([
      '/data/attributes/evidence_supported',
    ])
  })

  describe('IMA starting offset', () => {
    const last = { bootTime: '2026-01-15T10:30:00Z', imaNextEntry: 40 }
    const offset = (o: Parameters<typeof offer>[0], c: Partial<SelectionContext>) =>
      selectEvidence(offer(o), ctx({ imaActive: true, ...c })).items[1]!
        .chosen_parameters__starting_offset

    test('0 without a passed attestation, and after a reboot', () => {
      expect(offset({}, {})).toBe(0)
      expect(offset({ boot: '2026-01-16T00:00:00Z' }, { lastPassed: last })).toBe(0)
    })
    test('continues after the last passed attestation of the same boot', () => {
      expect(offset({}, { lastPassed: last })).toBe(40)
    })
    test('an older boot, or fewer entries than attested, is refused', () => {
      expect(
        pointers(() =>
          selectEvidence(
            offer({ boot: '2026-01-01T00:00:00Z' }),
            ctx({ imaActive: true, lastPassed: last }),
          ),
        ),
      ).toEqual(['/data/attributes/system_info/boot_time'])
      expect(
        pointers(() =>
          selectEvidence(offer({ imaCount: 10 }), ctx({ imaActive: true, lastPassed: last })),
        ),
      ).toEqual(['/data/attributes/evidence_supported/1/capabilities/entry_count'])
    })
    test('boot_time is required with a runtime policy', () => {
      const body = offer()
      ;(body as { system_info?: unknown }).system_info = undefined
      expect(pointers(() => selectEvidence(body, ctx({ imaActive: true })))).toEqual([
        '/data/attributes/system_info',
      ])
    })
  })
})
