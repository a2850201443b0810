/**
 * The plain-data form of one quote check, passed to and from the check workers
 * (`check-worker.ts`, `check-pool.ts`): structured-clone friendly (no class instances, no
 * KeyObjects), and the conversions on both sides.
 *
 * @module
 */
import { type ImaAgentStateJson, imaStateFromJSON, imaStateToJSON } from '../ima/index.ts'
import type { BoundedCache } from '../protocol/bounded-cache.ts'
import type { AgentRecord, StoredClockInfo } from './agent-record.ts'
import type { CheckResult } from './check-quote.ts'
import { Failure, type SeverityRules } from './failure.ts'
import { parseTpmPolicy, type TpmPolicy } from './tpm-policy.ts'

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
}

/** A job: the record data, the agent's answer, the nonce and the policies by reference. */
export interface CheckJob {
  seq: number
  rec: CheckRecordData
  results: unknown
  nonce: string
  /** Runtime policy `id:version` (sent with `imaText` the first time a worker sees it). */
  imaKey: string | null
  imaText?: string
  mb: string | null
}

/** A finished job. */
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
      ima?: ImaAgentStateJson
    }
  | { seq: number; kind: 'reboot'; ima: ImaAgentStateJson }
  | { seq: number; kind: 'error'; error: string }

/** The data of a record for a job. */
export function recordData(rec: AgentRecord): CheckRecordData {
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
  }
}

/** Worker side: a record good enough for `checkQuoteAnswer` (AK parsed by the caller's cache). */
export function recordFromData(d: CheckRecordData, tpmPolicy: TpmPolicy): AgentRecord {
  return {
    id: d.id,
    state: 3,
    ip: '',
    port: 0,
    mtlsCert: null,
    v: null,
    encryptedV: null,
    publicKey: d.publicKey,
    tpmPolicyText: d.tpmPolicyText,
    tpmPolicy,
    metaData: '',
    imaPolicyId: null,
    mbPolicyId: null,
    imaSignVerificationKeys: d.imaSignVerificationKeys,
    revocationKey: '',
    akTpm: d.akTpm,
    akKey: undefined,
    acceptHash: d.acceptHash,
    acceptEnc: d.acceptEnc,
    acceptSign: d.acceptSign,
    hashAlg: '',
    encAlg: '',
    signAlg: '',
    supportedVersion: '',
    versionChecked: true,
    attestationCount: d.attestationCount,
    lastReceivedQuote: 0,
    lastSuccessfulAttestation: 0,
    clock: d.clock,
    ima: imaStateFromJSON(d.ima),
    severityLevel: null,
    lastEventId: null,
    verifierId: '',
    retries: 0,
    epoch: 0,
    busy: false,
    dirty: false,
    leaseUntil: 0,
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
  return {
    seq,
    kind: 'fail',
    events: r.failure.events.map((e) => ({
      event_id: e.event_id,
      context: e.context,
      recoverable: e.recoverable,
    })),
    ima: r.ima === undefined ? undefined : imaStateToJSON(r.ima),
  }
}

/**
 * Main side: the check result of a finished job. Failure events are re-added under the main
 * thread's severity rules (the same rules the worker applied), so `highest` and `recoverable`
 * come out identical.
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
      return {
        kind: 'fail',
        failure: f,
        ima: d.ima === undefined ? undefined : imaStateFromJSON(d.ima),
      }
    }
    default:
      throw new Error(`check worker: ${d.error}`)
  }
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
