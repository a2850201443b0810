/**
 * Entry of a check worker (`check-pool.ts`): runs `checkQuoteAnswer` for rounds with an IMA list
 * or a measured-boot log, off the main thread. Messages are plain data (`check-job.ts`): an
 * `init` with the severity rules and check options, then jobs; each job is answered once.
 *
 * Per worker it caches the compiled runtime policies (by `id:version`, bounded), the parsed
 * `tpm_policy` texts and the AK KeyObjects (by AK).
 *
 * @module
 */
import 'reflect-metadata'
import type { KeyObject } from 'node:crypto'
import type { PolicyLease } from '../ima/index.ts'
import type { CheckJob, CheckJobResult } from './check-job.ts'
import type { CheckOptions } from './check-quote.ts'
import type { TpmPolicy } from './tpm-policy.ts'

declare const self: Worker

// The handler is installed before anything is awaited (a message posted while the module is
// still loading would be lost) and waits for the modules. They are loaded after the
// reflect-metadata polyfill on purpose: in a compiled binary the bundler may otherwise initialise
// @peculiar/x509 (tsyringe) first, which refuses to load without it.
const queue: MessageEvent<CheckWorkerInit | CheckJob>[] = []
let handle: ((e: MessageEvent<CheckWorkerInit | CheckJob>) => void) | undefined
self.onmessage = (e: MessageEvent<CheckWorkerInit | CheckJob>) => {
  if (handle === undefined) queue.push(e)
  else handle(e)
}
const { PolicyCache } = await import('../ima/index.ts')
const { BoundedCache } = await import('../protocol/bounded-cache.ts')
const { parseTpm2bPublic, toKeyObject } = await import('../tpm/public-area.ts')
const { cachedTpmPolicy, recordFromData, resultToData } = await import('./check-job.ts')
const { checkQuoteAnswer } = await import('./check-quote.ts')
const { SeverityRules } = await import('./failure.ts')

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
const policyCache = new PolicyCache(8)
const policies = new Map<string, PolicyLease>()
// keyed by text from the enrolment (tpm_policy, ak_tpm): bounded in bytes as well as entries
const tpmPolicies = new BoundedCache<TpmPolicy>({
  maxEntries: 1024,
  maxBytes: 16 * 1024 * 1024,
  sizeOf: () => 256,
})
const aks = new BoundedCache<KeyObject>({
  maxEntries: 50_000,
  maxBytes: 64 * 1024 * 1024,
  sizeOf: () => 1024,
})

function run(job: CheckJob): CheckJobResult {
  if (opts === undefined) return { seq: job.seq, kind: 'error', error: 'not initialised' }
  let ima = null
  if (job.imaKey !== null) {
    let lease = policies.get(job.imaKey)
    if (lease === undefined && job.imaText !== undefined) {
      lease = policyCache.acquire(job.imaText)
      if (policies.size >= 16) {
        for (const l of policies.values()) l.release()
        policies.clear()
      }
      policies.set(job.imaKey, lease)
    }
    if (lease === undefined) {
      return { seq: job.seq, kind: 'error', error: `runtime policy ${job.imaKey} not sent` }
    }
    ima = lease.policy
  }
  const rec = recordFromData(job.rec, cachedTpmPolicy(tpmPolicies, job.rec.tpmPolicyText))
  let ak = aks.get(job.rec.akTpm)
  if (ak === undefined) {
    ak = toKeyObject(parseTpm2bPublic(Buffer.from(job.rec.akTpm, 'base64')))
    aks.set(job.rec.akTpm, ak)
  }
  rec.akKey = ak
  return resultToData(
    job.seq,
    checkQuoteAnswer(rec, job.results, job.nonce, { ima, mb: job.mb }, opts),
  )
}

handle = (e: MessageEvent<CheckWorkerInit | CheckJob>) => {
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
  const job = m as CheckJob
  let out: CheckJobResult
  try {
    out = run(job)
  } catch (err) {
    out = { seq: job.seq, kind: 'error', error: err instanceof Error ? err.message : String(err) }
  }
  postMessage(out)
}
for (const e of queue.splice(0)) handle(e)
