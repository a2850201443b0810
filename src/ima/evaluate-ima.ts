/**
 * The verifier's IMA stage (upstream `keylime/ima/ima.py: _process_measurement_list` plus the
 * `ima_measurement_list_entry` / `boottime` handling of `cloud_verifier_common.py`).
 *
 * For each new line of the ASCII list: parse it and rebuild the template data, check the PCR
 * (10), recompute the template hash with the policy's `log_hash_alg` (ToMToU/violation entries —
 * an all-zero template hash — extend with all-`0xff` instead and skip validation), validate the
 * entry against the runtime policy, and extend the running PCR 10 value of every quoted bank with
 * `H_bank(template data)`. The quote may lag the log (IMA appends before it extends, and the list
 * is read after the quote), so the quoted PCR 10 must equal the running value at *some* line, or
 * at the start; the state then remembers that line and its PCR value, and the next round asks for
 * the entries after it. Entries after the matching line are validated now and again next round,
 * exactly as upstream.
 *
 * Failure event ids are upstream's (`keylime/failure.py` builds `component.sub….event`):
 * `ima.validation.ima-ng.not_in_allowlist`, `ima.validation.ima-ng.runtime_policy_hash`,
 * `ima.validator.ima-sig.invalid_signature`, `ima.invalid_key`, `ima.validation.ima_pcr`,
 * `ima.validation.ima_hash`, `ima.validation.tomtou`, `ima.parser.entry`, `ima.pcr_mismatch`,
 * `ima.quote_progress`, and `qoute_validation.invalid_ima_entry_nb` (upstream's spelling).
 *
 * Deliberate differences from upstream: `ignoreTomtouErrors` means what it says (true → ToMToU
 * entries are accepted silently; false → a recoverable `ima.validation.tomtou` event), where
 * upstream's code records the event when the option is *true*; and a reboot detected by a changed
 * `boottime` on an incremental request yields `{ ok: 'retry' }` instead of upstream's silent pass.
 *
 * Input and output are plain data (plus `Uint8Array`s), so the stage runs unchanged in a worker.
 *
 * @module
 */

import { timingSafeEqual } from 'node:crypto'
import { HASH_SIZE, type HashAlg } from '../tpm/constants.ts'
import { AsciiEntryParser } from './ascii-entry-parser.ts'
import {
  type CompiledRuntimePolicy,
  compileRuntimePolicy,
  type DigestIndex,
  indexGet,
  indexHas,
} from './compile-runtime-policy.ts'
import { isImaError } from './errors.ts'
import { hashInto } from './hash-alg.ts'
import { isAllZero } from './hex.ts'
import {
  checkQuoteProgress,
  cloneImaState,
  type ImaAgentState,
  initialImaState,
} from './ima-agent-state.ts'
import type { ImaEntry } from './ima-entry.ts'
import { getPubkey, ImaKeyring, verifyImaSignature } from './ima-keyring.ts'
import { emptyRuntimePolicy } from './runtime-policy.ts'

/** One failure event, in upstream's shape. */
export interface ImaFailure {
  /** Upstream event id, e.g. `ima.validation.ima-ng.not_in_allowlist`. */
  event_id: string
  /** Context: always `message`; plus `path`, `digest`, `line`, `got`, `expected` where relevant. */
  context: Record<string, unknown>
  /** Upstream's recoverable flag (false = later checks were skipped). */
  recoverable: boolean
}

/** Configuration of the IMA stage. */
export interface ImaStageConfig {
  /** `[verifier] ignore_tomtou_errors` (default false). */
  ignoreTomtouErrors?: boolean
  /** The IMA PCR (default 10). */
  imaPcr?: number
  /** Keys given to the agent directly (deprecated `ima_sign_verification_keys`); overrides the policy's. */
  tenantKeyring?: ImaKeyring | null
}

