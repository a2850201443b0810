/**
 * A `POST /verify/evidence` answer (`checks/evidence-request.ts`) as an EAR appraisal: the
 * failures' event ids map onto the vector (`ar4si-vector.ts`), the checks that ran affirm the
 * rest. The AK comes with the request, so instance identity is never claimed.
 *
 * @module
 */
import type { EvidenceChecks, EvidenceResults } from '../checks/evidence-request.ts'
import { applyEvents } from './ar4si-vector.ts'
import { appraisal, CLAIM, type EarAppraisal, type TrustVector } from './ear-claims.ts'

/** The submod label of a one-shot evidence appraisal (docs/ear.md, "Submods"). */
export const EVIDENCE_SUBMOD = 'tpm'

/** The appraisal of one `/verify/evidence` answer, given which checks ran. */
export function appraiseEvidence(results: EvidenceResults, checks: EvidenceChecks): EarAppraisal {
  const vector: TrustVector = {}
  if (checks.quote) vector.hardware = CLAIM.AFFIRMED
  if (checks.ima) vector.executables = CLAIM.AFFIRMED
  if (checks.mb || checks.tpmPolicy) vector.configuration = CLAIM.AFFIRMED
  if (results.valid) return appraisal('affirming', vector)
  const mapped = applyEvents(
    vector,
    results.failures.map((f) => f.type),
  )
  // failures no category covers (internal.verifier.exception): the appraisal did not conclude
  return mapped ? appraisal('contraindicated', vector) : appraisal('none', {})
}
