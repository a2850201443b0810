/**
 * The verifier's pool of check workers, sized to the cores: rounds whose checks are CPU-heavy
 * (an IMA list to replay and evaluate, a UEFI event log to replay and evaluate) run
 * `checkQuoteAnswer` in a Bun Worker, so a large list does not stall the scheduler and the other
 * rounds. Plain rounds (quote signature, nonce, PCR digest, clock, PCR 16, `tpm_policy`) stay on
 * the main thread: their check costs ~60–80 µs, about what a structured-clone round trip to a
 * worker costs, and moving them would raise CPU per attestation (measured; docs/benchmarks.md).
 *
 * Messages are plain data (`check-job.ts`). A runtime policy text is sent to a worker once per
 * `id:version`. In a compiled binary the worker is an extra entry point of `bun build --compile`
 * (`src/main.ts src/verifier/check-worker.ts`), which Bun stores as
 * `/$bunfs/root/verifier/check-worker.js`; the pool tries that path after the source-relative
 * one. When no entry loads (a binary built without it) or a worker dies, the checks run inline
 * on the main thread: slower under load, never wrong.
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import type { Logger } from '../log/logger.ts'
import type { AgentRecord } from './agent-record.ts'
import { type CheckJob, type CheckJobResult, recordData, resultFromData } from './check-job.ts'
import {
  type CheckOptions,
  type CheckResult,
  checkQuoteAnswer,
  mbPolicyActive,
  type RoundPolicies,
} from './check-quote.ts'
import type { CheckWorkerInit } from './check-worker.ts'

/** Options of {@link CheckPool}. */
export interface CheckPoolOptions {
  /** Workers (default: the number of cores; 0 = always inline). */
  size?: number
  check: CheckOptions
  /** `severity_labels` and `severity_policy` as configured (rebuilt in each worker). */
  labels: string[]
  severityPolicy: { event_id: string; severity_label: string }[]
  log: Logger
  /** Worker entry (tests); default: see {@link workerEntries}. */
  entry?: string
}

interface Slot {
  worker: Worker
  pending: Map<number, { resolve(r: CheckResult): void; inline(): void }>
  policies: Set<string>
}

/**
 * Where the worker entry may be: next to this module (running from source), or where
 * `bun build --compile src/main.ts src/verifier/check-worker.ts` puts it inside the binary.
 */
export function workerEntries(): string[] {
  const here = new URL('./check-worker.ts', import.meta.url).href
  return import.meta.url.includes('$bunfs')
    ? [here, '/$bunfs/root/verifier/check-worker.js', '/$bunfs/root/check-worker.js']
    : [here]
}

/** Whether a round's checks are heavy enough for a worker: an IMA list or an MB log to replay. */
export function isHeavyRound(results: unknown, policies: RoundPolicies): boolean {
  if (typeof results !== 'object' || results === null) return false
  const r = results as { ima_measurement_list?: unknown; mb_measurement_list?: unknown }
  if (typeof r.ima_measurement_list === 'string' && r.ima_measurement_list.length > 0) return true
  return (
    typeof r.mb_measurement_list === 'string' &&
    r.mb_measurement_list.length > 0 &&
    mbPolicyActive(policies.mb)
  )
}

/** The pool. */
export class CheckPool {
  readonly #o: CheckPoolOptions
  readonly #slots: Slot[] = []
  /** The entry that loaded (undefined until one did). */
  #entry: string | undefined
  #seq = 0
  #closed = false
  /** Checks run in a worker. */
  offloaded = 0
  /** Heavy checks run inline (no worker available). */
  inline = 0

  private constructor(o: CheckPoolOptions) {
    this.#o = o
  }

