/**
 * Phase 2 of a push attestation (push-protocol.md §1.5.6): reads `evidence_requested` from the
 * verifier's 201 and builds `evidence_collected` with the same items in the same order, as
 * rust-keylime's `context_info.rs::collect_evidences`:
 *
 * - `tpm_quote`: TPM2_Quote with the AK, qualifying data = the raw challenge bytes, over
 *   `selected_subjects[hash_algorithm]` of that bank; `message` (TPMS_ATTEST), `signature`
 *   (TPMT_SIGNATURE) and `subject_data` (the tpm2-tools PCR blob of the pull quote string), all
 *   base64. The requested scheme and hash must be the AK's.
 * - `uefi_log`: the whole log, base64.
 * - `ima_log`: the ASCII list from `starting_offset` (at most `entry_count` entries if asked).
 *
 * @module
 */

import { isHashAlg, PCR_COUNT } from '../../tpm/constants.ts'
import { AgentError } from '../errors.ts'
import type { EvidenceSources } from './build-capabilities.ts'
import { badAnswer, readArray, readBase64, readInt, readObject, readString } from './read-answer.ts'

/** One requested item, checked. */
export type EvidenceRequest =
  | {
      type: 'tpm_quote'
      challenge: Uint8Array
      hashAlg: string
      signatureScheme: string
      pcrs: number[]
    }
  | { type: 'uefi_log'; format: string }
  | { type: 'ima_log'; format: string; startingOffset: number; entryCount: number | undefined }

/** Most items a 201 may request (upstream requests at most three). */
const MAX_ITEMS = 8
/** Largest IMA offset accepted. */
const MAX_OFFSET = 2 ** 31

/**
 * Reads `data.attributes.evidence_requested` of a 201.
 *
 * @throws {AgentError} `ERR_AGENT_PUSH_ANSWER` naming the bad field.
 */
export function parseEvidenceRequested(body: unknown): EvidenceRequest[] {
  const attrs = readObject(
    readObject(readObject(body, 'body').data, 'data').attributes,
    'attributes',
  )
  const items = readArray(attrs.evidence_requested, 'evidence_requested', MAX_ITEMS)
  return items.map((raw, i) => {
    const at = `evidence_requested[${i}]`
    const item = readObject(raw, at)
    const type = readString(item.evidence_type, `${at}.evidence_type`, 64)
    const params = readObject(item.chosen_parameters ?? {}, `${at}.chosen_parameters`)
    if (type === 'tpm_quote') return readQuoteRequest(params, `${at}.chosen_parameters`)
    if (type === 'uefi_log') {
      return { type, format: readString(params.format, `${at}.chosen_parameters.format`, 64) }
    }
    if (type === 'ima_log') {
      return {
        type,
        format: readString(params.format, `${at}.chosen_parameters.format`, 64),
        startingOffset:
          params.starting_offset === undefined || params.starting_offset === null
            ? 0
            : readInt(params.starting_offset, `${at}.starting_offset`, 0, MAX_OFFSET),
        entryCount:
          params.entry_count === undefined || params.entry_count === null
            ? undefined
            : readInt(params.entry_count, `${at}.entry_count`, 0, MAX_OFFSET),
      }
    }
    return badAnswer(`${at}.evidence_type`, `"${type.slice(0, 32)}" is not offered by this agent`)
  })
}

function readQuoteRequest(params: Record<string, unknown>, at: string): EvidenceRequest {
  const hashAlg = readString(params.hash_algorithm, `${at}.hash_algorithm`, 16)
  const subjects = readObject(params.selected_subjects, `${at}.selected_subjects`)
  const list = subjects[hashAlg]
  const pcrs = readArray(list, `${at}.selected_subjects.${hashAlg}`, PCR_COUNT).map((p) =>
    readInt(p, `${at}.selected_subjects.${hashAlg}[]`, 0, PCR_COUNT - 1),
  )
  if (pcrs.length === 0) badAnswer(`${at}.selected_subjects.${hashAlg}`, 'selects no PCR')
  return {
    type: 'tpm_quote',
    challenge: readBase64(params.challenge, `${at}.challenge`, 64),
    hashAlg,
    signatureScheme: readString(params.signature_scheme, `${at}.signature_scheme`, 16),
    pcrs,
  }
}

/** The items' class (`evidence_class`) by type. */
const CLASS = { tpm_quote: 'certification', uefi_log: 'log', ima_log: 'log' } as const

/**
 * Builds the phase-2 request body for `requested`, in order.
 *
 * @throws {AgentError} `ERR_AGENT_PUSH_ANSWER` when the verifier asks for a scheme or hash the
 *   AK does not use, or for a UEFI log the node does not have; TPM errors.
 */
export async function collectEvidence(
  requested: readonly EvidenceRequest[],
  src: EvidenceSources,
): Promise<Record<string, unknown>> {
  const collected: Record<string, unknown>[] = []
  for (const req of requested) {
    collected.push({
      evidence_class: CLASS[req.type],
      evidence_type: req.type,
      data: await collectOne(req, src),
    })
  }
  return { data: { type: 'attestation', attributes: { evidence_collected: collected } } }
}

async function collectOne(req: EvidenceRequest, src: EvidenceSources): Promise<unknown> {
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64')
  if (req.type === 'tpm_quote') {
    const tpm = src.tpm
    if (req.hashAlg !== tpm.hashAlg || req.signatureScheme !== tpm.signAlg) {
      badAnswer(
        'tpm_quote.chosen_parameters',
        `asks for ${req.signatureScheme}/${req.hashAlg}; the AK signs ${tpm.signAlg}/${tpm.hashAlg}`,
      )
    }
    if (!isHashAlg(req.hashAlg) || !tpm.pcrAllocation.has(req.hashAlg)) {
      badAnswer('tpm_quote.hash_algorithm', `${req.hashAlg} is not a PCR bank of this TPM`)
    }
    const q = await tpm.quotePcrs(req.challenge, req.hashAlg, req.pcrs)
    return { message: b64(q.attest), signature: b64(q.signature), subject_data: b64(q.subjectData) }
  }
  if (req.type === 'uefi_log') {
    const log = src.uefiLog?.()
    if (log === undefined) {
      throw new AgentError('ERR_AGENT_PUSH_ANSWER', 'the verifier asks for a UEFI log; none here')
    }
    return { entries: b64(log) }
  }
  const slice = src.ima?.entriesFrom(req.startingOffset) ?? { text: '', count: 0 }
  if (req.entryCount === undefined || req.entryCount >= slice.count) {
    return { entry_count: slice.count, entries: slice.text }
  }
  const lines = slice.text.split('\n').slice(0, req.entryCount)
  return { entry_count: req.entryCount, entries: lines.map((l) => `${l}\n`).join('') }
}