/** Input of {@link evaluateIma}. */
export interface EvaluateImaInput {
  /** The ASCII list from the agent (`ima_measurement_list`), starting at `startEntry`. */
  list: string
  /** `ima_measurement_list_entry` from the agent. */
  startEntry: number
  /** `boottime` from the agent (0 when absent, as the Rust agent does). */
  bootTime?: number
  /** The stored state, or undefined for a new agent. Not mutated. */
  state: ImaAgentState | undefined
  /** Quoted PCR 10: one value (for `bank`) or several banks. */
  quotedPcr10: ReadonlyMap<HashAlg, Uint8Array> | Uint8Array
  /** The quote's hash algorithm (`hash_alg`). */
  bank: HashAlg
  /**
   * The runtime policy. Null stands for upstream's `EMPTY_RUNTIME_POLICY` (`tpm_main.py`
   * `check_quote`: `if runtime_policy is None: runtime_policy = ima.EMPTY_RUNTIME_POLICY`): keys
   * are learned and signatures checked, and every file without a good signature is
   * `not_in_allowlist`.
   */
  policy: CompiledRuntimePolicy | null
  /** Boot aggregates computed from the measured-boot log, accepted for `boot_aggregate`. */
  bootAggregates?: readonly string[]
  /** Stage options. */
  config?: ImaStageConfig
}

/** Result of {@link evaluateIma}. */
export type EvaluateImaResult =
  | { ok: true; state: ImaAgentState; entriesVerified: number; matchedLine: number }
  | { ok: false; failures: ImaFailure[]; state: ImaAgentState; entriesVerified: number }
  | { ok: 'retry'; reason: 'reboot'; state: ImaAgentState }

let emptyPolicy: CompiledRuntimePolicy | undefined

/** Upstream's `EMPTY_RUNTIME_POLICY`, compiled once. */
function emptyCompiledPolicy(): CompiledRuntimePolicy {
  emptyPolicy ??= compileRuntimePolicy(emptyRuntimePolicy(), '')
  return emptyPolicy
}

/** Mutable walk context shared by the per-entry validators. */
interface Walk {
  policy: CompiledRuntimePolicy
  bootAggregates: ReadonlySet<string>
  failures: ImaFailure[]
  state: ImaAgentState
  tenant: ImaKeyring | null
  clonedRings: Set<string>
}

function add(
  w: Walk,
  event_id: string,
  context: Record<string, unknown>,
  recoverable = true,
): void {
  w.failures.push({ event_id, context, recoverable })
}

/** `_validate_ima_ng` with `hash_types` = the index. Returns true when the entry passes. */
function validateNg(
  w: Walk,
  e: ImaEntry,
  index: DigestIndex,
  allowBootAggregate: boolean,
): boolean {
  const p = w.policy
  if (p.exclude?.test(e.name)) return true
  const has = indexHas(index, e.name, e.digest)
  if (has === true) return true
  if (allowBootAggregate && e.name === 'boot_aggregate' && w.bootAggregates.has(e.digest))
    return true
  if (has === undefined) {
    add(w, 'ima.validation.ima-ng.not_in_allowlist', {
      message: `File not found in allowlist: ${e.name}`,
      path: e.name,
      digest: e.digest,
      line: e.line,
    })
  } else {
    add(w, 'ima.validation.ima-ng.runtime_policy_hash', {
      message: 'Hash not found in runtime policy',
      path: e.name,
      got: e.digest,
      expected: indexGet(index, e.name),
      line: e.line,
    })
  }
  return false
}

function keyrings(w: Walk): ImaKeyring[] {
  const rings = [...w.state.learnedKeyrings.values()]
  if (w.tenant !== null) rings.unshift(w.tenant)
  return rings
}

function validateSig(w: Walk, e: ImaEntry): void {
  const p = w.policy
  if (e.sig !== null) {
    if (p.exclude?.test(e.name)) return
    if (verifyImaSignature(keyrings(w), e.sig, Buffer.from(e.digest, 'hex'), e.digestAlg)) return
  }
  validateNg(w, e, p.digests, true)
}

