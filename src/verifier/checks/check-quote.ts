/**
 * The pull round's adapter to {@link evaluateEvidence} (upstream `cloud_verifier_common.py:
 * process_quote_response`): reads an agent's `quotes/integrity` answer by shape
 * (`parse-quote-answer.ts`, `qoute_validation.invalid_data`), takes the NK from the answer or the
 * record (`…no_pubkey`), checks the algorithms against the agent's accept lists
 * (`…invalid_hash_alg`, …), then hands the evidence, with the stored clock and IMA state, to the
 * shared checks and turns their outcome into the record's updates.
 *
 * Synchronous, CPU-only and total: any answer gives a result, never a throw (the fuzz harness
 * `test/support/fuzz-check-quote.ts` holds it to that). The caller applies the returned state.
 *
 * @module
 */
import type { KeyObject } from 'node:crypto'
import { type CompiledRuntimePolicy, type ImaAgentState, ImaKeyring } from '../../ima/index.ts'
import { RUNTIME_POLICY_GENERATOR } from '../../ima/runtime-policy.ts'
import { MEASUREDBOOT_PCRS } from '../../protocol/keylime-pcrs.ts'
import { isAccepted } from '../../protocol/algorithms.ts'
import { ProtocolError } from '../../protocol/errors.ts'
import { readRsaPublicKeyPem } from '../../protocol/read-rsa-public-key-pem.ts'
import { type HashAlg, isHashAlg } from '../../tpm/constants.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import type { StoredClockInfo } from './quote-timing.ts'
import type { TpmPolicy } from '../../protocol/tpm-policy.ts'
import { type Evidence, type EvidenceOptions, evaluateEvidence } from './evaluate-evidence.ts'
import { Failure } from './failure.ts'
import { type QuoteAnswer, parseQuoteAnswer } from './parse-quote-answer.ts'

/** Verifier options the checks need. */
export interface CheckOptions extends EvidenceOptions {
  /** `[verifier] measured_boot_evaluate` (`once` | `always`). */
  mbEvaluate: string
}

/** Policies of the agent for this round. */
export interface RoundPolicies {
  /** Compiled runtime policy, or null (none / empty: upstream's empty policy, see `evaluateIma`). */
  ima: CompiledRuntimePolicy | null
  /** MB refstate text, or null. */
  mb: string | null
  /** Identifies this version of `mb` (`id:version`) so a check worker parses it once. */
  mbKey?: string
  /** {@link mbPolicyActive} of `mb`, when the caller computed it once per policy version. */
  mbActive?: boolean
  /** `mb` parsed, when the caller parsed it once per policy version. */
  mbRefstate?: unknown
  /** {@link tenantKeyringOf} the agent's keys, when the caller keeps it. */
  tenantKeyring?: ImaKeyring | null
}

/**
 * The fields of an agent's record a round's checks read (the loop's `AgentRecord` has them all;
 * `akKey` is filled in as a cache).
 */
export interface RoundRecord {
  readonly id: string
  publicKey: string
  akTpm: string
  akKey: KeyObject | undefined
  acceptHash: readonly unknown[]
  acceptEnc: readonly unknown[]
  acceptSign: readonly unknown[]
  clock: StoredClockInfo
  tpmPolicy: TpmPolicy
  tpmPolicyText: string
  imaSignVerificationKeys: string
  attestationCount: number
  ima: ImaAgentState
  /**
   * A push-mode agent (API 3.0): its evidence carries no NK and no encryption algorithm, so PCR 16
   * binds nothing and `enc_alg` is not checked (upstream calls `check_quote` with `data = None`).
   */
  push?: boolean
}

/** What a successful check changes on the record. */
export interface CheckUpdates {
  publicKey: string
  hashAlg: string
  encAlg: string
  signAlg: string
  clock: StoredClockInfo
  ima: ImaAgentState
}

/** Result of {@link checkQuoteAnswer}. */
export type CheckResult =
  | { kind: 'pass'; updates: CheckUpdates; nkChanged: boolean }
  | { kind: 'fail'; failure: Failure; ima?: ImaAgentState }
  | { kind: 'reboot'; ima: ImaAgentState }

