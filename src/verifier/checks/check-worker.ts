/**
 * Entry of a check worker (`check-pool.ts`): runs `checkQuoteAnswer` for rounds with an IMA list
 * or a measured-boot log, and `/verify/evidence` bodies, off the main thread. Messages are plain
 * data (`check-job.ts`): an `init` with the severity rules and check options, then jobs; each job
 * is answered exactly once, and nothing a job carries can throw out of the handler (a job that
 * throws is answered `error`; an answer that cannot be posted is replaced by an `error`).
 *
 * Per worker it caches the round policies (`worker-policy-cache.ts`), the parsed `tpm_policy`
 * texts and the AK KeyObjects (by AK).
 *
 * @module
 */
import 'reflect-metadata'
import type { KeyObject } from 'node:crypto'
import type { CheckJob, CheckJobResult, EvidenceJob } from './check-job.ts'
import type { CheckOptions } from './check-quote.ts'

declare const self: Worker

// The handler is installed before anything is awaited (a message posted while the module is
// still loading would be lost) and waits for the modules. They are loaded after the
// reflect-metadata polyfill on purpose: in a compiled binary the bundler may otherwise initialise
// @peculiar/x509 (tsyringe) first, which refuses to load without it.
type Message = CheckWorkerInit | CheckJob | EvidenceJob
const queue: MessageEvent<Message>[] = []
let handle: ((e: MessageEvent<Message>) => void) | undefined
self.onmessage = (e: MessageEvent<Message>) => {
  if (handle === undefined) queue.push(e)
  else handle(e)
}
const { BoundedCache } = await import('../../protocol/bounded-cache.ts')
const { parseTpm2bPublic, toKeyObject } = await import('../../tpm/public-area.ts')
const { cachedTpmPolicy, recordFromData, resultToData, tpmPolicyCache } =
  await import('./check-job.ts')
const { checkQuoteAnswer } = await import('./check-quote.ts')
const { verifyEvidenceBody } = await import('./evidence-request.ts')
const { SeverityRules } = await import('./failure.ts')
const { WorkerPolicyCache } = await import('./worker-policy-cache.ts')

/** The first message a worker gets. */
export interface CheckWorkerInit {
  type: 'init'
  labels: string[]
  severityPolicy: { event_id: string; severity_label: string }[]
  mbPolicyName: string
  mbEvaluate: string
  ignoreTomtouErrors: boolean
}

let opts: CheckOptions | undefined
const policies = new WorkerPolicyCache()
// keyed by text from the enrolment (tpm_policy, ak_tpm): bounded in bytes as well as entries
const tpmPolicies = tpmPolicyCache()
const aks = new BoundedCache<KeyObject>({
  maxEntries: 50_000,
  maxBytes: 64 * 1024 * 1024,
  sizeOf: () => 1024,
})

function run(job: CheckJob | EvidenceJob): CheckJobResult {
  if (opts === undefined) return { seq: job.seq, kind: 'error', error: 'not initialised' }
  if (job.type === 'evidence') {
    return {
      seq: job.seq,
      kind: 'evidence',
      verdict: verifyEvidenceBody(new Uint8Array(job.body), opts),
    }
  }
  const round = policies.roundPolicies(job)
  if ('error' in round) return { seq: job.seq, kind: 'error', error: round.error }
  const rec = recordFromData(job.rec, cachedTpmPolicy(tpmPolicies, job.rec.tpmPolicyText))
  rec.akKey = akOf(job.rec.akTpm)
  return resultToData(job.seq, checkQuoteAnswer(rec, job.results, job.nonce, round, opts))
}

/** The AK KeyObject, cached; undefined when it does not parse (the check reports that). */
function akOf(akTpm: string): KeyObject | undefined {
  let ak = aks.get(akTpm)
  if (ak === undefined) {
    try {
      ak = toKeyObject(parseTpm2bPublic(Buffer.from(akTpm, 'base64')))
    } catch {
      return undefined
    }
    aks.set(akTpm, ak)
  }
  return ak
}

function errorText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : 'non-error exception'
}

handle = (e: MessageEvent<Message>) => {
  const m = e.data
  if ('type' in m && m.type === 'init') {
    opts = {
      rules: new SeverityRules(m.labels, m.severityPolicy),
      mbPolicyName: m.mbPolicyName,
      mbEvaluate: m.mbEvaluate,
      ignoreTomtouErrors: m.ignoreTomtouErrors,
    }
    postMessage({ seq: -1, kind: 'ready' })
    return
  }
  const job = m as CheckJob | EvidenceJob
  let out: CheckJobResult
  try {
    out = run(job)
  } catch (err) {
    out = { seq: job.seq, kind: 'error', error: errorText(err) }
  }
  try {
    postMessage(out)
  } catch (err) {
    postMessage({ seq: job.seq, kind: 'error', error: `answer not sent: ${errorText(err)}` })
  }
}
for (const e of queue.splice(0)) handle(e)
