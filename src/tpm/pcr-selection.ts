/**
 * TPML_PCR_SELECTION (TCG TPM 2.0 Library Part 2 §10.9.7) and TPMS_PCR_SELECTION (§10.6.2):
 * `count u32 | count × {hash u16 | sizeofSelect u8 | pcrSelect[sizeofSelect]}`. Bit `i % 8` of
 * byte `i / 8` selects PCR `i`.
 *
 * @module
 */

import { ByteReader } from './byte-reader.ts'
import type { ByteWriter } from './byte-writer.ts'
import { DIGEST_SIZE_BY_ALG, HASH_COUNT, PCR_SELECT_MAX } from './constants.ts'
import { TpmError } from './errors.ts'

/** One bank's selection: the bank's hash algorithm and the selected PCR indices, ascending. */
export interface PcrSelection {
  /** TPM_ALG_ID of the bank. */
  hashAlg: number
  /** Selected PCR indices, ascending, no duplicates. */
  pcrs: number[]
}

/** Decodes a pcrSelect bitmap into ascending PCR indices. */
export function pcrSelectToIndices(select: Uint8Array): number[] {
  const out: number[] = []
  for (let byte = 0; byte < select.byteLength; byte++) {
    const v = select[byte] ?? 0
    for (let bit = 0; bit < 8; bit++) if ((v >> bit) & 1) out.push(byte * 8 + bit)
  }
  return out
}

/** Encodes PCR indices into a pcrSelect bitmap of `size` bytes (default 3: 24 PCRs). */
export function indicesToPcrSelect(pcrs: readonly number[], size = 3): Uint8Array {
  const out = new Uint8Array(size)
  for (const i of pcrs) {
    if (!Number.isInteger(i) || i < 0 || i >= size * 8) {
      throw new TpmError('ERR_TPM_BAD_VALUE', `PCR index ${i} out of range`)
    }
    out[i >> 3] = (out[i >> 3] ?? 0) | (1 << (i & 7))
  }
  return out
}

/** Reads a TPML_PCR_SELECTION at the reader's cursor. */
export function readPcrSelection(r: ByteReader): PcrSelection[] {
  const count = r.u32()
  if (count > HASH_COUNT) throw new TpmError('ERR_TPM_BAD_VALUE', `PCR selection count ${count}`)
  const out: PcrSelection[] = []
  for (let i = 0; i < count; i++) {
    const hashAlg = r.u16()
    if (DIGEST_SIZE_BY_ALG[hashAlg] === undefined) {
      throw new TpmError('ERR_TPM_BAD_VALUE', `PCR bank 0x${hashAlg.toString(16)} unknown`)
    }
    const size = r.u8()
    if (size > PCR_SELECT_MAX) throw new TpmError('ERR_TPM_BAD_VALUE', `sizeofSelect ${size}`)
    out.push({ hashAlg, pcrs: pcrSelectToIndices(r.bytes(size)) })
  }
  return out
}

/**
 * Parses a standalone TPML_PCR_SELECTION (no trailing bytes allowed).
 *
 * @throws {TpmError} `ERR_TPM_TRUNCATED`, `ERR_TPM_TRAILING_BYTES`, `ERR_TPM_BAD_VALUE`.
 */
export function parsePcrSelection(bytes: Uint8Array): PcrSelection[] {
  const r = new ByteReader(bytes)
  const sel = readPcrSelection(r)
  r.end()
  return sel
}

/** Writes a TPML_PCR_SELECTION with 3-byte pcrSelect maps (24 PCRs, as PC-client TPMs use). */
export function writePcrSelection(w: ByteWriter, sel: readonly PcrSelection[]): void {
  if (sel.length > HASH_COUNT) throw new TpmError('ERR_TPM_BAD_VALUE', 'too many PCR banks')
  w.u32(sel.length)
  for (const s of sel) w.u16(s.hashAlg).u8(3).bytes(indicesToPcrSelect(s.pcrs, 3))
}

/** True if two selections name the same banks and PCRs in the same order. */
export function samePcrSelection(a: readonly PcrSelection[], b: readonly PcrSelection[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) {
    const x = a[i]
    const y = b[i]
    if (x === undefined || y === undefined || x.hashAlg !== y.hashAlg) return false
    if (x.pcrs.length !== y.pcrs.length) return false
    for (let j = 0; j < x.pcrs.length; j++) if (x.pcrs[j] !== y.pcrs[j]) return false
  }
  return true
}
