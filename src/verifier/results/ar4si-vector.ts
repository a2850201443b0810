/**
 * Keylime failure event ids (`checks/failure.ts`) onto the AR4SI trustworthiness vector
 * (draft-ietf-rats-ar4si §2.3), by event family. The table in docs/ear.md is this list.
 *
 * @module
 */
import { CLAIM, type TrustVector, type VectorCategory } from './ear-claims.ts'

/** One rule: the first whose pattern matches an event id decides its category and value. */
interface EventRule {
  pattern: RegExp
  category: VectorCategory
  value: number
}

/** Upstream spells the quote family `qoute_validation`; the corrected spelling is read too. */
const QUOTE = '(?:qoute|quote)_validation'

const RULES: readonly EventRule[] = [
  // IMA: the measured executables broke the runtime policy (or its list cannot be read).
  { pattern: /^ima\./, category: 'executables', value: CLAIM.CONTRAINDICATED },
  {
    pattern: new RegExp(`^${QUOTE}\\.invalid_ima`),
    category: 'executables',
    value: CLAIM.CONTRAINDICATED,
  },
  // Measured boot: the UEFI event log against the measured-boot policy.
  { pattern: /^measured_boot\./, category: 'configuration', value: CLAIM.CONTRAINDICATED },
  {
    pattern: new RegExp(`^${QUOTE}\\.invalid_(?:mb_policy|measured_boot)`),
    category: 'configuration',
    value: CLAIM.CONTRAINDICATED,
  },
  // PCR 16 binds the agent's NK to the quote: the instance is not the enrolled one.
  {
    pattern: /^pcr_validation\.(?:invalid|missing)_pcr_16$/,
    category: 'instance-identity',
    value: CLAIM.UNRECOGNIZED,
  },
  // tpm_policy: static PCR values.
  { pattern: /^pcr_validation\./, category: 'configuration', value: CLAIM.CONTRAINDICATED },
  // EK and AK: the TPM's identity.
  { pattern: /^ek\./, category: 'instance-identity', value: CLAIM.UNRECOGNIZED },
  // The quote itself: signature with the AK, nonce, PCR digest, parameters.
  { pattern: new RegExp(`^${QUOTE}\\.`), category: 'hardware', value: CLAIM.CRYPTO_FAILED },
]

/** The category and value an event id maps to; undefined for `internal.*` and the unknown. */
export function claimOfEvent(
  eventId: string,
): { category: VectorCategory; value: number } | undefined {
  const rule = RULES.find((r) => r.pattern.test(eventId))
  return rule && { category: rule.category, value: rule.value }
}

/**
 * `vector` with each event's claim written over it: a failed category replaces what the passing
 * checks affirmed. Returns whether any event mapped to a category.
 */
export function applyEvents(vector: TrustVector, eventIds: Iterable<string>): boolean {
  let mapped = false
  for (const id of eventIds) {
    const c = claimOfEvent(id)
    if (c === undefined) continue
    mapped = true
    vector[c.category] = Math.max(vector[c.category] ?? 0, c.value)
  }
  return mapped
}
