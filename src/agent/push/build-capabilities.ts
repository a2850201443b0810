/**
 * Phase 1 of a push attestation (push-protocol.md §1.5.5): the `POST
 * /v3.0/agents/:id/attestations` body that offers what this agent can prove, as rust-keylime's
 * `struct_filler.rs` builds it — `tpm_quote` (component_version 2.0, PCR banks with their
 * allocated PCRs, the AK as the one certification key), `uefi_log` (whole log, octet-stream) and
 * `ima_log` (partial access from an offset, text/plain), plus `system_info.boot_time`.
 *
 * @module
 */

import type { HashAlg, SignAlg, EncAlg } from '../../tpm/constants.ts'
import { computeName, parseTpm2bPublic } from '../../tpm/public-area.ts'
import type { PushQuote } from '../tpm/hardware-agent-tpm.ts'
import { countUefiEvents } from './count-uefi-events.ts'
import type { PopTpm } from './session-auth.ts'

/** The TPM as push attestation uses it. */
export interface PushTpm extends PopTpm {
  /** The AK's hash algorithm (`tpm_hash_alg`). */
  readonly hashAlg: HashAlg
  /** The AK's signature scheme (`tpm_signing_alg`). */
  readonly signAlg: SignAlg
  /** The AK's key type. */
  readonly encAlg: EncAlg
  /** The AK, TPM2B_PUBLIC (what the registrar holds as `aik_tpm`). */
  readonly akTpm2b: Uint8Array
  /** Allocated PCRs per bank. */
  readonly pcrAllocation: ReadonlyMap<HashAlg, readonly number[]>
  /** TPM2_Quote with the raw challenge over `pcrs` of `bank`. */
  quotePcrs(qualifyingData: Uint8Array, bank: HashAlg, pcrs: readonly number[]): Promise<PushQuote>
}

/** The IMA list as push attestation reads it. */
export interface PushImaList {
  /** Complete entries, or undefined when there is no list. */
  entryCount(): number | undefined
  /** Entries from `offset` on, or undefined when there is no list. */
  entriesFrom(offset: number): { text: string; count: number } | undefined
}

/** Everything evidence is made from. */
export interface EvidenceSources {
  /** The TPM. */
  tpm: PushTpm
  /** The IMA measurement list. */
  ima?: PushImaList
  /** Reads the UEFI event log (undefined when the node has none). */
  uefiLog?: () => Uint8Array | undefined
  /** Boot time, seconds since the epoch (`btime`); the epoch when unknown, as rust-keylime. */
  bootTime?: number
  /** `certification_keys_server_identifier`. */
  serverIdentifier: string
  /** `uefi_logs_evidence_version`. */
  uefiEvidenceVersion: string
}

/** Bank order in the capabilities (stable, as the TPM lists them). */
const BANK_ORDER: readonly HashAlg[] = ['sha1', 'sha256', 'sha384', 'sha512']

/** `boot_time` as chrono serialises a `DateTime<Utc>` with whole seconds. */
export function formatBootTime(seconds: number | undefined): string {
  return new Date((seconds ?? 0) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** The AK certification key object (`certification_keys[0]`; echoed back in the 201). */
export function certificationKey(tpm: PushTpm, serverIdentifier: string): Record<string, unknown> {
  const pub = parseTpm2bPublic(tpm.akTpm2b)
  return {
    key_class: 'asymmetric',
    key_algorithm: pub.type,
    key_size: pub.type === 'rsa' ? pub.keyBits : curveBits(pub.curve),
    server_identifier: serverIdentifier,
    local_identifier: Buffer.from(computeName(pub)).toString('hex'),
    public: Buffer.from(tpm.akTpm2b).toString('base64'),
    allowable_hash_algorithms: [tpm.hashAlg],
    allowable_signature_schemes: [tpm.signAlg],
  }
}

/** NIST P-256/384/521 (TPM_ECC_CURVE 3/4/5) sizes in bits. */
function curveBits(curve: number): number {
  return ({ 3: 256, 4: 384, 5: 521 } as Record<number, number>)[curve] ?? 256
}

/** The phase-1 request body. */
export function buildCapabilities(src: EvidenceSources): Record<string, unknown> {
  const banks = BANK_ORDER.filter((b) => src.tpm.pcrAllocation.has(b))
  const subjects = Object.fromEntries(banks.map((b) => [b, [...src.tpm.pcrAllocation.get(b)!]]))
  return {
    data: {
      type: 'attestation',
      attributes: {
        evidence_supported: [
          {
            evidence_class: 'certification',
            evidence_type: 'tpm_quote',
            capabilities: {
              component_version: '2.0',
              hash_algorithms: banks,
              signature_schemes: [src.tpm.signAlg],
              available_subjects: subjects,
              certification_keys: [certificationKey(src.tpm, src.serverIdentifier)],
            },
          },
          {
            evidence_class: 'log',
            evidence_type: 'uefi_log',
            capabilities: {
              evidence_version: src.uefiEvidenceVersion,
              entry_count: countUefiEvents(src.uefiLog?.()),
              supports_partial_access: false,
              appendable: false,
              formats: ['application/octet-stream'],
            },
          },
          {
            evidence_class: 'log',
            evidence_type: 'ima_log',
            capabilities: {
              entry_count: src.ima?.entryCount() ?? 0,
              supports_partial_access: true,
              appendable: true,
              formats: ['text/plain'],
            },
          },
        ],
        system_info: { boot_time: formatBootTime(src.bootTime) },
      },
    },
  }
}
