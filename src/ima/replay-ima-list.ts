/**
 * Replays an ASCII IMA measurement list (wire-formats §7.1) onto PCR 10 for any set of banks, as
 * the kernel extends it: `PCR = H_bank(PCR ‖ H_bank(template data))`, and for a ToMToU/violation
 * entry (all-zero template hash) `PCR = H_bank(PCR ‖ ff…ff)`. The template data is rebuilt from
 * the parsed line, so a legacy list (column 2 = SHA-1 template hash) replays the SHA-256 bank too.
 *
 * Simulated agents use it to set PCR 10 of their soft TPM to what a real guest's list implies, and
 * tests use it to check a captured list against the PCR 10 its swtpm reported.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { HASH_SIZE, type HashAlg } from '../tpm/constants.ts'
import { AsciiEntryParser } from './ascii-entry-parser.ts'
import { isAllZero } from './hex.ts'

/** Result of {@link replayImaList}. */
export interface ImaReplay {
  /** PCR 10 after the whole list, by bank. */
  pcr10: Map<HashAlg, Uint8Array>
  /** Number of entries (non-empty lines) replayed. */
  entries: number
}

/**
 * Replays `list` for each of `banks`, starting from all-zero PCRs.
 *
 * @throws {ImaError} a parser code (`ERR_IMA_LINE_FORMAT`, `ERR_IMA_BAD_HEX`, …) for a bad line.
 *
 * @example
 * ```ts
 * const { pcr10 } = replayImaList(readFileSync('ascii_runtime_measurements', 'utf8'), ['sha1', 'sha256'])
 * ```
 */
export function replayImaList(list: string, banks: readonly HashAlg[]): ImaReplay {
  const parser = new AsciiEntryParser()
  const pcr10 = new Map<HashAlg, Uint8Array>()
  for (const b of new Set(banks)) pcr10.set(b, new Uint8Array(HASH_SIZE[b]))
  let entries = 0
  let lineNo = 0
  for (const line of list.split('\n')) {
    lineNo++
    if (line === '') continue
    const e = parser.parse(line, lineNo)
    entries++
    const th = Buffer.from(e.templateHash, 'hex')
    const violation = isAllZero(th)
    for (const [b, v] of pcr10) {
      const d = violation
        ? new Uint8Array(HASH_SIZE[b]).fill(0xff)
        : createHash(b).update(e.templateData).digest()
      pcr10.set(b, createHash(b).update(v).update(d).digest())
    }
  }
  return { pcr10, entries }
}
