/**
 * A `POST /verify/evidence` answer (`checks/evidence-request.ts`) as an EAR appraisal: the
 * failures' event ids map onto the vector (`ar4si-vector.ts`), the claims the checks returned
 * affirm the rest. The AK comes with the request, so instance identity is never claimed.
 *
 * @module
 */
import type { EvidenceResults } from '../checks/evidence-request.ts'
import { applyEvents } from './ar4si-vector.ts'
import { appraisal, CLAIM, type EarAppraisal, type TrustVector } from './ear-claims.ts'

/** The submod label of a one-shot evidence appraisal (docs/ear.md, "Submods"). */
export const EVIDENCE_SUBMOD = 'tpm'

/** The appraisal of one `/verify/evidence` answer. */
export function appraiseEvidence(results: EvidenceResults): EarAppraisal {
  const vector: TrustVector = {}
  const c = results.claims
  // `pcrs` is there only when the quote verified with the AK
  if (c.pcrs !== undefined) vector.hardware = CLAIM.AFFIRMED
  if (c.ima !== undefined) vector.executables = CLAIM.AFFIRMED
  if (c.measured_boot !== undefined) vector.configuration = CLAIM.AFFIRMED
  // a valid request with no IMA or MB claims passed on tpm_policy, the one policy left
  if (results.valid && c.pcrs !== undefined && c.ima === undefined) {
    vector.configuration = CLAIM.AFFIRMED
  }
  if (results.valid) return appraisal('affirming', vector)
  const mapped = applyEvents(
    vector,
    results.failures.map((f) => f.type),
  )
  // failures no category covers (internal.verifier.exception): the appraisal did not conclude
  return mapped ? appraisal('contraindicated', vector) : appraisal('none', {})
}
