/**
 * The verifier's one-shot checks (keylime-api.md §1.5): `GET /verify/identity` (an identity quote
 * against the enrolled AK and NK) and `POST /verify/evidence` (API 2.4/2.5), whose evaluation
 * (`checks/evaluate-evidence.ts`) runs on a check worker, off the event loop.
 *
 * @module
 */
import { BadRequest, KeylimeError, NotFound } from '../../errors.ts'
import { isHashAlg } from '../../tpm/constants.ts'
import { checkNkBinding } from '../../tpm/extend-pcr.ts'
import { parseTpm2bPublic, toKeyObject } from '../../tpm/public-area.ts'
import { verifyQuote } from '../../tpm/verify-quote.ts'
import type { EvidenceResults } from '../checks/evidence-request.ts'
import { checkAgentId } from './agent-id.ts'
import type { VerifierServiceOptions } from './service-options.ts'

/** The query parameters `GET /verify/identity` requires. */
const IDENTITY_QUERY = ['agent_uuid', 'quote', 'nonce', 'hash_alg'] as const

/** The one-shot check operations of the API. */
export class EvidenceApi {
  readonly #o: VerifierServiceOptions

  constructor(o: VerifierServiceOptions) {
    this.#o = o
  }

  /** `GET /verify/identity`: `{valid: 1}`, or `{valid: 0, reason}`. */
  async verifyIdentity(q: Record<string, string | undefined>): Promise<Record<string, unknown>> {
    for (const k of IDENTITY_QUERY) {
      if (!q[k]) throw new BadRequest(`missing query parameter '${k}'`)
    }
    const id = q.agent_uuid as string
    checkAgentId(id)
    const row = await this.#o.store.agents.getAgent(id)
    if (row === undefined) throw new NotFound('agent id not found')
    const hashAlg = q.hash_alg as string
    if (!isHashAlg(hashAlg))
      return { valid: 0, reason: `unsupported hash_alg ${hashAlg.slice(0, 20)}` }
    try {
      const ak = toKeyObject(parseTpm2bPublic(Buffer.from(row.ak_tpm ?? '', 'base64')))
      const v = verifyQuote({
        quote: q.quote as string,
        akPublic: ak,
        nonce: q.nonce as string,
        hashAlg,
      })
      if (row.public_key) checkNkBinding(v.pcrs, hashAlg, row.public_key)
      return { valid: 1 }
    } catch (err) {
      return { valid: 0, reason: err instanceof Error ? err.message : String(err) }
    }
  }

  /**
   * `POST /verify/evidence`: the raw JSON body in, `[status, results]` out; the check pool's
   * evidence job parses and evaluates it.
   *
   * @throws KeylimeError (400) for a body that is not a JSON object, as `readJsonObject`
   */
  async verifyEvidence(body: ArrayBuffer): Promise<[number, EvidenceResults]> {
    const v = await this.#o.checks.evidence(body)
    if (v.kind === 'rejected') throw new KeylimeError(v.code, v.message, { status: v.status })
    return [v.answer.status, v.answer.results]
  }
}