/** The AK of a record, parsed once and kept on the record. */
export function akKeyOf(rec: RoundRecord): KeyObject {
  rec.akKey ??= toKeyObject(parseTpm2bPublic(Buffer.from(rec.akTpm, 'base64')))
  return rec.akKey
}

/** An MB policy read once: its text, whether it is active and its parsed refstate. */
export interface ParsedMbPolicy {
  text: string | null
  /** {@link mbPolicyActive} of `text`. */
  active: boolean
  /** The parsed refstate, or undefined when it does not parse (the MB check reports that). */
  refstate: unknown
}

/** Parses an MB policy text once for {@link RoundPolicies} `mbActive` and `mbRefstate`. */
export function parseMbPolicy(text: string | null): ParsedMbPolicy {
  if (text === null || text.trim() === '') return { text, active: false, refstate: undefined }
  let refstate: unknown
  try {
    refstate = JSON.parse(text)
  } catch {
    return { text, active: true, refstate: undefined }
  }
  const active =
    refstate !== null && typeof refstate === 'object' && Object.keys(refstate).length > 0
  return { text, active, refstate }
}

/** Whether an agent's MB policy asks for the MB PCRs (an invalid one does: MB reports it). */
export function mbPolicyActive(mb: string | null): boolean {
  return parseMbPolicy(mb).active
}

/**
 * The PCR mask to request: tpm_policy mask + PCR 10 with a runtime policy that is not the empty
 * one (generator > EmptyAllowList, upstream's `has_runtime_policy`) + MB PCRs with an MB policy.
 */
export function requestMask(rec: Pick<RoundRecord, 'tpmPolicy'>, p: RoundPolicies): number {
  let m = rec.tpmPolicy.mask
  if (p.ima !== null && p.ima.generator > RUNTIME_POLICY_GENERATOR.EmptyAllowList) m |= 1 << 10
  if (p.mbActive ?? mbPolicyActive(p.mb)) for (const n of MEASUREDBOOT_PCRS) m |= 1 << n
  return m >>> 0
}

/**
 * Checks one `quotes/integrity` answer (`results` of the envelope) for `rec` and `nonce`.
 * Never throws for bad input: everything becomes a failure event.
 */
export function checkQuoteAnswer(
  rec: RoundRecord,
  results: unknown,
  nonce: string | Uint8Array,
  policies: RoundPolicies,
  opts: CheckOptions,
): CheckResult {
  const f = new Failure(opts.rules)
  const parsed = parseQuoteAnswer(results)
  if (!parsed.ok) {
    const context = { message: 'parsing agent get quote respone failed', data: parsed.problem }
    f.add('qoute_validation.invalid_data', context, false)
    return { kind: 'fail', failure: f }
  }
  const r = parsed.answer
  const nk = rec.push ? '' : answerNk(f, r, rec)
  const algs = nk === undefined ? undefined : acceptedAlgorithms(f, r, rec)
  if (nk === undefined || algs === undefined) return { kind: 'fail', failure: f }
  const evidence = roundEvidence(rec, r, nonce, nk, algs, policies, opts)
  const out = evaluateEvidence(evidence, opts)
  if (out.kind === 'reboot') return out
  if (out.kind === 'refused') return { kind: 'fail', failure: out.failure }
  const ima = out.ima?.state ?? rec.ima
  if (out.failure.failed) return { kind: 'fail', failure: out.failure, ima }
  const ci = out.quote.clockInfo
  const clock: StoredClockInfo = {
    clock: Number(ci.clock),
    resetcount: ci.resetCount,
    restartcount: ci.restartCount,
    safe: ci.safe ? 1 : 0,
  }
  return {
    kind: 'pass',
    updates: { publicKey: nk, ...algs, clock, ima },
    nkChanged: nk !== rec.publicKey,
  }
}

/** The NK PEM: from the answer (strictly one RSA key block) or cached on the record. */
function answerNk(f: Failure, r: QuoteAnswer, rec: RoundRecord): string | undefined {
  if (r.pubkey === undefined) {
    if (rec.publicKey !== '') return rec.publicKey
    const message = 'agent did not provide public key and no key or encrypted_v was cached at CV'
    f.add('qoute_validation.no_pubkey', { message, data: null }, false)
    return undefined
  }
  try {
    readRsaPublicKeyPem(r.pubkey) // exactly one RSA PUBLIC KEY block: junk around it is refused
    return r.pubkey
  } catch (err) {
    const why = err instanceof ProtocolError ? err.message : 'not a public key'
    const context = { message: `pubkey refused: ${why}`, data: 'pubkey' }
    f.add('qoute_validation.invalid_data', context, false)
    return undefined
  }
}

