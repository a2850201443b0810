/**
 * The in-memory record of an agent this verifier instance polls. Built from its `verifiermain`
 * row when the instance takes the agent (enrolment, start, lease claim); the poll loop keeps it
 * authoritative for the columns it owns and writes them back in batches (`AgentSnapshot`).
 *
 * @module
 */
import type { KeyObject } from 'node:crypto'
import {
  type ImaAgentState,
  type ImaKeyring,
  imaStateFromJSON,
  imaStateToJSON,
  initialImaState,
} from '../../ima/index.ts'
import { MAX_PUBLIC_KEY_PEM } from '../../protocol/read-rsa-public-key-pem.ts'
import type { AgentTarget } from '../../http/agent-client/agent-connections.ts'
import type { AgentRow, AgentSnapshot, HotSnapshot } from '../store/store.ts'
import { parseTpmPolicy, type TpmPolicy } from '../../protocol/tpm-policy.ts'
import type { StoredClockInfo } from '../checks/quote-timing.ts'
import { AGENT_STATES } from '../../protocol/agent-states.ts'

/** What the tenant enrolled (and the registrar vouched for): read, never written, by the loop. */
export interface AgentEnrolment {
  readonly id: string
  ip: string
  port: number
  /** Pinned agent certificate, or null for plain HTTP. */
  mtlsCert: string | null
  /** V (base64) or null. */
  v: string | null
  tpmPolicyText: string
  tpmPolicy: TpmPolicy
  metaData: string
  imaPolicyId: number | null
  mbPolicyId: number | null
  imaSignVerificationKeys: string
  revocationKey: string
  akTpm: string
  acceptHash: readonly unknown[]
  acceptEnc: readonly unknown[]
  acceptSign: readonly unknown[]
  verifierId: string
  /** A push-mode agent (`mode = push`): never polled, only watched for liveness. */
  push: boolean
}

/** The attestation state the loop owns and writes back (`AgentSnapshot`). */
export interface AgentAttestationState {
  /** Operational state (`AGENT_STATES`). */
  state: number
  /** NK public key PEM ('' until fetched). */
  publicKey: string
  hashAlg: string
  encAlg: string
  signAlg: string
  supportedVersion: string
  attestationCount: number
  lastReceivedQuote: number
  lastSuccessfulAttestation: number
  clock: StoredClockInfo
  ima: ImaAgentState
  severityLevel: number | null
  lastEventId: string | null
}

/** Values derived from the fields above, built on first use and kept for the record's life. */
export interface AgentDerived {
  /** AK KeyObject, parsed once. */
  akKey: KeyObject | undefined
  /** Cached `b64(OAEP(NK, V))`; cleared when the NK changes. */
  encryptedV: string | null
  /** The keyring of `imaSignVerificationKeys` (null: none or invalid; undefined: not built). */
  tenantKeyring?: ImaKeyring | null
  /** The agent's address as the connection pool takes it. */
  target?: AgentTarget
}

/** The loop's scheduling of the record's rounds. */
export interface AgentScheduling {
  /** Consecutive communication retries. */
  retries: number
  /** Bumped by API actions: a round started under an older epoch discards its result. */
  epoch: number
  /** A round is in flight. */
  busy: boolean
  /** A reserved connection slot (the round was deferred to it; `agent-connections.ts`). */
  connectReserved?: boolean
}

/** Database bookkeeping: batched writes and the lease. */
export interface AgentPersistence {
  /** The state snapshot has changes not yet written. */
  dirty: boolean
  /** {@link coldValuesOf} as last written (undefined: never written by this process). */
  written?: readonly unknown[]
  /**
   * Until when this process knows its lease on the row holds (epoch ms): set by a claim, a
   * renewal or a snapshot write that extended it; 0 until then.
   */
  leaseUntil: number
}

/** An agent being polled: one flat object (the hot path reads it every round), typed in groups. */
export interface AgentRecord
  extends AgentEnrolment, AgentAttestationState, AgentDerived, AgentScheduling, AgentPersistence {}

/** The initial clock state of upstream. */
export function initialClock(): StoredClockInfo {
  return { clock: 0, resetcount: 0, restartcount: 0, safe: 1 }
}

function num(v: unknown, d = 0): number {
  const n = typeof v === 'string' ? Number(v) : v
  return typeof n === 'number' && Number.isFinite(n) ? n : d
}

function list(v: unknown): readonly unknown[] {
  if (Array.isArray(v)) return v
  if (typeof v === 'string') {
    try {
      const p = JSON.parse(v)
      if (Array.isArray(p)) return p
    } catch {
      // fall through
    }
  }
  return []
}

/** The `tpm_policy` column as the string the tenant sent. */
export function tpmPolicyText(v: unknown): string {
  if (typeof v === 'string') return v
  if (v === null || v === undefined) return ''
  return JSON.stringify(v)
}

function imaFromRow(row: AgentRow): ImaAgentState {
  try {
    const pcrs = (row.ima_pcrs ?? {}) as {
      pcr10?: Record<string, string>
      quote_progress?: unknown
    }
    const pcr10 = pcrs && typeof pcrs === 'object' && !Array.isArray(pcrs) ? (pcrs.pcr10 ?? {}) : {}
    return imaStateFromJSON({
      next_ima_ml_entry: row.next_ima_ml_entry ?? 0,
      pcr10,
      boottime: num(row.boottime),
      learned_ima_keyrings: row.learned_ima_keyrings ?? {},
      quote_progress: Array.isArray(pcrs) ? null : (pcrs.quote_progress ?? null),
    })
  } catch {
    return initialImaState()
  }
}

