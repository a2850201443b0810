/**
 * The verifier's one-shot checks (keylime-api.md §1.5): `GET /verify/identity` (an identity quote
 * against the enrolled AK and NK) and `POST /verify/evidence` (API 2.4/2.5), whose evaluation
 * (`checks/evaluate-evidence.ts`) runs on a check worker, off the event loop.
 *
 * @module
 */
import { BadRequest, KeylimeError, NotFound } from '../../errors.ts'
import type { EvidenceAnswer } from '../checks/evidence-request.ts'
import { identityQuoteReason } from '../checks/identity-quote.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** The query parameters `GET /verify/identity` requires. */
const IDENTITY_QUERY = ['agent_uuid', 'quote', 'nonce', 'hash_alg'] as const

/** The one-shot check operations of the API. */
export class EvidenceApi {
  readonly #o: VerifierServiceOptions

  constructor(o: VerifierServiceOptions) {
    this.#o = o
  }

  /** `GET /verify/identity`: `{valid: 1}`, or `{valid: 0, reason}` (upstream's reason text). */
  async verifyIdentity(q: Record<string, string | undefined>): Promise<Record<string, unknown>> {
    for (const k of IDENTITY_QUERY) {
      if (!q[k]) throw new BadRequest(`missing query parameter '${k}'`)
    }
    // any id that is not enrolled is 404, as upstream (it does not check the id's form here)
    const row = await this.#o.store.agents.getAgent(q.agent_uuid as string)
    if (row === undefined) throw new NotFound('agent id not found')
    const reason = identityQuoteReason({
      quote: q.quote as string,
      nonce: q.nonce as string,
      hash_alg: q.hash_alg as string,
      ak_tpm: row.ak_tpm ?? '',
    })
    return reason === undefined ? { valid: 1 } : { valid: 0, reason }
  }

  /**
   * `POST /verify/evidence`: the raw JSON body in, the answer (status, results, what was
   * checked) out; the check pool's evidence job parses and evaluates it.
   *
   * @throws KeylimeError (400) for a body that is not a JSON object, as `readJsonObject`
   */
  async verifyEvidence(body: ArrayBuffer): Promise<EvidenceAnswer> {
    const v = await this.#o.checks.evidence(body)
    if (v.kind === 'rejected') throw new KeylimeError(v.code, v.message, { status: v.status })
    return v.answer
  }
}
