/**
 * The phase-1 body of a push attestation (`POST /v3[.0]/agents/:id/attestations`) as rust-keylime's
 * push agent sends it (push-protocol.md §1.5.5), for the verifier-side push tests: one `tpm_quote`
 * item with its AK, and the `uefi_log` / `ima_log` items when asked for.
 *
 * @module
 */

/** What {@link pushCapabilities} builds the body from. */
export interface PushCapabilityOptions {
  /** The AK's type: `rsa` (RSASSA, 2048) or `ecc` (ECDSA, P-256). */
  akType: 'rsa' | 'ecc'
  /** The AK's TPM2B_PUBLIC. */
  akTpm2b: Uint8Array
  /** `local_identifier` of the key (default `ak`). */
  localIdentifier?: string
  /** `available_subjects`, bank → PCRs (default sha1 and sha256, PCRs 0–23). */
  subjects?: Record<string, number[]>
  /** Offer a `uefi_log` (default false). */
  uefiLog?: boolean
  /** Offer an `ima_log` with this `entry_count` (default: none offered). */
  imaEntries?: number
  /** `system_info.boot_time` (default: no `system_info`). */
  bootTime?: string
}

const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i)

/** The JSON:API document of phase 1. */
export function pushCapabilities(o: PushCapabilityOptions): Record<string, unknown> {
  const ecc = o.akType === 'ecc'
  const scheme = ecc ? 'ecdsa' : 'rsassa'
  const subjects = o.subjects ?? { sha1: ALL_PCRS, sha256: ALL_PCRS }
  const items: Record<string, unknown>[] = [
    {
      evidence_class: 'certification',
      evidence_type: 'tpm_quote',
      capabilities: {
        component_version: '2.0',
        hash_algorithms: Object.keys(subjects),
        signature_schemes: [scheme],
        available_subjects: subjects,
        certification_keys: [
          {
            key_class: 'asymmetric',
            key_algorithm: ecc ? 'ecc' : 'rsa',
            key_size: ecc ? 256 : 2048,
            server_identifier: 'ak',
            local_identifier: o.localIdentifier ?? 'ak',
            public: Buffer.from(o.akTpm2b).toString('base64'),
            allowable_hash_algorithms: ['sha256'],
            allowable_signature_schemes: [scheme],
          },
        ],
      },
    },
  ]
  if (o.uefiLog) {
    items.push({
      evidence_class: 'log',
      evidence_type: 'uefi_log',
      capabilities: {
        evidence_version: '2.1',
        entry_count: 20,
        supports_partial_access: false,
        appendable: false,
        formats: ['application/octet-stream'],
      },
    })
  }
  if (o.imaEntries !== undefined) {
    items.push({
      evidence_class: 'log',
      evidence_type: 'ima_log',
      capabilities: {
        entry_count: o.imaEntries,
        supports_partial_access: true,
        appendable: true,
        formats: ['text/plain'],
      },
    })
  }
  const attributes: Record<string, unknown> = { evidence_supported: items }
  if (o.bootTime !== undefined) attributes.system_info = { boot_time: o.bootTime }
  return { data: { type: 'attestation', attributes } }
}
