/**
 * The verifier's API operations (upstream `cloud_verifier_tornado.py` handlers), one class per
 * resource: agents (`agents.ts`, enrolment in `enrol.ts`), policies (`policies.ts`) and the
 * one-shot checks (`evidence.ts`). Routes (`routes.ts`) only parse and answer.
 *
 * @module
 */
import { AgentsApi } from './agents.ts'
import { EvidenceApi } from './evidence.ts'
import { PoliciesApi } from './policies.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** The verifier's API operations, by resource. */
export class VerifierService {
  /** `/agents`. */
  readonly agents: AgentsApi
  /** `/allowlists`, `/mbpolicies`. */
  readonly policies: PoliciesApi
  /** `/verify/identity`, `/verify/evidence`. */
  readonly evidence: EvidenceApi

  constructor(o: VerifierServiceOptions) {
    this.agents = new AgentsApi(o)
    this.policies = new PoliciesApi(o)
    this.evidence = new EvidenceApi(o)
  }
}