/** Builds the record of a row. */
export function recordFromRow(row: AgentRow): AgentRecord {
  const text = tpmPolicyText(row.tpm_policy)
  let policy: TpmPolicy
  try {
    policy = parseTpmPolicy(text)
  } catch {
    policy = { mask: 0, pcrs: new Map() }
  }
  const ci = (row.tpm_clockinfo ?? null) as Partial<StoredClockInfo> | null
  return {
    id: row.agent_id,
    state: row.operational_state ?? AGENT_STATES.START,
    ip: row.ip ?? '',
    port: row.port ?? 0,
    mtlsCert: row.mtls_cert && row.mtls_cert !== 'disabled' ? row.mtls_cert : null,
    v: row.v ?? null,
    encryptedV: null,
    // a key stored before keys were read strictly may be megabytes: dropped, asked for again
    publicKey: (row.public_key?.length ?? 0) <= MAX_PUBLIC_KEY_PEM ? (row.public_key ?? '') : '',
    tpmPolicyText: text,
    tpmPolicy: policy,
    metaData: row.meta_data ?? '',
    imaPolicyId: row.ima_policy_id ?? null,
    mbPolicyId: row.mb_policy_id ?? null,
    imaSignVerificationKeys: row.ima_sign_verification_keys ?? '',
    revocationKey: row.revocation_key ?? '',
    akTpm: row.ak_tpm ?? '',
    akKey: undefined,
    acceptHash: list(row.accept_tpm_hash_algs),
    acceptEnc: list(row.accept_tpm_encryption_algs),
    acceptSign: list(row.accept_tpm_signing_algs),
    hashAlg: row.hash_alg ?? '',
    encAlg: row.enc_alg ?? '',
    signAlg: row.sign_alg ?? '',
    supportedVersion: row.supported_version ?? '2.6',
    attestationCount: row.attestation_count ?? 0,
    lastReceivedQuote: num(row.last_received_quote),
    lastSuccessfulAttestation: num(row.last_successful_attestation),
    clock:
      ci && typeof ci === 'object'
        ? {
            clock: num(ci.clock),
            resetcount: num(ci.resetcount),
            restartcount: num(ci.restartcount),
            safe: num(ci.safe, 1),
          }
        : initialClock(),
    ima: imaFromRow(row),
    severityLevel: row.severity_level ?? null,
    lastEventId: row.last_event_id ?? null,
    verifierId: row.verifier_id ?? 'default',
    push: row.mode === 'push',
    retries: 0,
    epoch: 0,
    busy: false,
    dirty: false,
    leaseUntil: 0,
    tenantKeyring: undefined,
  }
}

/** The record fields behind the rarely changing snapshot columns. */
const COLD_FIELDS = [
  'hashAlg',
  'encAlg',
  'signAlg',
  'severityLevel',
  'lastEventId',
  'publicKey',
  'supportedVersion',
  'ima',
] as const satisfies readonly (keyof AgentRecord)[]

/**
 * The values behind the rarely changing snapshot columns, compared by identity: a record whose
 * values are the ones last written needs only a {@link HotSnapshot}.
 */
export function coldValuesOf(r: AgentRecord): readonly unknown[] {
  return COLD_FIELDS.map((f) => r[f])
}

/**
 * Whether the values behind the rarely changing columns are the ones last written for `r`
 * ({@link coldValuesOf} as stored in `written`), compared without building the array: this runs
 * for every record of every flush.
 */
export function coldUnchanged(r: AgentRecord): boolean {
  const w = r.written
  if (w === undefined) return false
  for (let i = 0; i < COLD_FIELDS.length; i++)
    if (w[i] !== r[COLD_FIELDS[i] as keyof AgentRecord]) return false
  return true
}

/** The columns every passing round changes. */
export function hotSnapshotOf(r: AgentRecord): HotSnapshot {
  return {
    agent_id: r.id,
    operational_state: r.state,
    attestation_count: r.attestationCount,
    last_received_quote: r.lastReceivedQuote,
    last_successful_attestation: r.lastSuccessfulAttestation,
    tpm_clockinfo: r.clock,
  }
}

/** The poll-loop columns of a record. */
export function snapshotOf(r: AgentRecord): AgentSnapshot {
  const j = imaStateToJSON(r.ima)
  const bank = r.hashAlg as keyof typeof j.pcr10
  return {
    ...hotSnapshotOf(r),
    hash_alg: r.hashAlg,
    enc_alg: r.encAlg,
    sign_alg: r.signAlg,
    severity_level: r.severityLevel,
    last_event_id: r.lastEventId,
    public_key: r.publicKey,
    supported_version: r.supportedVersion,
    next_ima_ml_entry: j.next_ima_ml_entry,
    boottime: j.boottime,
    ima_pcrs: { pcr10: j.pcr10, quote_progress: j.quote_progress },
    pcr10: j.pcr10[bank] ?? null,
    learned_ima_keyrings: j.learned_ima_keyrings,
  }
}
