/**
 * The tpm2-tools "serialized" PCR file that Keylime agents send as the third part of the quote
 * string (wire-formats §1.4; tpm2-tools `lib/pcr.c::pcr_fwrite_serialized`, rust-keylime
 * `tpm.rs::pcrdata_to_vec`, upstream parser `keylime/tpm/tpm_util.py::__get_pcrs_from_blob`).
 * It is a **little-endian** dump of C structs:
 *
 * ```
 * off 0    u32  TPML_PCR_SELECTION.count (≤ 16)
 * off 4    16 × TPMS_PCR_SELECTION, 8 bytes: u16 hash | u8 sizeofSelect (3) | u8[4] pcrSelect | u8 pad
 * off 132  u32  n = number of TPML_DIGEST that follow
 * off 136  n × TPML_DIGEST, 532 bytes: u32 count (≤ 8) | 8 × (u16 size | u8[64] buffer)
 * ```
 *
 * Digests are matched to the selected PCRs in selection order (bank by bank, index ascending).
 * This parser is stricter than upstream's: unused selection entries, pad bytes, unused digest
 * slots and the buffer bytes past each digest must be zero, and every digest must have its bank's
 * size, so any change to the blob is either rejected here or changes a PCR value (and so the
 * quote's pcrDigest). tpm2-tools and rust-keylime zero-fill all of these.
 *
 * @module
 */

import { ByteReader } from './byte-reader.ts'
import { ByteWriter } from './byte-writer.ts'
import { HASH_COUNT, TPM_ALG_ID } from './constants.ts'
import { TpmError } from './errors.ts'
import { indicesToPcrSelect, type PcrSelection, pcrSelectToIndices } from './pcr-selection.ts'

/** A PCR bank name as Keylime spells it. */
export type PcrBank = 'sha1' | 'sha256' | 'sha384' | 'sha512' | 'sm3_256'

/** TPM_ALG_ID → bank name and digest size, for the banks a PC-client TPM has. */
export const PCR_BANKS: ReadonlyMap<number, { name: PcrBank; size: number }> = new Map([
  [TPM_ALG_ID.SHA1, { name: 'sha1', size: 20 }],
  [TPM_ALG_ID.SHA256, { name: 'sha256', size: 32 }],
  [TPM_ALG_ID.SHA384, { name: 'sha384', size: 48 }],
  [TPM_ALG_ID.SHA512, { name: 'sha512', size: 64 }],
  [TPM_ALG_ID.SM3_256, { name: 'sm3_256', size: 32 }],
])

/** One PCR value from the blob. */
export interface PcrValue {
  /** TPM_ALG_ID of the bank. */
  hashAlg: number
  /** PCR index. */
  index: number
  /** The value (a view into the blob). */
  value: Uint8Array
}

/** A parsed PCR blob. */
export interface PcrBlob {
  /** The selection, in file order. */
  selection: PcrSelection[]
  /** Values in selection order (the order the quote's pcrDigest hashes them in). */
  values: PcrValue[]
}

const SEL_ENTRY = 8
const SEL_AREA = 4 + HASH_COUNT * SEL_ENTRY // 132
const DIGEST_SLOTS = 8
const DIGEST_SLOT = 2 + 64
const TPML_DIGEST = 4 + DIGEST_SLOTS * DIGEST_SLOT // 532
/** Upper bound on TPML_DIGEST records (16 banks × 24 PCRs / 8, with slack). */
const MAX_DIGEST_LISTS = 64

function bad(message: string): never {
  throw new TpmError('ERR_TPM_BAD_VALUE', message)
}

/**
 * Parses a serialized PCR blob.
 *
 * @throws {TpmError} `ERR_TPM_TRUNCATED`, `ERR_TPM_TRAILING_BYTES`, `ERR_TPM_BAD_VALUE`,
 *   `ERR_TPM_UNSUPPORTED` (a bank other than SHA-1/256/384/512/SM3).
 */