function validateBuf(w: Walk, e: ImaEntry): void {
  const p = w.policy
  let key: ReturnType<typeof getPubkey> = null
  if (e.buf !== null) {
    try {
      key = getPubkey(e.buf)
    } catch (err) {
      add(w, 'ima.invalid_key', {
        message: `key from ${e.name} does not have a supported key: ${err instanceof Error ? err.message : 'unknown'}`,
        path: e.name,
        line: e.line,
      })
      return
    }
  }
  if (key !== null) {
    const ignored = p.ignoredKeyrings
    if (ignored.has('*') || ignored.has(e.name)) return
    if (!validateNg(w, e, p.keyrings, false)) return
    // learn the key (copy-on-write: the previous state's keyring objects are not touched)
    const rings = w.state.learnedKeyrings
    let ring = rings.get(e.name)
    if (ring === undefined || !w.clonedRings.has(e.name)) {
      const next = new ImaKeyring()
      if (ring !== undefined) for (const [id, k] of ring.keys) next.add(k, id)
      ring = next
      rings.set(e.name, ring)
      w.clonedRings.add(e.name)
    }
    ring.add(key.key, key.keyid)
    return
  }
  validateNg(w, e, p.imaBuf, false)
}

/**
 * Evaluates one round of an agent's IMA list against its quoted PCR 10 and runtime policy.
 *
 * @example
 * ```ts
 * const r = evaluateIma({ list, startEntry: 0, state: undefined, quotedPcr10: pcr10, bank: 'sha256', policy })
 * if (r.ok === true) saveState(imaStateToJSON(r.state))
 * ```
 */
