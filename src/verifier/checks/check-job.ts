/**
 * The plain-data form of the check workers' jobs (`check-worker.ts`, `check-pool.ts`): a quote
 * check of a pull round, or a `/verify/evidence` body. Structured-clone friendly (no class
 * instances, no KeyObjects), with the conversions on both sides. A failed check's events are
 * capped on the way back ({@link MAX_SENT_EVENTS}): a hostile IMA list can yield one per line, and
 * cloning 600,000 of them would hold the main thread as long as the check itself.
 *
 * @module
 */
import { type ImaAgentStateJson, imaStateFromJSON, imaStateToJSON } from '../../ima/index.ts'
import { BoundedCache } from '../../protocol/bounded-cache.ts'
import type { StoredClockInfo } from './quote-timing.ts'
import type { CheckResult, RoundRecord } from './check-quote.ts'
import { VerifierError } from '../errors.ts'
import type { EvidenceVerdict } from './evidence-request.ts'
import { Failure, keptEvents, type SeverityRules } from './failure.ts'
import { parseTpmPolicy, type TpmPolicy } from '../../protocol/tpm-policy.ts'

/** The record fields the checks read. */
export interface CheckRecordData {
  id: string
  publicKey: string
  akTpm: string
  acceptHash: readonly unknown[]
  acceptEnc: readonly unknown[]
  acceptSign: readonly unknown[]
  clock: StoredClockInfo
  tpmPolicyText: string
  imaSignVerificationKeys: string
  attestationCount: number
  ima: ImaAgentStateJson
  push?: boolean
}

/**
 * Runtime policies a worker keeps compiled (by `id:version`); at this many it drops them all
 * before taking the next. The pool mirrors the rule to know which texts a worker still holds.
 */
export const WORKER_POLICY_SLOTS = 16

/**
 * Measured-boot policies a worker keeps parsed (by `id:version`), bounded in entries and in text
 * bytes. The pool keeps the same cache of text lengths to know which texts a worker still holds.
 */
export function mbPolicySlots<V>(textLength: (v: V) => number): BoundedCache<V> {
  return new BoundedCache<V>({
    maxEntries: WORKER_POLICY_SLOTS,
    maxBytes: 16 * 1024 * 1024,
    sizeOf: textLength,
  })
}

/** Failure events a worker sends back at most (plus the highest; the rest are counted). */
export const MAX_SENT_EVENTS = 100

/** A quote job: the record data, the agent's answer, the nonce and the policies by reference. */
export interface CheckJob {
  type: 'quote'
  seq: number
  rec: CheckRecordData
  results: unknown
  /** The pull nonce, or a push challenge's bytes. */
  nonce: string | Uint8Array
  /** Runtime policy `id:version` (sent with `imaText` the first time a worker sees it). */
  imaKey: string | null
  imaText?: string
  /**
   * Measured-boot policy `id:version`, or null/absent: `mb` is the whole story (no policy, or
   * one the caller did not key).
   */
  mbKey?: string | null
  /** MB refstate text; with `mbKey` only the first time a worker sees it, else null. */
  mb: string | null
}

/** An evidence job: a `POST /verify/evidence` body, transferred (not copied) to the worker. */
export interface EvidenceJob {
  type: 'evidence'
  seq: number
  body: ArrayBuffer
}

/** A finished job (`error`: it threw, which is a bug or a resource limit, never re-run). */
export type CheckJobResult =
  | {
      seq: number
      kind: 'pass'
      updates: {
        publicKey: string
        hashAlg: string
        encAlg: string
        signAlg: string
        clock: StoredClockInfo
        ima: ImaAgentStateJson
      }
      nkChanged: boolean
    }
  | {
      seq: number
      kind: 'fail'
      events: { event_id: string; context: Record<string, unknown>; recoverable: boolean }[]
      /** False when any event, sent or not, was irrecoverable. */
      recoverable: boolean
      /** Events not sent. */
      omitted: number
      ima?: ImaAgentStateJson
    }
  | { seq: number; kind: 'reboot'; ima: ImaAgentStateJson }
  | { seq: number; kind: 'evidence'; verdict: EvidenceVerdict }
  | { seq: number; kind: 'error'; error: string }