/** The algorithms of an answer, all in the agent's accept lists. */
interface Algorithms {
  hashAlg: HashAlg
  encAlg: string
  signAlg: string
}

/** The answer's `hash_alg`, `enc_alg` and `sign_alg`; undefined (event added) if one is refused. */
function acceptedAlgorithms(f: Failure, r: QuoteAnswer, rec: RoundRecord): Algorithms | undefined {
  const q = 'qoute_validation'
  const hashAlg = r.hash_alg ?? ''
  const encAlg = r.enc_alg ?? ''
  const signAlg = r.sign_alg ?? ''
  if (!hashAlg || !isHashAlg(hashAlg) || !isAccepted(hashAlg, rec.acceptHash)) {
    const message = `TPM Quote is using an unaccepted hash algorithm: ${hashAlg}`
    f.add(`${q}.invalid_hash_alg`, { message, data: hashAlg }, false)
    return undefined
  }
  if (!rec.push && (!encAlg || !isAccepted(encAlg, rec.acceptEnc))) {
    const message = `TPM Quote is using an unaccepted encryption algorithm: ${encAlg}`
    f.add(`${q}.invalid_enc_alg`, { message, data: encAlg }, false)
    return undefined
  }
  if (!signAlg || !isAccepted(signAlg, rec.acceptSign)) {
    const message = `TPM Quote is using an unaccepted signing algorithm: ${signAlg}`
    f.add(`${q}.invalid_sign_alg`, { message, data: signAlg }, false)
    return undefined
  }
  return { hashAlg, encAlg, signAlg }
}

/** The evidence of a round: the answer plus the record's clock, IMA state and policies. */
function roundEvidence(
  rec: RoundRecord,
  r: QuoteAnswer,
  nonce: string | Uint8Array,
  nk: string,
  algs: Algorithms,
  policies: RoundPolicies,
  opts: CheckOptions,
): Evidence {
  const { signAlg } = algs
  const evidence: Evidence = {
    quote: r.quote,
    nonce,
    hashAlg: algs.hashAlg,
    signAlg:
      signAlg === 'rsassa' || signAlg === 'rsapss' || signAlg === 'ecdsa' ? signAlg : undefined,
    ak: akKeyOf(rec),
    previousClock: rec.clock,
    nk: rec.push ? undefined : nk,
    tpmPolicy: rec.tpmPolicy,
    ima: {
      list: r.ima_measurement_list,
      policy: policies.ima,
      increment: {
        state: rec.ima,
        startEntry: r.ima_measurement_list_entry ?? 0,
        boottime: r.boottime ?? 0,
        keyring: r.ima_measurement_list === undefined ? null : keyringOf(rec, policies),
      },
    },
  }
  if (policies.mb !== null && (policies.mbActive ?? mbPolicyActive(policies.mb))) {
    const log = r.mb_measurement_list
    evidence.mb = {
      log: log === undefined || log === '' ? null : Buffer.from(log, 'base64'),
      refstate: policies.mbRefstate ?? policies.mb,
      evaluate: opts.mbEvaluate,
      attestationCount: rec.attestationCount,
    }
  }
  return evidence
}

/** The tenant's IMA signing keys of the record: as the caller keeps them, or parsed now. */
function keyringOf(rec: RoundRecord, policies: RoundPolicies): ImaKeyring | null {
  if (policies.tenantKeyring !== undefined) return policies.tenantKeyring
  return tenantKeyringOf(rec.imaSignVerificationKeys)
}

/** The agent's `ima_sign_verification_keys` as a keyring; null when none or invalid. */
export function tenantKeyringOf(keys: string): ImaKeyring | null {
  if (keys === '') return null
  try {
    return ImaKeyring.fromJSON(keys)
  } catch {
    return null
  }
}