export function evaluateIma(input: EvaluateImaInput): EvaluateImaResult {
  const cfg = input.config ?? {}
  const imaPcr = cfg.imaPcr ?? 10
  const bootTime = input.bootTime ?? 0
  let state = input.state === undefined ? initialImaState() : cloneImaState(input.state)
  const failures: ImaFailure[] = []

  if (input.startEntry === 0) {
    state = initialImaState()
  } else if (input.startEntry !== state.nextEntry) {
    failures.push({
      event_id: 'qoute_validation.invalid_ima_entry_nb',
      context: {
        message: 'Agent did not respond with requested next IMA measurement list entry',
        got: input.startEntry,
        expected: state.nextEntry,
      },
      recoverable: false,
    })
    return { ok: false, failures, state: initialImaState(), entriesVerified: 0 }
  } else if (bootTime !== state.bootTime) {
    return { ok: 'retry', reason: 'reboot', state: initialImaState() }
  }
  state.bootTime = bootTime

  const quoted: Array<[HashAlg, Uint8Array]> =
    input.quotedPcr10 instanceof Uint8Array
      ? [[input.bank, input.quotedPcr10]]
      : [...input.quotedPcr10]
  if (quoted.length === 0) quoted.push([input.bank, new Uint8Array(0)])
  const policy = input.policy ?? emptyCompiledPolicy()
  const logAlg: HashAlg = policy.logHashAlg
  const banks = quoted.map(([b]) => b)
  const sizes = banks.map((b) => HASH_SIZE[b])
  // running values live in the first half of cat[i]; the entry digest is written to the second half
  const cat = banks.map((b, i) => {
    const n = sizes[i] as number
    const c = new Uint8Array(2 * n)
    const prev = state.pcr10.get(b)
    if (prev !== undefined && prev.length === n) c.set(prev)
    return c
  })
  const out = new Uint8Array(64)
  const thOut = new Uint8Array(64)
  const thExpected = new Uint8Array(64)

  const matches = (): boolean => {
    for (let i = 0; i < quoted.length; i++) {
      const q = (quoted[i] as [HashAlg, Uint8Array])[1]
      const n = sizes[i] as number
      if (q.length !== n || !timingSafeEqual((cat[i] as Uint8Array).subarray(0, n), q)) return false
    }
    return true
  }

  const w: Walk = {
    policy,
    bootAggregates: new Set(input.bootAggregates ?? []),
    failures,
    state,
    tenant: cfg.tenantKeyring ?? policy.verificationKeys,
    clonedRings: new Set(),
  }
  const parser = new AsciiEntryParser()
  let found = matches()
  let matchLine = 0
  let logLength = 0
  let entries = 0
  const logSize = HASH_SIZE[logAlg]
  const ignoreTomtou = cfg.ignoreTomtouErrors ?? false

  const text = input.list
  const n = text.length
  let pos = 0
  let lineNo = 0
  while (pos < n) {
    let nl = text.indexOf('\n', pos)
    if (nl < 0) nl = n
    lineNo++
    const start = pos
    pos = nl + 1
    if (nl === start) continue
    logLength++
    let e: ImaEntry
    try {
      e = parser.parse(text.slice(start, nl), lineNo)
    } catch (err) {
      if (!isImaError(err)) throw err
      add(w, 'ima.parser.entry', {
        message: `Line was not parsable into a valid IMA entry: ${err.message}`,
        line: lineNo,
      })
      continue
    }
    entries++
    const th = e.templateHash
    const thLen = th.length >>> 1
    let thBytes: Uint8Array | null = null
    if (thLen <= 64) {
      Buffer.from(thExpected.buffer).write(th, 0, 'hex')
      thBytes = thExpected.subarray(0, thLen)
    }
    const tomtou = thLen === logSize && thBytes !== null && isAllZero(thBytes)
    // extend every bank
    for (let i = 0; i < banks.length; i++) {
      const b = banks[i] as HashAlg
      const size = sizes[i] as number
      const c = cat[i] as Uint8Array
      if (tomtou) c.fill(0xff, size)
      else c.set(hashInto(b, e.templateData, out), size)
      c.set(hashInto(b, c, out), 0)
    }
    // validation (upstream Entry.invalid)
    if (e.pcr !== imaPcr) {
      add(w, 'ima.validation.ima_pcr', {
        message: 'IMA PCR is not the configured one',
        expected: String(imaPcr),
        got: String(e.pcr),
        line: lineNo,
      })
    }
    if (tomtou) {
      if (!ignoreTomtou)
        add(w, 'ima.validation.tomtou', {
          message: 'hash validation was skipped',
          path: e.name,
          line: lineNo,
        })
    } else {
      const calc =
        logAlg === banks[0]
          ? (cat[0] as Uint8Array).subarray(sizes[0] as number)
          : hashInto(logAlg, e.templateData, thOut)
      let same = thBytes !== null && thBytes.length === calc.length
      if (same)
        for (let k = 0; k < calc.length; k++)
          if (calc[k] !== (thBytes as Uint8Array)[k]) same = false
      if (!same) {
        add(w, 'ima.validation.ima_hash', {
          message: 'IMA template hash does not match the calculated hash.',
          expected: th,
          got: Buffer.from(calc).toString('hex'),
          path: e.name,
          line: lineNo,
        })
      } else {
        switch (e.template) {
          case 'ima':
          case 'ima-ng':
          case 'ima-ngv2':
            validateNg(w, e, w.policy.digests, true)
            break
          case 'ima-sig':
          case 'ima-sigv2':
          case 'ima-modsig':
            validateSig(w, e)
            break
          case 'ima-buf':
            validateBuf(w, e)
            break
        }
      }
    }
    if (!found && matches()) {
      found = true
      matchLine = lineNo
      for (let i = 0; i < banks.length; i++) {
        state.pcr10.set(banks[i] as HashAlg, (cat[i] as Uint8Array).slice(0, sizes[i] as number))
      }
      state.nextEntry = input.startEntry + lineNo
    }
  }

  if (!found) {
    add(w, 'ima.pcr_mismatch', {
      message: `IMA measurement list does not match TPM PCR ${Buffer.from((quoted[0] as [HashAlg, Uint8Array])[1]).toString('hex')}`,
    })
  } else if (!checkQuoteProgress(state, matchLine, logLength)) {
    add(w, 'ima.quote_progress', {
      message: 'PCR quote did not make progress to catch up with log',
    })
  }
  if (failures.length > 0)
    return { ok: false, failures, state: initialImaState(), entriesVerified: entries }
  return { ok: true, state, entriesVerified: entries, matchedLine: matchLine }
}

/**
 * The `/verify/evidence` variant: the whole list, no stored state, no incremental protocol.
 */
export function evaluateImaEvidence(
  input: Omit<EvaluateImaInput, 'state' | 'startEntry' | 'bootTime'>,
): EvaluateImaResult {
  return evaluateIma({ ...input, state: undefined, startEntry: 0 })
}
