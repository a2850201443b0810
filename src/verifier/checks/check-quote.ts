/**
 * The checks of one integrity-quote answer (upstream `cloud_verifier_common.py:
 * process_quote_response` + `tpm_main.py: check_quote / check_pcrs`), in upstream's order and
 * with upstream's event ids:
 *
 * 1. answer shape: every field by type and size (`parse-quote-answer.ts`,
 *    `qoute_validation.invalid_data`), NK known (`…no_pubkey`);
 * 2. `hash_alg` / `enc_alg` / `sign_alg` in the accept lists (`…invalid_hash_alg`, …);
 * 3. quote signature, nonce and PCR digest with the cached AK (`…quote_validation`);
 * 4. `check_quote_timing` (`…quote_validation`);
 * 5. PCR16 binds the NK (`pcr_validation.invalid_pcr_16` / `missing_pcr_16`);
 * 6. measured boot (`measured_boot.*`, via `src/mb`), giving boot aggregates to IMA;
 * 7. IMA (`ima.*`, via `src/ima`), PCR 10;
 * 8. the remaining PCRs against `tpm_policy` (`pcr_validation.invalid_pcr_<n>`, `missing_pcrs`).
 *
 * The function is synchronous and CPU-only, and total: any answer gives a result, never a throw
 * (the fuzz harness `test/support/fuzz-check-quote.ts` holds it to that). The caller applies the
 * returned state.
 *
 * @module
 */
import type { KeyObject } from 'node:crypto'
import {
  type CompiledRuntimePolicy,
  evaluateIma,
  type ImaAgentState,
  ImaKeyring,
} from '../../ima/index.ts'
import { evaluateMeasuredBoot, MEASUREDBOOT_PCRS } from '../../mb/index.ts'
import { ProtocolError } from '../../protocol/errors.ts'
import { readRsaPublicKeyPem } from '../../protocol/read-rsa-public-key-pem.ts'
import { isHashAlg, type HashAlg } from '../../tpm/constants.ts'
import { isTpmError } from '../../tpm/errors.ts'
import { checkNkBinding } from '../../tpm/extend-pcr.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { verifyQuote } from '../../tpm/verify-quote.ts'
import { type AgentRecord, checkQuoteTiming, type StoredClockInfo } from '../loop/agent-record.ts'
import { isAccepted } from '../../protocol/algorithms.ts'
import { Failure, type SeverityRules } from './failure.ts'
import { parseQuoteAnswer } from './parse-quote-answer.ts'

/** Verifier options the checks need. */
export interface CheckOptions {
  rules: SeverityRules
  mbPolicyName: string
  mbEvaluate: string
  /** `[verifier] ignore_tomtou_errors` as configured (upstream meaning). */
  ignoreTomtouErrors: boolean
}

