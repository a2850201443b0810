/**
 * What a check worker keeps between jobs, so a round on a known policy version compiles, parses
 * and builds nothing: runtime and measured-boot policies by the `id:version` key their job names
 * (the text comes with the first job a worker gets for that key), and tenant IMA keyrings by a
 * digest of the `ima_sign_verification_keys` text (a fleet mostly shares one set, or none).
 *
 * @module
 */
import { createHash } from 'node:crypto'
import {
  type CompiledRuntimePolicy,
  type ImaKeyring,
  PolicyCache,
  type PolicyLease,
} from '../../ima/index.ts'
import { BoundedCache } from '../../protocol/bounded-cache.ts'
import { type CheckJob, mbPolicySlots, WORKER_POLICY_SLOTS } from './check-job.ts'
import {
  type ParsedMbPolicy,
  parseMbPolicy,
  type RoundPolicies,
  tenantKeyringOf,
} from './check-quote.ts'

/** A tenant keyring and the length of the text it was built from (its size, roughly). */
interface KeyringEntry {
  keyring: ImaKeyring | null
  bytes: number
}

/** The policy caches of one check worker. */
export class WorkerPolicyCache {
  readonly #compiled = new PolicyCache(8)
  readonly #runtime = new Map<string, PolicyLease>()
  readonly #mb = mbPolicySlots<ParsedMbPolicy>((p) => p.text?.length ?? 0)
  readonly #keyrings = new BoundedCache<KeyringEntry>({
    maxEntries: 1024,
    maxBytes: 16 * 1024 * 1024,
    sizeOf: (e) => e.bytes,
  })

  /**
   * The policies of a quote job's round, or the `error` to answer when the job names a policy
   * version this worker does not hold and did not get the text of.
   *
   * @throws when a runtime policy text sent with the job does not compile (the job's `error`)
   */
  roundPolicies(job: CheckJob): RoundPolicies | { error: string } {
    const ima = this.#runtimePolicy(job)
    if (ima === undefined) return { error: `runtime policy ${job.imaKey} not sent` }
    const mb = this.#mbPolicy(job)
    if (mb === undefined) return { error: `measured-boot policy ${job.mbKey} not sent` }
    return {
      ima,
      mb: mb.text,
      mbActive: mb.active,
      mbRefstate: mb.refstate,
      tenantKeyring: this.#tenantKeyring(job.rec.imaSignVerificationKeys),
    }
  }

  /** Null without a runtime policy; undefined when its text was not sent. */
  #runtimePolicy(job: CheckJob): CompiledRuntimePolicy | null | undefined {
    if (job.imaKey === null) return null
    let lease = this.#runtime.get(job.imaKey)
    if (lease === undefined && job.imaText !== undefined) {
      lease = this.#compiled.acquire(job.imaText)
      if (this.#runtime.size >= WORKER_POLICY_SLOTS) {
        for (const l of this.#runtime.values()) l.release()
        this.#runtime.clear()
      }
      this.#runtime.set(job.imaKey, lease)
    }
    return lease?.policy
  }

  /** The job's MB policy, parsed once per key; undefined when its text was not sent. */
  #mbPolicy(job: CheckJob): ParsedMbPolicy | undefined {
    const key = job.mbKey ?? null
    if (key === null) return parseMbPolicy(job.mb)
    let p = this.#mb.get(key)
    if (p === undefined && job.mb !== null) {
      p = parseMbPolicy(job.mb)
      this.#mb.set(key, p)
    }
    return p
  }

  /** The agent's keyring, built once per distinct keys text. */
  #tenantKeyring(keys: string): ImaKeyring | null {
    if (keys === '') return null
    const digest = createHash('sha256').update(keys).digest('base64')
    let e = this.#keyrings.get(digest)
    if (e === undefined) {
      e = { keyring: tenantKeyringOf(keys), bytes: keys.length }
      this.#keyrings.set(digest, e)
    }
    return e.keyring
  }
}