  /** Starts the workers; resolves once they answered (or were found unusable: inline mode). */
  static async start(o: CheckPoolOptions): Promise<CheckPool> {
    const pool = new CheckPool(o)
    const size = o.size ?? availableParallelism()
    const started = await Promise.all(Array.from({ length: size }, () => pool.#spawn()))
    for (const s of started) if (s !== undefined) pool.#slots.push(s)
    if (size > 0 && pool.#slots.length === 0) {
      o.log.warn('check workers unavailable; IMA and measured-boot checks run on the main thread')
    }
    return pool
  }

  /** Workers running. */
  get size(): number {
    return this.#slots.length
  }

  async #spawn(): Promise<Slot | undefined> {
    const entries =
      this.#entry !== undefined
        ? [this.#entry]
        : this.#o.entry !== undefined
          ? [this.#o.entry]
          : workerEntries()
    for (const [i, entry] of entries.entries()) {
      const slot = await this.#spawnAt(entry, i === entries.length - 1)
      if (slot !== undefined) {
        this.#entry = entry
        return slot
      }
    }
    return undefined
  }

  async #spawnAt(entry: string, last: boolean): Promise<Slot | undefined> {
    let worker: Worker
    try {
      worker = new Worker(entry)
    } catch (err) {
      if (last) this.#o.log.warn('cannot start a check worker', { error: String(err) })
      return undefined
    }
    const slot: Slot = { worker, pending: new Map(), policies: new Set() }
    const ready = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), 10_000)
      worker.onmessage = (e: MessageEvent<{ kind: string }>) => {
        if (e.data.kind === 'ready') {
          clearTimeout(t)
          resolve(true)
        }
      }
      worker.onerror = (e) => {
        clearTimeout(t)
        if (last) {
          this.#o.log.warn('check worker failed to start', { error: String(e.message ?? e) })
        }
        resolve(false)
      }
      const init: CheckWorkerInit = {
        type: 'init',
        labels: this.#o.labels,
        severityPolicy: this.#o.severityPolicy,
        mbPolicyName: this.#o.check.mbPolicyName,
        mbEvaluate: this.#o.check.mbEvaluate,
        ignoreTomtouErrors: this.#o.check.ignoreTomtouErrors,
      }
      worker.postMessage(init)
    })
    if (!ready) {
      worker.terminate()
      return undefined
    }
    worker.onmessage = (e: MessageEvent<CheckJobResult>) => {
      const p = slot.pending.get(e.data.seq)
      if (p === undefined) return
      slot.pending.delete(e.data.seq)
      if (e.data.kind === 'error') {
        this.#o.log.warn('check worker job failed; checking inline', { error: e.data.error })
        p.inline()
      } else p.resolve(resultFromData(e.data, this.#o.check.rules))
    }
    worker.onerror = (e) => {
      this.#o.log.error('check worker died; restarting it', { error: String(e.message ?? e) })
      this.#drop(slot)
    }
    worker.unref()
    return slot
  }

  #drop(slot: Slot): void {
    const i = this.#slots.indexOf(slot)
    if (i >= 0) this.#slots.splice(i, 1)
    slot.worker.terminate()
    for (const p of slot.pending.values()) p.inline()
    slot.pending.clear()
    if (!this.#closed) {
      void this.#spawn().then((s) => {
        if (s !== undefined && !this.#closed) this.#slots.push(s)
        else s?.worker.terminate()
      })
    }
  }

  /**
   * Checks one answer: in a worker when the round is heavy and a worker runs, else inline.
   * `imaKey` names the runtime policy version (`id:version`) and `imaText` gives its text.
   */
  check(
    rec: AgentRecord,
    results: unknown,
    nonce: string,
    policies: RoundPolicies,
    imaKey: string | null,
    imaText: () => string | undefined,
  ): CheckResult | Promise<CheckResult> {
    const inline = () => checkQuoteAnswer(rec, results, nonce, policies, this.#o.check)
    if (this.#slots.length === 0 || !isHeavyRound(results, policies)) {
      if (this.#slots.length === 0 && isHeavyRound(results, policies)) this.inline++
      return inline()
    }
    let slot = this.#slots[0] as Slot
    for (const s of this.#slots) if (s.pending.size < slot.pending.size) slot = s
    const seq = ++this.#seq
    const job: CheckJob = {
      seq,
      rec: recordData(rec),
      results,
      nonce,
      imaKey: policies.ima === null ? null : imaKey,
      mb: policies.mb,
    }
    if (job.imaKey !== null && !slot.policies.has(job.imaKey)) {
      job.imaText = imaText()
      slot.policies.add(job.imaKey)
    }
    this.offloaded++
    return new Promise<CheckResult>((resolve) => {
      slot.pending.set(seq, {
        resolve,
        inline: () => {
          this.inline++
          resolve(inline())
        },
      })
      slot.worker.postMessage(job)
    })
  }

  /** Stops the workers (pending checks finish inline). */
  close(): void {
    this.#closed = true
    for (const s of this.#slots.splice(0)) {
      s.worker.terminate()
      for (const p of s.pending.values()) p.inline()
    }
  }
}