/** Policies of the agent for this round. */
export interface RoundPolicies {
  /** Compiled runtime policy, or null (none / empty: replay only). */
  ima: CompiledRuntimePolicy | null
  /** MB refstate text, or null. */
  mb: string | null
  /** {@link mbPolicyActive} of `mb`, when the caller computed it once per policy version. */
  mbActive?: boolean
  /** `mb` parsed, when the caller parsed it once per policy version. */
  mbRefstate?: unknown
  /** {@link tenantKeyringOf} the agent's keys, when the caller keeps it. */
  tenantKeyring?: ImaKeyring | null
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
export function akKeyOf(rec: AgentRecord): KeyObject {
  rec.akKey ??= toKeyObject(parseTpm2bPublic(Buffer.from(rec.akTpm, 'base64')))
  return rec.akKey
}

function isMbPolicyNonEmpty(mb: string | null): boolean {
  if (mb === null || mb.trim() === '') return false
  try {
    const v = JSON.parse(mb)
    return v !== null && typeof v === 'object' && Object.keys(v).length > 0
  } catch {
    return true // invalid: let the MB stage report it
  }
}

/** Whether an agent's MB policy asks for the MB PCRs. */
export function mbPolicyActive(mb: string | null): boolean {
  return isMbPolicyNonEmpty(mb)
}

/** The PCR mask to request: tpm_policy mask + PCR 10 with a runtime policy + MB PCRs with an MB policy. */
export function requestMask(rec: AgentRecord, p: RoundPolicies): number {
  let m = rec.tpmPolicy.mask
  if (p.ima !== null) m |= 1 << 10
  if (p.mbActive ?? mbPolicyActive(p.mb)) for (const n of MEASUREDBOOT_PCRS) m |= 1 << n
  return m >>> 0
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

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/**
 * Checks one `quotes/integrity` answer (`results` of the envelope) for `rec` and `nonce`.
 * Never throws for bad input: everything becomes a failure event.
 */
export function checkQuoteAnswer(
  rec: AgentRecord,
  results: unknown,
  nonce: string,
  policies: RoundPolicies,
  opts: CheckOptions,
): CheckResult {
  const f = new Failure(opts.rules)
  const q = 'qoute_validation'
  const parsed = parseQuoteAnswer(results)
  if (!parsed.ok) {
    f.add(
      `${q}.invalid_data`,
      { message: 'parsing agent get quote respone failed', data: parsed.problem },
      false,
    )
    return { kind: 'fail', failure: f }
  }
  const r = parsed.answer
  let pubkey = r.pubkey ?? null
  if (pubkey === null) {
    if (rec.publicKey === '') {
      f.add(
        `${q}.no_pubkey`,
        {
          message: 'agent did not provide public key and no key or encrypted_v was cached at CV',
          data: null,
        },
        false,
      )
      return { kind: 'fail', failure: f }
    }
    pubkey = rec.publicKey
  } else {
    try {
      readRsaPublicKeyPem(pubkey) // exactly one RSA PUBLIC KEY block: junk around it is refused
    } catch (err) {
      const why = err instanceof ProtocolError ? err.message : 'not a public key'
      f.add(`${q}.invalid_data`, { message: `pubkey refused: ${why}`, data: 'pubkey' }, false)
      return { kind: 'fail', failure: f }
    }
  }
  const hashAlg = r.hash_alg ?? ''
  const encAlg = r.enc_alg ?? ''
  const signAlg = r.sign_alg ?? ''
  if (!hashAlg || !isHashAlg(hashAlg) || !isAccepted(hashAlg, rec.acceptHash)) {
    f.add(
      `${q}.invalid_hash_alg`,
      { message: `TPM Quote is using an unaccepted hash algorithm: ${hashAlg}`, data: hashAlg },
      false,
    )
    return { kind: 'fail', failure: f }
  }
  if (!encAlg || !isAccepted(encAlg, rec.acceptEnc)) {
    f.add(
      `${q}.invalid_enc_alg`,
      { message: `TPM Quote is using an unaccepted encryption algorithm: ${encAlg}`, data: encAlg },
      false,
    )
    return { kind: 'fail', failure: f }
  }
  if (!signAlg || !isAccepted(signAlg, rec.acceptSign)) {
    f.add(
      `${q}.invalid_sign_alg`,
      { message: `TPM Quote is using an unaccepted signing algorithm: ${signAlg}`, data: signAlg },
      false,
    )
    return { kind: 'fail', failure: f }
  }
  const bank: HashAlg = hashAlg

  let verified: ReturnType<typeof verifyQuote>
  try {
    verified = verifyQuote({
      quote: r.quote,
      akPublic: akKeyOf(rec),
      nonce,
      hashAlg: bank,
      signAlg:
        signAlg === 'rsassa' || signAlg === 'rsapss' || signAlg === 'ecdsa' ? signAlg : undefined,
    })
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    f.add(
      `${q}.quote_validation`,
      { message: 'Quote data validation', error: isTpmError(err) ? `${err.code}: ${msg}` : msg },
      false,
    )
    return { kind: 'fail', failure: f }
  }
  const clockErr = checkQuoteTiming(rec.clock, verified.clockInfo)
  if (clockErr !== undefined) {
    f.add(
      `${q}.quote_validation`,
      { message: 'Validation of clockinfo from quote using tpm2-tools', data: clockErr },
      false,
    )
    return { kind: 'fail', failure: f }
  }
  const ci = verified.clockInfo
  const clock: StoredClockInfo = {
    clock: Number(ci.clock),
    resetcount: ci.resetCount,
    restartcount: ci.restartCount,
    safe: ci.safe ? 1 : 0,
  }

  const pcrs = verified.pcrs.get(bank) ?? new Map<number, Uint8Array>()
  const used = new Set<number>()
  // PCR 16: the NK binding
  if (pcrs.has(16)) {
    try {
      checkNkBinding(verified.pcrs, bank, pubkey)
    } catch {
      f.add(
        'pcr_validation.invalid_pcr_16',
        { got: hex(pcrs.get(16) as Uint8Array), expected: 'H(0 || H(pubkey))' },
        true,
      )
    }
    used.add(16)
  } else {
    f.add('pcr_validation.missing_pcr_16', 'Data PCR 16 is missing in quote, but is required', true)
  }

  // Measured boot
  let bootAggregates: string[] | undefined
  if (policies.mbActive ?? isMbPolicyNonEmpty(policies.mb)) {
    let log: Uint8Array | null = null
    if (r.mb_measurement_list !== undefined && r.mb_measurement_list !== '') {
      log = Buffer.from(r.mb_measurement_list, 'base64')
    }
    try {
      const mb = evaluateMeasuredBoot({
        log,
        quotedPcrs: verified.pcrs,
        bank,
        policyName: opts.mbPolicyName,
        refstate: policies.mbRefstate ?? policies.mb,
        evaluate: opts.mbEvaluate,
        attestationCount: rec.attestationCount,
      })
      const claims = mb.ok ? mb.claims : mb.claims
      if (claims !== undefined) {
        for (const n of claims.checkedPcrs) used.add(n)
        bootAggregates = claims.bootAggregates[bank]
      }
      if (!mb.ok) f.addAll(mb.failures)
    } catch (err) {
      f.add(
        'measured_boot.exception',
        { message: err instanceof Error ? err.message : String(err) },
        true,
      )
    }
  }

  // IMA
  let ima = rec.ima
  if (pcrs.has(10)) {
    used.add(10)
    if (r.ima_measurement_list === undefined) {
      if (policies.ima !== null) {
        f.add(
          'pcr_validation.unused_pcr_10',
          'IMA PCR in policy, but no measurement list provided',
          true,
        )
      }
    } else {
      const tenantKeyring =
        policies.tenantKeyring !== undefined
          ? policies.tenantKeyring
          : tenantKeyringOf(rec.imaSignVerificationKeys)
      const res = evaluateIma({
        list: r.ima_measurement_list,
        startEntry: r.ima_measurement_list_entry ?? 0,
        bootTime: r.boottime ?? 0,
        state: rec.ima,
        quotedPcr10: pcrs.get(10) as Uint8Array,
        bank,
        policy: policies.ima,
        bootAggregates,
        // src/ima implements the option's meaning; upstream's effective behaviour is inverted
        // (an event only when ignore_tomtou_errors is true), which we keep: see the compat notes.
        config: { ignoreTomtouErrors: !opts.ignoreTomtouErrors, tenantKeyring },
      })
      if (res.ok === 'retry') return { kind: 'reboot', ima: res.state }
      ima = res.state
      if (res.ok === false) f.addAll(res.failures)
    }
  }

  // Remaining PCRs against tpm_policy
  for (const [n, v] of pcrs) {
    if (used.has(n)) continue
    const allowed = rec.tpmPolicy.pcrs.get(n)
    if (allowed === undefined) continue
    const got = hex(v)
    if (!allowed.includes(got)) {
      f.add(
        `pcr_validation.invalid_pcr_${n}`,
        { context: 'PCR value is not in allowlist', got, expected: [...allowed] },
        true,
      )
    }
  }
  const missing = [...rec.tpmPolicy.pcrs.keys()].filter((n) => !pcrs.has(n))
  if (missing.length > 0) {
    f.add(
      'pcr_validation.missing_pcrs',
      { context: 'PCRs are missing in quote', data: missing },
      true,
    )
  }

  if (f.failed) return { kind: 'fail', failure: f, ima }
  return {
    kind: 'pass',
    updates: { publicKey: pubkey, hashAlg, encAlg, signAlg, clock, ima },
    nkChanged: pubkey !== rec.publicKey,
  }
}