export function parsePcrBlob(bytes: Uint8Array): PcrBlob {
  const r = new ByteReader(bytes, { littleEndian: true })
  r.need(SEL_AREA + 4)
  const count = r.u32()
  if (count > HASH_COUNT) bad(`PCR selection count ${count}`)
  const selection: PcrSelection[] = []
  const slots: { hashAlg: number; index: number; size: number }[] = []
  for (let i = 0; i < HASH_COUNT; i++) {
    if (i >= count) {
      if (!r.zeros(SEL_ENTRY)) bad(`unused PCR selection ${i} not zero`)
      continue
    }
    const hashAlg = r.u16()
    const size = r.u8()
    if (size !== 3 && size !== 0) bad(`sizeofSelect ${size} (must be 3)`)
    const select = r.bytes(size)
    // the unused pcrSelect bytes and the pad byte
    if (!r.zeros(SEL_ENTRY - 3 - size)) bad('PCR selection padding not zero')
    const bank = PCR_BANKS.get(hashAlg)
    if (bank === undefined) {
      throw new TpmError('ERR_TPM_UNSUPPORTED', `PCR bank 0x${hashAlg.toString(16)}`)
    }
    const pcrs = pcrSelectToIndices(select)
    selection.push({ hashAlg, pcrs })
    for (const index of pcrs) slots.push({ hashAlg, index, size: bank.size })
  }
  const lists = r.u32()
  if (lists > MAX_DIGEST_LISTS) bad(`${lists} digest lists`)
  r.need(lists * TPML_DIGEST)
  const values: PcrValue[] = []
  for (let l = 0; l < lists; l++) {
    const n = r.u32()
    if (n > DIGEST_SLOTS) bad(`digest list count ${n}`)
    for (let j = 0; j < DIGEST_SLOTS; j++) {
      const size = r.u16()
      if (j >= n) {
        if (!r.zeros(64) || size !== 0) bad('unused digest slot not zero')
        continue
      }
      const slot = slots[values.length]
      if (slot === undefined) bad('more digests than selected PCRs')
      if (size !== slot.size) bad(`digest size ${size} for a ${slot.size}-byte bank`)
      values.push({ hashAlg: slot.hashAlg, index: slot.index, value: r.bytes(size) })
      if (!r.zeros(64 - size)) bad('digest padding not zero')
    }
  }
  if (values.length !== slots.length) bad(`${values.length} digests for ${slots.length} PCRs`)
  r.end()
  return { selection, values }
}

/**
 * Writes a serialized PCR blob (what tpm2-tools `tpm2_quote -o` / rust-keylime produce).
 * `values` must be in selection order.
 */
export function serializePcrBlob(
  selection: readonly PcrSelection[],
  values: readonly Uint8Array[],
): Uint8Array {
  if (selection.length > HASH_COUNT) bad('too many PCR banks')
  const total = selection.reduce((n, s) => n + s.pcrs.length, 0)
  if (total !== values.length) bad(`${values.length} values for ${total} selected PCRs`)
  const lists = Math.ceil(total / DIGEST_SLOTS)
  const w = new ByteWriter({ littleEndian: true, capacity: SEL_AREA + 4 + lists * TPML_DIGEST })
  w.u32(selection.length)
  for (let i = 0; i < HASH_COUNT; i++) {
    const s = selection[i]
    if (s === undefined) {
      w.zeros(SEL_ENTRY)
      continue
    }
    const sel = indicesToPcrSelect(s.pcrs, 3)
    w.u16(s.hashAlg).u8(3).bytes(sel).u8(0).u8(0)
  }
  w.u32(lists)
  for (let l = 0; l < lists; l++) {
    const chunk = values.slice(l * DIGEST_SLOTS, (l + 1) * DIGEST_SLOTS)
    w.u32(chunk.length)
    for (let j = 0; j < DIGEST_SLOTS; j++) {
      const v = chunk[j]
      if (v === undefined) {
        w.zeros(DIGEST_SLOT)
        continue
      }
      if (v.byteLength > 64) bad('digest longer than 64 bytes')
      w.u16(v.byteLength)
        .bytes(v)
        .zeros(64 - v.byteLength)
    }
  }
  return w.finish()
}

/** Groups PCR values by bank name and index. */
export function pcrValuesByBank(
  values: readonly PcrValue[],
): Map<PcrBank, Map<number, Uint8Array>> {
  const out = new Map<PcrBank, Map<number, Uint8Array>>()
  for (const v of values) {
    const bank = PCR_BANKS.get(v.hashAlg)
    if (bank === undefined) continue
    let m = out.get(bank.name)
    if (m === undefined) {
      m = new Map()
      out.set(bank.name, m)
    }
    m.set(v.index, v.value)
  }
  return out
}
