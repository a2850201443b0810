/**
 * Parser of the UEFI TCG event log (`/sys/kernel/security/tpm0/binary_bios_measurements`), TCG PC
 * Client Platform Firmware Profile 1.05 §10.2 (TCG_PCClientPCREvent, TCG_EfiSpecIDEvent) and §10.2.2
 * (TCG_PCR_EVENT2, crypto-agile format). All integers are little-endian.
 *
 * - Crypto-agile: event 0 is a SHA1-format TCG_PCClientPCREvent of type EV_NO_ACTION whose data is
 *   "Spec ID Event03" with the algorithm list and digest sizes; events 1… are TCG_PCR_EVENT2 with one
 *   digest per listed algorithm.
 * - Legacy (TPM 1.2 style, SHA1 only): every event is a TCG_PCClientPCREvent; the first may be a
 *   "Spec ID Event00/02" EV_NO_ACTION header.
 *
 * Every length is checked against the bytes that remain before anything is read or allocated, so a
 * hostile log cannot make the parser allocate or loop more than its own size allows. Failures are
 * {@link MbError}s with the byte offset and event index.
 *
 * @module
 */

import { ByteReader } from '../tpm/byte-reader.ts'
import { isTpmError } from '../tpm/errors.ts'
import { type DecodedEvent, decodeEvent, hashName, type SpecIdAlgorithm } from './decode-event.ts'
import { decodeAsciiz, toHex } from './efi-text.ts'
import { MbError } from './errors.ts'
import { EVENT_TYPE, eventTypeName } from './event-types.ts'

/** One digest of an event. */
export interface EventDigest {
  /** TPM_ALG_ID. */
  algId: number
  /** `sha1`, `sha256`, … (`alg_0x…` when unknown). */
  alg: string
  /** The digest bytes (a view into the log). */
  digest: Uint8Array
}

/** One event of the log. */
export interface UefiEvent {
  /** Event number; 0 is the header event (as tpm2_eventlog's EventNum). */
  index: number
  /** Byte offset of the event in the log. */
  offset: number
  /** PCRIndex. */
  pcr: number
  /** EventType value. */
  type: number
  /** EventType name, `EV_UNKNOWN_0x…` when unknown. */
  typeName: string
  /** Digests in log order. */
  digests: EventDigest[]
  /** The event data (a view into the log). */
  data: Uint8Array
  /** The decoded event data. */
  decoded: DecodedEvent
}

/** A parsed event log. */
export interface EventLog {
  /** `crypto-agile` (TCG_PCR_EVENT2) or `sha1` (legacy TCG_PCClientPCREvent only). */
  format: 'crypto-agile' | 'sha1'
  /** The algorithms the log carries (from the Spec ID event, or sha1 for legacy logs). */
  algorithms: SpecIdAlgorithm[]
  /** All events, including the header (index 0). */
  events: UefiEvent[]
}

/** Options of {@link parseEventLog}. */
export interface ParseEventLogOptions {
  /** Decode event data (default true); when false every `decoded` is `{kind: 'raw'}`. */
  decode?: boolean
}

/** Known digest sizes; a Spec ID entry for these algorithms must state exactly this size. */
const KNOWN_SIZES: Readonly<Record<number, number>> = {
  0x0004: 20,
  0x000b: 32,
  0x000c: 48,
  0x000d: 64,
  0x0012: 32,
  0x0027: 32,
  0x0028: 48,
  0x0029: 64,
}

const MAX_ALGORITHMS = 16
const MAX_DIGEST_SIZE = 64
const MAX_PCR = 23
const RAW: DecodedEvent = Object.freeze({ kind: 'raw' }) as DecodedEvent

function parseSpecId(
  data: Uint8Array,
  where: { offset: number; eventIndex: number },
): DecodedEvent & { kind: 'spec-id' } {
  const r = new ByteReader(data, { littleEndian: true })
  const signature = decodeAsciiz(r.bytes(16))
  const platformClass = r.u32()
  const minor = r.u8()
  const major = r.u8()
  const errata = r.u8()
  const uintnSize = r.u8()
  const n = r.u32()
  if (n < 1 || n > MAX_ALGORITHMS) {
    throw new MbError(
      'ERR_MB_SPEC_ID',
      `Spec ID numberOfAlgorithms ${n} not in 1..${MAX_ALGORITHMS}`,
      where,
    )
  }
  if (uintnSize !== 1 && uintnSize !== 2) {
    throw new MbError('ERR_MB_SPEC_ID', `Spec ID uintnSize ${uintnSize} is not 1 or 2`, where)
  }
  const algorithms: SpecIdAlgorithm[] = []
  for (let i = 0; i < n; i++) {
    const algId = r.u16()
    const digestSize = r.u16()
    const known = KNOWN_SIZES[algId]
    if (
      known !== undefined ? digestSize !== known : digestSize < 1 || digestSize > MAX_DIGEST_SIZE
    ) {
      throw new MbError(
        'ERR_MB_SPEC_ID',
        `Spec ID digest size ${digestSize} wrong for ${hashName(algId)}`,
        where,
      )
    }
    if (algorithms.some((a) => a.algId === algId)) {
      throw new MbError('ERR_MB_SPEC_ID', `Spec ID lists ${hashName(algId)} twice`, where)
    }
    algorithms.push({ algId, alg: hashName(algId), digestSize })
  }
  const vendorInfo = toHex(r.bytes(r.u8()))
  if (r.remaining !== 0) {
    throw new MbError('ERR_MB_SPEC_ID', `Spec ID event has ${r.remaining} trailing bytes`, where)
  }
  return {
    kind: 'spec-id',
    signature,
    platformClass,
    specVersion: `${major}.${minor}.${errata}`,
    uintnSize,
    algorithms,
    vendorInfo,
  }
}

