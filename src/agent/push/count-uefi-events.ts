/**
 * The UEFI log's event count for push capabilities (`uefi_log.capabilities.entry_count`), as
 * rust-keylime's `UefiLogHandler::get_entry_count`: the TCG_PCR_EVENT2 events after the
 * TCG_EfiSpecIdEvent header (TCG PC Client Platform Firmware Profile §10.2). Only the framing is
 * walked (digest sizes from the header); the agent bundle leaves src/mb's full parser out.
 *
 * @module
 */

import { ByteReader } from '../../tpm/byte-reader.ts'
import { DIGEST_SIZE_BY_ALG } from '../../tpm/constants.ts'

/** EV_NO_ACTION: the header event's type. */
const EV_NO_ACTION = 0x3

/**
 * Counts the events of a crypto-agile event log; 0 for an empty or unparsable log (the
 * verifier does not check this number; the log itself is sent whole when asked for).
 */
export function countUefiEvents(log: Uint8Array | undefined): number {
  if (log === undefined || log.byteLength === 0) return 0
  const r = new ByteReader(log, { littleEndian: true })
  try {
    if (r.u32() !== 0 || r.u32() !== EV_NO_ACTION) return 0
    r.skip(20)
    const spec = new ByteReader(r.bytes(r.u32()), { littleEndian: true })
    spec.skip(16 + 4 + 4) // signature, platformClass, version/errata/uintnSize
    const sizes = new Map<number, number>()
    const algs = spec.u32()
    for (let i = 0; i < algs; i++) sizes.set(spec.u16(), spec.u16())
    let count = 0
    while (r.remaining > 0) {
      r.skip(8) // pcrIndex, eventType
      const digests = r.u32()
      for (let i = 0; i < digests; i++) {
        const alg = r.u16()
        const size = sizes.get(alg) ?? DIGEST_SIZE_BY_ALG[alg]
        if (size === undefined) return count
        r.skip(size)
      }
      r.skip(r.u32())
      count++
    }
    return count
  } catch {
    return 0
  }
}
