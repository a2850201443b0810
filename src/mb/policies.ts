/**
 * The measured-boot policy registry (upstream `keylime/mba/elchecking/policies.py`): the built-in
 * `accept-all`, `reject-all` and `example` policies, plus declarative custom policies
 * ({@link compileRulePolicy}) selected by `measured_boot_policy_name`.
 *
 * @module
 */

import { MbError } from './errors.ts'
import { EXAMPLE_RELEVANT_PCRS, evaluateExample, examplePcrsFor } from './example-policy.ts'
import type { EventLog } from './parse-event-log.ts'
import { compileRulePolicy, evaluateRulePolicy } from './rule-policy.ts'

/** A measured-boot policy: which PCRs it needs, and how it judges a log against a refstate. */
export interface MbPolicy {
  /** Registered name. */
  readonly name: string
  /** PCRs compared with the log and required in the quote; empty = all of 0–9, 11–15 (upstream). */
  readonly relevantPcrs: readonly number[]
  /** The relevant PCRs for this refstate, when they depend on it (default {@link relevantPcrs}). */
  pcrsFor?(refstate: unknown): readonly number[]
  /** `''` to accept, else the reason (naming the event). May throw MbError for a bad refstate. */
  evaluate(refstate: unknown, log: EventLog): string
}

/** Upstream `AcceptAll`. */
export const ACCEPT_ALL: MbPolicy = { name: 'accept-all', relevantPcrs: [], evaluate: () => '' }
/** Upstream `RejectAll`. */
export const REJECT_ALL: MbPolicy = {
  name: 'reject-all',
  relevantPcrs: [],
  evaluate: () => 'reject all',
}
/** Upstream `Example`. */
export const EXAMPLE: MbPolicy = {
  name: 'example',
  relevantPcrs: EXAMPLE_RELEVANT_PCRS,
  pcrsFor: examplePcrsFor,
  evaluate: evaluateExample,
}

const BUILT_INS: ReadonlyMap<string, MbPolicy> = new Map(
  [ACCEPT_ALL, REJECT_ALL, EXAMPLE].map((p) => [p.name, p]),
)

/** The built-in policy names. */
export const BUILT_IN_POLICY_NAMES: readonly string[] = [...BUILT_INS.keys()]

/**
 * Resolves `name` to a policy: a built-in, or one of the declarative `custom` documents (validated
 * here; plain JSON data, so the list can cross a worker boundary).
 *
 * @throws {MbError} `ERR_MB_UNKNOWN_POLICY` for an unknown name; `ERR_MB_POLICY` for an invalid document.
 */
export function getPolicy(name: string, custom: readonly unknown[] = []): MbPolicy {
  const b = BUILT_INS.get(name)
  if (b !== undefined) return b
  for (const doc of custom) {
    if (typeof doc === 'object' && doc !== null && (doc as { name?: unknown }).name === name) {
      const compiled = compileRulePolicy(doc)
      return {
        name,
        relevantPcrs: compiled.relevantPcrs,
        evaluate: (_ref, log) => evaluateRulePolicy(compiled, log),
      }
    }
  }
  throw new MbError(
    'ERR_MB_UNKNOWN_POLICY',
    `there is no measured-boot policy named ${JSON.stringify(name.slice(0, 64))}`,
  )
}

/**
 * The policy that judges a non-empty refstate: {@link getPolicy}, except that `accept-all` (the
 * default name) gives {@link EXAMPLE}, so a refstate given at enrolment or to `/verify/evidence` is
 * evaluated rather than dropped (upstream #1932; docs/compatibility.md). Callers skip measured boot
 * for an empty refstate, as upstream does, before asking.
 *
 * @throws {MbError} as {@link getPolicy}.
 */
export function policyForRefstate(name: string, custom: readonly unknown[] = []): MbPolicy {
  return name === ACCEPT_ALL.name ? EXAMPLE : getPolicy(name, custom)
}
