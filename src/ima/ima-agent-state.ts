/**
 * Per-agent incremental IMA attestation state (upstream `keylime/agentstates.py:
 * AgentAttestState`, persisted in `verifiermain` as `next_ima_ml_entry`, `ima_pcrs`/`pcr10`,
 * `boottime`, `learned_ima_keyrings`), with JSON helpers for the database and for passing the
 * state in and out of a worker.
 *
 * @module
 */

import { HASH_SIZE, type HashAlg } from '../tpm/constants.ts'
import { ImaError } from './errors.ts'
import { isImaHashAlg } from './hash-alg.ts'
import { ImaKeyring, type KeyringJson } from './ima-keyring.ts'

/** The state kept between attestation rounds. */
export interface ImaAgentState {
  /** The entry number to request next (`ima_ml_entry`). 0 = full list. */
  nextEntry: number
  /** PCR 10 value per bank after entry `nextEntry - 1`. */
  pcr10: Map<HashAlg, Uint8Array>
  /** The agent's boot time (seconds since the epoch; 0 when the agent does not send it). */
  bootTime: number
  /** Keys learned from ima-buf key entries, by keyring name. */
  learnedKeyrings: Map<string, ImaKeyring>
  /** `(pcr_match_line, log_length)` of the previous round, for the quote-progress check. */
  quoteProgress: [number, number] | null
}

/** JSON form of {@link ImaAgentState}. */
export interface ImaAgentStateJson {
  next_ima_ml_entry: number
  pcr10: Partial<Record<HashAlg, string>>
  boottime: number
  learned_ima_keyrings: Record<string, KeyringJson>
  quote_progress: [number, number] | null
}

/** A fresh state: full list next, PCR 10 at zero. */
export function initialImaState(): ImaAgentState {
  return {
    nextEntry: 0,
    pcr10: new Map(),
    bootTime: 0,
    learnedKeyrings: new Map(),
    quoteProgress: null,
  }
}

/** Serializes a state for the database (plain JSON). */
export function imaStateToJSON(s: ImaAgentState): ImaAgentStateJson {
  const pcr10: Partial<Record<HashAlg, string>> = {}
  for (const [b, v] of s.pcr10) pcr10[b] = Buffer.from(v).toString('hex')
  const learned: Record<string, KeyringJson> = {}
  for (const [n, r] of s.learnedKeyrings) learned[n] = r.toJSON()
  return {
    next_ima_ml_entry: s.nextEntry,
    pcr10,
    boottime: s.bootTime,
    learned_ima_keyrings: learned,
    quote_progress: s.quoteProgress,
  }
}

function bad(msg: string): never {
  throw new ImaError('ERR_IMA_STATE', msg)
}

/**
 * Restores a state from {@link imaStateToJSON} output.
 *
 * @throws {ImaError} `ERR_IMA_STATE` when the JSON is malformed.
 */
export function imaStateFromJSON(j: unknown): ImaAgentState {
  if (typeof j !== 'object' || j === null) bad('state must be an object')
  const o = j as Record<string, unknown>
  const next = o.next_ima_ml_entry
  const boot = o.boottime
  if (!Number.isSafeInteger(next) || (next as number) < 0)
    bad('next_ima_ml_entry must be an integer >= 0')
  if (!Number.isSafeInteger(boot) || (boot as number) < 0) bad('boottime must be an integer >= 0')
  const s = initialImaState()
  s.nextEntry = next as number
  s.bootTime = boot as number
  const pcrs = o.pcr10
  if (typeof pcrs !== 'object' || pcrs === null) bad('pcr10 must be an object')
  for (const [b, hex] of Object.entries(pcrs)) {
    if (!isImaHashAlg(b)) bad(`pcr10: unknown bank ${b}`)
    if (typeof hex !== 'string' || !new RegExp(`^[0-9a-f]{${HASH_SIZE[b] * 2}}$`).test(hex))
      bad(`pcr10.${b}: bad value`)
    s.pcr10.set(b, Buffer.from(hex, 'hex'))
  }
  const learned = o.learned_ima_keyrings ?? {}
  if (typeof learned !== 'object' || learned === null) bad('learned_ima_keyrings must be an object')
  for (const [n, r] of Object.entries(learned)) {
    try {
      s.learnedKeyrings.set(n, ImaKeyring.fromJSON(r))
    } catch (e) {
      throw new ImaError('ERR_IMA_STATE', `learned_ima_keyrings.${n} is malformed`, { cause: e })
    }
  }
  const qp = o.quote_progress
  if (qp !== null && qp !== undefined) {
    if (
      !Array.isArray(qp) ||
      qp.length !== 2 ||
      !qp.every((x) => Number.isSafeInteger(x) && x >= 0)
    ) {
      bad('quote_progress must be null or [int, int]')
    }
    s.quoteProgress = [qp[0], qp[1]]
  }
  return s
}

/** A deep-enough copy (keyrings are shared: they are only ever added to between rounds). */
export function cloneImaState(s: ImaAgentState): ImaAgentState {
  return {
    nextEntry: s.nextEntry,
    pcr10: new Map([...s.pcr10].map(([b, v]) => [b, v.slice()])),
    bootTime: s.bootTime,
    learnedKeyrings: new Map(s.learnedKeyrings),
    quoteProgress: s.quoteProgress === null ? null : [s.quoteProgress[0], s.quoteProgress[1]],
  }
}

/**
 * Upstream `check_quote_progress`: false when the previous quote lagged the log and this one did
 * not catch up with that lag. Updates `s.quoteProgress`.
 */
export function checkQuoteProgress(
  s: ImaAgentState,
  matchLine: number,
  logLength: number,
): boolean {
  if (s.quoteProgress === null) {
    s.quoteProgress = [matchLine, logLength]
    return true
  }
  const [prevMatch, prevLen] = s.quoteProgress
  s.quoteProgress = [matchLine, logLength]
  if (matchLine === logLength) return true
  const prevLag = prevLen - prevMatch
  return !(prevLag > 0 && matchLine < prevLag)
}
