/**
 * The verifier's API operations (upstream `cloud_verifier_tornado.py` handlers), one class per
 * resource: agents (`agents.ts`, enrolment in `enrol.ts`), policies (`policies.ts`), the
 * one-shot checks (`evidence.ts`) and the signed results (`ear.ts`). Routes (`routes.ts`) only
 * parse and answer.
 *
 * @module
 */
import { AgentsApi } from './agents.ts'
import { AgentsV3Api } from './agents-v3.ts'
import { EarApi } from './ear.ts'
import { EvidenceApi } from './evidence.ts'
import { PoliciesApi } from './policies.ts'
import type { AttestationsApi } from '../push/attestations-api.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** The verifier's API operations, by resource. */
export class VerifierService {
  /** `/agents`. */
  readonly agents: AgentsApi
  /** `/allowlists`, `/mbpolicies`. */
  readonly policies: PoliciesApi
  /** `/verify/identity`, `/verify/evidence`. */
  readonly evidence: EvidenceApi
  /** `/agents/{id}/ear`, EAR answers of `/verify/evidence`, the JWKS. */
  readonly ear: EarApi
  /** `/v3/agents` (JSON:API). */
  readonly agentsV3: AgentsV3Api
  /** `/v3/agents/{id}/attestations` (push mode). */
  readonly attestations: AttestationsApi | undefined

  constructor(o: VerifierServiceOptions) {
    this.attestations = o.attestations
    this.agents = new AgentsApi(o)
    this.agentsV3 = new AgentsV3Api(o, this.agents)
    this.policies = new PoliciesApi(o)
    this.evidence = new EvidenceApi(o)
    this.ear = new EarApi(o, this.agents, o.ear)
  }
}