/** The data of a record for a job. */
export function recordData(rec: RoundRecord): CheckRecordData {
  return {
    id: rec.id,
    publicKey: rec.publicKey,
    akTpm: rec.akTpm,
    acceptHash: rec.acceptHash,
    acceptEnc: rec.acceptEnc,
    acceptSign: rec.acceptSign,
    clock: rec.clock,
    tpmPolicyText: rec.tpmPolicyText,
    imaSignVerificationKeys: rec.imaSignVerificationKeys,
    attestationCount: rec.attestationCount,
    ima: imaStateToJSON(rec.ima),
    push: rec.push,
  }
}

/** Worker side: the record a round's checks read (the AK is parsed by the caller's cache). */
export function recordFromData(d: CheckRecordData, tpmPolicy: TpmPolicy): RoundRecord {
  return {
    id: d.id,
    publicKey: d.publicKey,
    akTpm: d.akTpm,
    akKey: undefined,
    acceptHash: d.acceptHash,
    acceptEnc: d.acceptEnc,
    acceptSign: d.acceptSign,
    clock: d.clock,
    tpmPolicyText: d.tpmPolicyText,
    tpmPolicy,
    imaSignVerificationKeys: d.imaSignVerificationKeys,
    attestationCount: d.attestationCount,
    ima: imaStateFromJSON(d.ima),
    push: d.push,
  }
}

/** Worker side: a check result as plain data. */
export function resultToData(seq: number, r: CheckResult): CheckJobResult {
  if (r.kind === 'pass') {
    return {
      seq,
      kind: 'pass',
      updates: { ...r.updates, ima: imaStateToJSON(r.updates.ima) },
      nkChanged: r.nkChanged,
    }
  }
  if (r.kind === 'reboot') return { seq, kind: 'reboot', ima: imaStateToJSON(r.ima) }
  const events = keptEvents(r.failure, MAX_SENT_EVENTS)
  return {
    seq,
    kind: 'fail',
    events: events.map((e) => ({
      event_id: e.event_id,
      context: e.context,
      recoverable: e.recoverable,
    })),
    recoverable: r.failure.recoverable,
    omitted: r.failure.events.length - events.length + r.failure.omitted,
    ima: r.ima === undefined ? undefined : imaStateToJSON(r.ima),
  }
}

/**
 * Main side: the check result of a finished quote job. Failure events are re-added under the main
 * thread's severity rules (the same rules the worker applied), so `highest` and `recoverable`
 * come out identical.
 *
 * @throws VerifierError `ERR_VERIFIER_CHECK_FAILED` for an `error` (or non-quote) result
 */
export function resultFromData(d: CheckJobResult, rules: SeverityRules): CheckResult {
  switch (d.kind) {
    case 'pass':
      return {
        kind: 'pass',
        updates: { ...d.updates, ima: imaStateFromJSON(d.updates.ima) },
        nkChanged: d.nkChanged,
      }
    case 'reboot':
      return { kind: 'reboot', ima: imaStateFromJSON(d.ima) }
    case 'fail': {
      const f = new Failure(rules)
      for (const e of d.events) f.add(e.event_id, e.context, e.recoverable)
      if (!d.recoverable) f.recoverable = false
      f.omitted = d.omitted
      return {
        kind: 'fail',
        failure: f,
        ima: d.ima === undefined ? undefined : imaStateFromJSON(d.ima),
      }
    }
    case 'error':
      throw new VerifierError('ERR_VERIFIER_CHECK_FAILED', `check worker: ${d.error}`)
    default:
      throw new VerifierError('ERR_VERIFIER_CHECK_FAILED', `check worker: ${d.kind} answer`)
  }
}

/** A cache for {@link cachedTpmPolicy}: keyed by enrolment text, bounded in entries and bytes. */
export function tpmPolicyCache(): BoundedCache<TpmPolicy> {
  return new BoundedCache<TpmPolicy>({
    maxEntries: 1024,
    maxBytes: 16 * 1024 * 1024,
    sizeOf: () => 256,
  })
}

/** Parses a `tpm_policy` text once per distinct text (cache bounded in entries and bytes). */
export function cachedTpmPolicy(cache: BoundedCache<TpmPolicy>, text: string): TpmPolicy {
  let p = cache.get(text)
  if (p === undefined) {
    try {
      p = parseTpmPolicy(text)
    } catch {
      p = { mask: 0, pcrs: new Map() } // as recordFromRow: a stored policy that no longer parses
    }
    cache.set(text, p)
  }
  return p
}
