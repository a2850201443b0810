/**
 * What the verifier's API operations need: the store, the attestation loop they hand agents to,
 * the check workers, and the instance's settings.
 *
 * @module
 */
import type { CheckPool } from '../checks/check-pool.ts'
import type { AttestationLoop } from '../loop/attestation-loop.ts'
import type { AttestationsApi } from '../push/attestations-api.ts'
import type { EarIssuer } from '../results/ear-issuer.ts'
import type { VerifierStore } from '../store/store.ts'

/** Settings the API operations need. */
export interface VerifierServiceOptions {
  store: VerifierStore
  loop: AttestationLoop
  /** The check workers (`/verify/evidence` runs there). */
  checks: CheckPool
  verifierId: string
  verifierIp: string
  verifierPort: number
  instanceId: string
  quoteInterval: number
  leaseMs: number
  enableAgentMtls: boolean
  requireAllowListSignatures: boolean
  /** Signs attestation results (EAR). */
  ear: EarIssuer
  /** The push attestation operations (API 3.0). */
  attestations?: AttestationsApi
  /** `[verifier] mode`: `push` enrols every agent in push mode. */
  mode?: 'pull' | 'push'
}
