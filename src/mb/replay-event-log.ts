/**
 * PCR replay of a parsed UEFI event log, per TCG PC Client PFP 1.05 §10.4.5 and §3.3.4.3:
 *
 * - every bank the log carries and we can hash (sha1, sha256, sha384, sha512) is replayed;
 * - all PCRs start at zero, except PCR 0, which starts at `00…0<locality>` when the log has a
 *   StartupLocality EV_NO_ACTION event (PFP §10.4.5.3; go-attestation and tpm2-tools ≥ 5.6 agree);
 * - EV_NO_ACTION events are never extended (Debian 12's tpm2-tools 5.4 extends them, which upstream
 *   Keylime inherits; we follow the specification — see reference/wire-formats.md §7.3);
 * - every other event extends `PCR = H(PCR ‖ digest)` with its digest for that bank.
 *
 * @module
 */

import { createHash } from 'node:crypto'
import { HASH_SIZE, type HashAlg, isHashAlg } from '../tpm/constants.ts'
import { EVENT_TYPE } from './event-types.ts'
import type { EventLog } from './parse-event-log.ts'

/** PCR values by bank, then index. */
export type PcrBanks = Map<string, Map<number, Uint8Array>>

/** The outcome of {@link replayEventLog}. */
export interface ReplayResult {
  /** Replayed values of PCRs 0–23 for every replayable bank. */
  pcrs: Map<HashAlg, Map<number, Uint8Array>>
  /** The StartupLocality the log records, or null. */
  startupLocality: number | null
}

/** Number of PCRs replayed (0–23). */
export const PCR_COUNT = 24

/** The StartupLocality of the log (the last such EV_NO_ACTION event in PCR 0), or null. */
export function startupLocality(log: EventLog): number | null {
  let loc: number | null = null
  for (const ev of log.events) {
    if (
      ev.type === EVENT_TYPE.EV_NO_ACTION &&
      ev.pcr === 0 &&
      ev.decoded.kind === 'startup-locality'
    ) {
      loc = ev.decoded.locality
    }
  }
  return loc
}

/** The initial value of PCR `index` in `bank` for a log with StartupLocality `locality`. */
export function initialPcr(bank: HashAlg, index: number, locality: number | null): Uint8Array {
  const v = new Uint8Array(HASH_SIZE[bank])
  if (index === 0 && locality !== null) v[v.length - 1] = locality
  return v
}

/** The replayable banks of a log (its algorithms that Node can hash as PCR banks). */
export function replayableBanks(log: EventLog): HashAlg[] {
  return log.algorithms.map((a) => a.alg).filter((a): a is HashAlg => isHashAlg(a))
}

/**
 * Replays the log into PCR values for every replayable bank.
 *
 * @example
 * ```ts
 * const { pcrs } = replayEventLog(parseEventLog(bytes))
 * pcrs.get('sha256')?.get(0) // replayed PCR 0
 * ```
 */
export function replayEventLog(log: EventLog): ReplayResult {
  const locality = startupLocality(log)
  const pcrs = new Map<HashAlg, Map<number, Uint8Array>>()
  for (const bank of replayableBanks(log)) {
    const values = new Map<number, Uint8Array>()
    for (let i = 0; i < PCR_COUNT; i++) values.set(i, initialPcr(bank, i, locality))
    pcrs.set(bank, values)
  }
  for (const ev of log.events) {
    if (ev.type === EVENT_TYPE.EV_NO_ACTION) continue
    for (const d of ev.digests) {
      const values = pcrs.get(d.alg as HashAlg)
      if (values === undefined) continue
      const old = values.get(ev.pcr) as Uint8Array
      values.set(ev.pcr, createHash(d.alg).update(old).update(d.digest).digest())
    }
  }
  return { pcrs, startupLocality: locality }
}
