/**
 * Phase 2 of a push attestation (push-protocol.md §1.5.6, upstream `TPMEngine` evidence checks):
 * reads `evidence_collected` against what was requested (same count and order), decodes the quote
 * parts, checks that the PCR blob holds every requested PCR of the selected bank, counts the IMA
 * entries server-side, and renders `data.meta` (`pcrs`, `clock_info`). The signature, the nonce
 * and the policies are checked later, asynchronously (`verify-attestation.ts`).
 *
 * @module
 */
import { decodeBase64 } from '../../protocol/decode-base64.ts'
import { parseTpmsAttest } from '../../tpm/attest.ts'
import { TPM_ST } from '../../tpm/constants.ts'
import { parsePcrBlob, pcrValuesByBank } from '../../tpm/pcr-blob.ts'
import type { evidence_items } from '../../db/index.ts'
import type { EvidenceItemRow } from '../store/attestations.ts'
import { BodyReader, isObj } from './body-reader.ts'

/** Column updates of one stored item. */
export interface EvidenceUpdate {
  id: number
  values: Partial<typeof evidence_items.$inferInsert>
}

const BASE = '/data/attributes/evidence_collected'

function decode(rd: BodyReader, text: string | undefined, at: string): Uint8Array | undefined {
  if (text === undefined) return undefined
  try {
    return new Uint8Array(decodeBase64(text))
  } catch {
    rd.problem(at, 'must be base64')
    return undefined
  }
}

/**
 * Reads `attributes.evidence_collected` for the stored `requested` items.
 *
 * @throws PushError 422 with pointers for a missing, misordered or malformed item
 */
export function readEvidence(
  attributes: Record<string, unknown>,
  requested: readonly EvidenceItemRow[],
): EvidenceUpdate[] {
  const rd = new BodyReader()
  const list = rd.list(attributes, 'evidence_collected', '/data/attributes') ?? []
  rd.done()
  if (list.length !== requested.length) {
    rd.problem(BASE, `must hold the ${requested.length} items requested, in order`)
    rd.done()
  }
  const out: EvidenceUpdate[] = []
  for (const [i, req] of requested.entries()) {
    const values = readItem(rd, list[i], `${BASE}/${i}`, req)
    if (values !== undefined) out.push({ id: req.id, values })
  }
  rd.done()
  return out
}

/** One collected item, which must be the one requested at its position. */
function readItem(
  rd: BodyReader,
  v: unknown,
  at: string,
  req: EvidenceItemRow,
): EvidenceUpdate['values'] | undefined {
  if (!isObj(v)) {
    rd.problem(at, 'must be an object')
    return undefined
  }
  const cls = rd.str(v, 'evidence_class', at, false, 64)
  const type = rd.str(v, 'evidence_type', at, false, 64)
  if (cls !== req.evidence_class || type !== req.evidence_type) {
    rd.problem(at, `must be the ${req.evidence_type} requested at this position`)
    return undefined
  }
  const data = rd.obj(v, 'data', at)
  if (data === undefined) return undefined
  return req.evidence_type === 'tpm_quote'
    ? quoteData(rd, data, `${at}/data`, req)
    : logData(rd, data, `${at}/data`, req)
}

/** The quote parts, with the PCR check and `meta`. */
function quoteData(
  rd: BodyReader,
  data: Record<string, unknown>,
  at: string,
  req: EvidenceItemRow,
): EvidenceUpdate['values'] | undefined {
  const message = decode(rd, rd.str(data, 'message', at), `${at}/message`)
  const signature = decode(rd, rd.str(data, 'signature', at), `${at}/signature`)
  const subjectText = rd.str(data, 'subject_data', at)
  const blob = decode(rd, subjectText, `${at}/subject_data`)
  if (message === undefined || signature === undefined || blob === undefined) return undefined
  let meta: Record<string, unknown>
  try {
    const attest = parseTpmsAttest(message, { expectType: TPM_ST.ATTEST_QUOTE })
    const byBank = pcrValuesByBank(parsePcrBlob(blob).values)
    const selected = JSON.parse(req.chosen_parameters__selected_subjects ?? '{}') as Record<
      string,
      number[] | null
    >
    for (const [bank, want] of Object.entries(selected)) {
      const got = byBank.get(bank as never)
      const missing = (want ?? []).filter((n) => !got?.has(n))
      if (missing.length > 0) {
        rd.problem(`${at}/subject_data`, `lacks PCRs ${missing.join(',')} of bank ${bank}`)
        return undefined
      }
    }
    const pcrs: Record<string, Record<string, string>> = {}
    for (const [bank, m] of byBank) {
      pcrs[bank] = Object.fromEntries(
        [...m].map(([n, v]) => [String(n), `0x${Buffer.from(v).toString('hex')}`]),
      )
    }
    const c = attest.clockInfo
    meta = {
      pcrs,
      clock_info: {
        clock: Number(c.clock),
        reset_count: c.resetCount,
        restart_count: c.restartCount,
        safe: c.safe,
      },
    }
  } catch {
    rd.problem(at, 'message must be a TPMS_ATTEST quote and subject_data a PCR blob')
    return undefined
  }
  return {
    data__message: message,
    data__signature: signature,
    // re-encoded: the quote string is built from it, and base64 may arrive wrapped
    data__subject_data: Buffer.from(blob).toString('base64'),
    data__meta: JSON.stringify(meta),
  }
}

/** A log's entries: base64 for the UEFI log, text for IMA (counted here, as upstream). */
function logData(
  rd: BodyReader,
  data: Record<string, unknown>,
  at: string,
  req: EvidenceItemRow,
): EvidenceUpdate['values'] | undefined {
  const entries = rd.str(data, 'entries', at, false, Number.MAX_SAFE_INTEGER)
  if (entries === undefined) return undefined
  if (req.evidence_type === 'uefi_log') {
    if (decode(rd, entries, `${at}/entries`) === undefined) return undefined
    return { data__entries: entries }
  }
  rd.uint(data, 'entry_count', at, true)
  let count = 0
  for (let i = entries.indexOf('\n'); i >= 0; i = entries.indexOf('\n', i + 1)) count++
  const wanted = req.chosen_parameters__entry_count
  if (wanted !== null && count > wanted)
    rd.problem(`${at}/entries`, 'holds more entries than requested')
  const offset = req.chosen_parameters__starting_offset ?? 0
  if (count < (req.capabilities__entry_count ?? 0) - offset) {
    rd.problem(`${at}/entries`, 'holds fewer entries than the agent reported')
  }
  return { data__entries: entries, data__entry_count: count }
}
