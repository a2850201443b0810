/**
 * `GET /verify/identity`'s check (upstream 7.14 `cloud_verifier_common.
 * process_verify_identity_quote`): the hash algorithm, then the quote against the enrolled AK,
 * with no PCR check (upstream skips them all, PCR 16 included), as the same code and events
 * `/verify/evidence` uses.
 *
 * @module
 */
import { pythonJsonDumps } from '../../protocol/python-json.ts'
import type { CheckOptions } from './check-quote.ts'
import { evaluateEvidence } from './evaluate-evidence.ts'
import { readEvidence } from './evidence-request.ts'
import { Failure, SeverityRules } from './failure.ts'

/** The query of an identity check, with the agent's enrolled AK (base64 TPM2B_PUBLIC). */
export interface IdentityQuote {
  quote: string
  nonce: string
  hash_alg: string
  ak_tpm: string
}

/**
 * Checks an identity quote. Returns upstream's `reason` (each failure context as Python's
 * `json.dumps`, joined by `"; "`), or undefined when the quote holds.
 */
export function identityQuoteReason(q: IdentityQuote): string | undefined {
  const opts: CheckOptions = {
    rules: new SeverityRules(),
    mbPolicyName: 'accept-all',
    mbEvaluate: 'once',
    ignoreTomtouErrors: false,
  }
  const f = new Failure(opts.rules)
  const data = { quote: q.quote, nonce: q.nonce, hash_alg: q.hash_alg, tpm_ak: q.ak_tpm }
  const read = readEvidence(f, data, undefined, undefined)
  if (read !== undefined) {
    const out = evaluateEvidence(read.evidence, opts)
    if (out.kind === 'refused') f.addAll(out.failure.events)
  }
  return f.failed ? f.events.map((e) => pythonJsonDumps(e.context)).join('; ') : undefined
}
