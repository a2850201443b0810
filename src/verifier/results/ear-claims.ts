/**
 * EAT Attestation Results (EAR, draft-ietf-rats-ear-04) as plain claims: the claims-set, its
 * appraisals (`submods`) and the AR4SI trustworthiness tiers (draft-ietf-rats-ar4si §3.2). Pure:
 * no keys, no signing (`sign-jwt.ts`), no I/O.
 *
 * JSON claim names are draft-04's (`ear_verifier_id`, `ear_status`, `ear_trustworthiness_vector`,
 * underscores since -03); Veraison's library still reads the older dotted names (docs/ear.md).
 *
 * @module
 */
import { BadRequest } from '../../errors.ts'
import pkg from '../../../package.json' with { type: 'json' }

/** The `eat_profile` of draft-ietf-rats-ear-04 (§3, `EAR`). */
export const EAR_PROFILE = 'tag:ietf.org,2026:rats/ear#04'

/** The media type of a signed EAR (RFC 9782 `application/eat+jwt`, with its profile). */
export const EAR_MEDIA_TYPE = `application/eat+jwt; eat_profile="${EAR_PROFILE}"`

/** The four AR4SI trustworthiness tiers, as `ear_status` carries them in JSON. */
export type TrustTier = 'none' | 'affirming' | 'warning' | 'contraindicated'

/** The tier of a claim value (draft-ietf-rats-ar4si §3.1: -1..1 none, 2..31 affirming, …). */
export function tierOf(value: number): TrustTier {
  if (value >= 96) return 'contraindicated'
  if (value >= 32) return 'warning'
  if (value >= 2) return 'affirming'
  return 'none'
}

/** Tiers from most to least trusted: a status is never more trusted than its worst claim. */
const TIER_RANK: Record<TrustTier, number> = {
  affirming: 0,
  warning: 1,
  contraindicated: 2,
  none: 3,
}

/** The less trusted of two tiers (`none` counts as the least: nothing was affirmed). */
export function worseTier(a: TrustTier, b: TrustTier): TrustTier {
  return TIER_RANK[a] >= TIER_RANK[b] ? a : b
}

/** The AR4SI categories keylime-ts claims (draft-ietf-rats-ar4si §2.3). */
export type VectorCategory = 'instance-identity' | 'configuration' | 'executables' | 'hardware'

/** A trustworthiness vector: only the categories something is claimed for. */
export type TrustVector = Partial<Record<VectorCategory, number>>

/** AR4SI claim values keylime-ts uses (draft-ietf-rats-ar4si §2.3, Veraison `trustclaim.go`). */
export const CLAIM = {
  /** instance-identity 2, hardware 2 (genuine), executables 2 and configuration 2 (approved). */
  AFFIRMED: 2,
  /** executables 96 (contraindicated run-time), configuration 96 (unsupportable). */
  CONTRAINDICATED: 96,
  /** instance-identity 97: the attesting environment is not recognised. */
  UNRECOGNIZED: 97,
  /** Any category: cryptographic validation of the evidence failed. */
  CRYPTO_FAILED: 99,
} as const

/** One appraisal (`EAR-appraisal`). */
export interface EarAppraisal {
  ear_status: TrustTier
  /** Absent when nothing was appraised (`none`): the draft's vector is a non-empty map. */
  ear_trustworthiness_vector?: TrustVector
}

/** `ear_verifier_id` (AR4SI §2.2.2). */
export interface VerifierId {
  developer: string
  build: string
}

/** The EAR claims-set. */
export interface EarClaims {
  eat_profile: typeof EAR_PROFILE
  iat: number
  ear_verifier_id: VerifierId
  /** The worst status of the submods (optional top-level claim since -03). */
  ear_status: TrustTier
  submods: Record<string, EarAppraisal>
  eat_nonce?: string
}

/** This verifier's identity: the project and its version from package.json. */
export const VERIFIER_ID: VerifierId = {
  developer: 'https://github.com/keylime-ts',
  build: `keylime-ts ${pkg.version}`,
}

/** The status an appraisal may have: no more trusted than its vector's worst claim. */
export function capStatus(status: TrustTier, vector: TrustVector | undefined): TrustTier {
  let out = status
  for (const v of Object.values(vector ?? {})) {
    const t = tierOf(v)
    if (t !== 'none' && TIER_RANK[t] > TIER_RANK[out]) out = t
  }
  return out
}

/** An appraisal with its status capped by its vector, and an empty vector left out. */
export function appraisal(status: TrustTier, vector: TrustVector): EarAppraisal {
  const keep = Object.keys(vector).length > 0
  return keep
    ? { ear_status: capStatus(status, vector), ear_trustworthiness_vector: vector }
    : { ear_status: status }
}

const NONCE_TEXT = /^[A-Za-z0-9+/_-]{11,88}={0,2}$/

/**
 * Checks a caller's nonce for `eat_nonce`: the base64 or base64url text of 8 to 64 bytes
 * (draft-ietf-rats-ear-04 §3: 12 to 88 characters in JWT; 11 unpadded). Echoed as given.
 *
 * @throws {BadRequest} `ERR_EAR_NONCE` for anything else
 */
export function checkEarNonce(nonce: string): string {
  const bad = () =>
    new BadRequest('nonce must be the base64 or base64url text of 8 to 64 bytes', {
      code: 'ERR_EAR_NONCE',
    })
  if (nonce.length > 90 || !NONCE_TEXT.test(nonce)) throw bad()
  const bytes = Buffer.from(nonce.replace(/-/g, '+').replace(/_/g, '/'), 'base64').length
  if (bytes < 8 || bytes > 64) throw bad()
  return nonce
}

/** Inputs of {@link earClaims}. */
export interface EarClaimsInput {
  submods: Record<string, EarAppraisal>
  /** Issue time, epoch seconds. */
  iat: number
  /** A nonce already checked by {@link checkEarNonce}. */
  nonce?: string
  verifierId?: VerifierId
}

/** The claims-set of one EAR. */
export function earClaims(input: EarClaimsInput): EarClaims {
  let status: TrustTier | undefined
  for (const a of Object.values(input.submods)) {
    status = status === undefined ? a.ear_status : worseTier(status, a.ear_status)
  }
  const claims: EarClaims = {
    eat_profile: EAR_PROFILE,
    iat: input.iat,
    ear_verifier_id: input.verifierId ?? VERIFIER_ID,
    ear_status: status ?? 'none',
    submods: input.submods,
  }
  if (input.nonce !== undefined) claims.eat_nonce = input.nonce
  return claims
}