function checkPcr(pcr: number, where: { offset: number; eventIndex: number }): void {
  if (pcr > MAX_PCR)
    throw new MbError('ERR_MB_PCR_INDEX', `PCRIndex ${pcr} is not 0..${MAX_PCR}`, where)
}

function eventData(r: ByteReader, where: { offset: number; eventIndex: number }): Uint8Array {
  const size = r.u32()
  if (size > r.remaining) {
    throw new MbError(
      'ERR_MB_EVENT_SIZE',
      `EventSize ${size} exceeds the ${r.remaining} bytes left`,
      where,
    )
  }
  return r.bytes(size)
}

const SHA1: SpecIdAlgorithm = { algId: 0x0004, alg: 'sha1', digestSize: 20 }

/**
 * Parses a binary UEFI event log.
 *
 * @example
 * ```ts
 * const log = parseEventLog(await Bun.file('/sys/kernel/security/tpm0/binary_bios_measurements').bytes())
 * for (const ev of log.events) console.log(ev.index, ev.pcr, ev.typeName)
 * ```
 * @throws {MbError} `ERR_MB_EMPTY`, `ERR_MB_TRUNCATED`, `ERR_MB_SPEC_ID`, `ERR_MB_DIGEST_COUNT`,
 *   `ERR_MB_UNKNOWN_ALG`, `ERR_MB_EVENT_SIZE`, `ERR_MB_PCR_INDEX`, each with offset and event index.
 */
export function parseEventLog(bytes: Uint8Array, opts: ParseEventLogOptions = {}): EventLog {
  if (bytes.length === 0)
    throw new MbError('ERR_MB_EMPTY', 'the event log is empty', { offset: 0, eventIndex: 0 })
  const decode = opts.decode !== false
  const r = new ByteReader(bytes, { littleEndian: true })
  const events: UefiEvent[] = []
  const where = { offset: 0, eventIndex: 0 }
  try {
    // Event 0: always the SHA1-format TCG_PCClientPCREvent.
    const pcr0 = r.u32()
    checkPcr(pcr0, where)
    const type0 = r.u32()
    const digest0 = r.bytes(20)
    const data0 = eventData(r, where)
    const isAgile =
      type0 === EVENT_TYPE.EV_NO_ACTION &&
      data0.length >= 16 &&
      decodeAsciiz(data0.subarray(0, 16)) === 'Spec ID Event03'
    let algorithms: SpecIdAlgorithm[] = [SHA1]
    let decoded0: DecodedEvent
    if (isAgile) {
      const spec = parseSpecId(data0, where)
      algorithms = spec.algorithms
      decoded0 = spec
    } else {
      decoded0 = decode ? decodeEvent(type0, data0) : RAW
    }
    events.push({
      index: 0,
      offset: 0,
      pcr: pcr0,
      type: type0,
      typeName: eventTypeName(type0),
      digests: [{ algId: SHA1.algId, alg: SHA1.alg, digest: digest0 }],
      data: data0,
      decoded: decoded0,
    })
    const sizeById = new Map(algorithms.map((a) => [a.algId, a]))
    while (r.remaining > 0) {
      where.offset = r.offset
      where.eventIndex = events.length
      const pcr = r.u32()
      checkPcr(pcr, where)
      const type = r.u32()
      const digests: EventDigest[] = []
      if (isAgile) {
        const count = r.u32()
        if (count < 1 || count > algorithms.length) {
          throw new MbError(
            'ERR_MB_DIGEST_COUNT',
            `digest count ${count} not in 1..${algorithms.length}`,
            where,
          )
        }
        for (let i = 0; i < count; i++) {
          const algId = r.u16()
          const a = sizeById.get(algId)
          if (a === undefined || digests.some((d) => d.algId === algId)) {
            throw new MbError(
              'ERR_MB_UNKNOWN_ALG',
              `digest algorithm ${hashName(algId)} not in the Spec ID event or repeated`,
              where,
            )
          }
          digests.push({ algId, alg: a.alg, digest: r.bytes(a.digestSize) })
        }
      } else {
        digests.push({ algId: SHA1.algId, alg: SHA1.alg, digest: r.bytes(20) })
      }
      const data = eventData(r, where)
      events.push({
        index: where.eventIndex,
        offset: where.offset,
        pcr,
        type,
        typeName: eventTypeName(type),
        digests,
        data,
        decoded: decode ? decodeEvent(type, data) : RAW,
      })
    }
    return { format: isAgile ? 'crypto-agile' : 'sha1', algorithms, events }
  } catch (e) {
    if (isTpmError(e)) {
      throw new MbError('ERR_MB_TRUNCATED', `the event log ends inside an event: ${e.message}`, {
        ...where,
        cause: e,
      })
    }
    throw e
  }
}
