/**
 * Compares quoted PCRs with the values replayed from the event log and, for a mismatch, finds the
 * event that cannot be reconciled: when some prefix of the PCR's events reproduces the quoted value,
 * the first event after that prefix (the log ran ahead of the TPM, or that event was forged);
 * otherwise the PCR's first event (no prefix of the log explains the TPM's value).
 *
 * @module
 */

import { createHash, timingSafeEqual } from 'node:crypto'
import type { HashAlg } from '../tpm/constants.ts'
import { toHex } from './efi-text.ts'
import { EVENT_TYPE } from './event-types.ts'
import type { EventLog, UefiEvent } from './parse-event-log.ts'
import { initialPcr, startupLocality } from './replay-event-log.ts'

/** One PCR whose quoted value differs from the replayed one. */
export interface PcrMismatch {
  /** PCR index. */
  pcr: number
  /** Bank. */
  bank: HashAlg
  /** Quoted value, hex. */
  got: string
  /** Replayed value, hex. */
  expected: string
  /** Number of events extended into this PCR. */
  events: number
  /** Events of this PCR that the quote does reflect (a matching prefix), or null if none does. */
  matchingPrefix: number | null
  /** The event that cannot be reconciled, or null when the PCR has no events. */
  event: { index: number; offset: number; pcr: number; type: string; digest: string } | null
}

function same(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

/** Explains a mismatch of PCR `pcr` (see the module header). */
export function explainMismatch(
  log: EventLog,
  bank: HashAlg,
  pcr: number,
  quoted: Uint8Array,
  replayed: Uint8Array,
): PcrMismatch {
  const evs: Array<{ ev: UefiEvent; digest: Uint8Array }> = []
  for (const ev of log.events) {
    if (ev.pcr !== pcr || ev.type === EVENT_TYPE.EV_NO_ACTION) continue
    const d = ev.digests.find((x) => x.alg === bank)
    if (d !== undefined) evs.push({ ev, digest: d.digest })
  }
  let v = initialPcr(bank, pcr, startupLocality(log))
  let prefix: number | null = same(v, quoted) ? 0 : null
  for (let i = 0; i < evs.length && prefix === null; i++) {
    v = createHash(bank)
      .update(v)
      .update((evs[i] as { digest: Uint8Array }).digest)
      .digest()
    if (same(v, quoted)) prefix = i + 1
  }
  const culprit = evs[prefix ?? 0]
  return {
    pcr,
    bank,
    got: toHex(quoted),
    expected: toHex(replayed),
    events: evs.length,
    matchingPrefix: prefix,
    event:
      culprit === undefined
        ? null
        : {
            index: culprit.ev.index,
            offset: culprit.ev.offset,
            pcr,
            type: culprit.ev.typeName,
            digest: toHex(culprit.digest),
          },
  }
}

/**
 * Compares `quoted` (PCR index → value of `bank`) with `replayed` for the PCRs in `indices`, in
 * ascending order; returns the mismatches (first one first).
 */
export function comparePcrs(
  log: EventLog,
  bank: HashAlg,
  replayed: ReadonlyMap<number, Uint8Array>,
  quoted: ReadonlyMap<number, Uint8Array>,
  indices: Iterable<number>,
): PcrMismatch[] {
  const out: PcrMismatch[] = []
  for (const i of [...indices].sort((a, b) => a - b)) {
    const q = quoted.get(i)
    const r = replayed.get(i)
    if (q === undefined || r === undefined) continue
    if (!same(q, r)) out.push(explainMismatch(log, bank, i, q, r))
  }
  return out
}
