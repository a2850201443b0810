/**
 * The JSON:API attributes of a stored push attestation (upstream `render_state`,
 * `render_evidence_requested`): binary members as standard base64, list and map members parsed
 * back from their text columns, absent members left out. keylime-ts also renders `evaluation`'s
 * `failure_reason` and `verification_completed_at` (docs/compatibility.md).
 *
 * @module
 */
import type { EvidenceItemRow, StoredAttestation } from '../store/attestations.ts'

const b64 = (b: Uint8Array | null) => (b === null ? undefined : Buffer.from(b).toString('base64'))

function parsed(text: string | null): unknown {
  if (text === null) return undefined
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

/** Drops undefined and null members. */
function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null))
}

/** `capabilities` of an item. */
function capabilitiesOf(i: EvidenceItemRow): Record<string, unknown> {
  return compact({
    component_version: i.capabilities__component_version,
    evidence_version: i.capabilities__evidence_version,
    hash_algorithms: parsed(i.capabilities__hash_algorithms),
    signature_schemes: parsed(i.capabilities__signature_schemes),
    available_subjects: parsed(i.capabilities__available_subjects),
    certification_keys: parsed(i.capabilities__certification_keys),
    entry_count: i.capabilities__entry_count,
    supports_partial_access: i.capabilities__supports_partial_access,
    appendable: i.capabilities__appendable,
    formats: parsed(i.capabilities__formats),
  })
}

/** `chosen_parameters` of an item. */
export function chosenParametersOf(i: EvidenceItemRow): Record<string, unknown> {
  return compact({
    challenge: b64(i.chosen_parameters__challenge),
    signature_scheme: i.chosen_parameters__signature_scheme,
    hash_algorithm: i.chosen_parameters__hash_algorithm,
    selected_subjects: parsed(i.chosen_parameters__selected_subjects),
    certification_key: parsed(i.chosen_parameters__certification_key),
    starting_offset: i.chosen_parameters__starting_offset,
    entry_count: i.chosen_parameters__entry_count,
    format: i.chosen_parameters__format,
  })
}

/** `data` of an item. */
function dataOf(i: EvidenceItemRow): Record<string, unknown> {
  return compact({
    message: b64(i.data__message),
    signature: b64(i.data__signature),
    subject_data: i.data__subject_data,
    entry_count: i.data__entry_count,
    entries: i.data__entries,
    meta: parsed(i.data__meta),
  })
}

/** The 201's `evidence_requested`. */
export function renderRequested(a: StoredAttestation): Record<string, unknown>[] {
  return a.items.map((i) => ({
    evidence_class: i.evidence_class,
    evidence_type: i.evidence_type,
    chosen_parameters: chosenParametersOf(i),
  }))
}

/** The attributes of an attestation for the 201 (`phase: 'requested'`) or a read / the 202. */
export function renderAttestation(
  a: StoredAttestation,
  phase: 'requested' | 'state',
): Record<string, unknown> {
  const r = a.row
  const common = {
    system_info: { boot_time: r.system_info__boot_time },
    capabilities_received_at: r.capabilities_received_at,
    challenges_expire_at: r.challenges_expire_at,
  }
  if (phase === 'requested') {
    return compact({ stage: r.stage, evidence_requested: renderRequested(a), ...common })
  }
  return compact({
    stage: r.stage,
    evaluation: r.evaluation,
    failure_reason: r.failure_reason,
    evidence: a.items.map((i) => ({
      evidence_class: i.evidence_class,
      evidence_type: i.evidence_type,
      capabilities: capabilitiesOf(i),
      chosen_parameters: chosenParametersOf(i),
      data: dataOf(i),
    })),
    ...common,
    evidence_received_at: r.evidence_received_at,
    verification_completed_at: r.verification_completed_at,
  })
}
