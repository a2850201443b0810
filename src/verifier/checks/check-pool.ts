/**
 * The verifier's pool of check workers, sized to the cores. Rounds with an IMA list or a UEFI log
 * to replay, and `POST /verify/evidence` bodies, are checked in a Bun Worker so a large list holds
 * neither the scheduler nor other rounds. Plain rounds stay on the main thread: their check costs
 * about what the round trip to a worker does (docs/benchmarks.md).
 *
 * Messages are plain data (`check-job.ts`); a runtime or measured-boot policy text goes to a
 * worker once per `id:version` (`worker-policy-cache.ts`). In a compiled binary the worker is an
 * extra entry of `bun build --compile` ({@link workerEntries}). Without a worker (none loads, or
 * one died) checks run inline: slower, never wrong. A worker's `error` answer is not re-run: it is
 * that round's failure (the loop makes it `internal.verifier.exception`), and nothing a worker
 * answers can throw out of the pool's handlers (issue 17).
 *
 * @module
 */
import { availableParallelism } from 'node:os'
import type { Logger } from '../../log/logger.ts'
import type { BoundedCache } from '../../protocol/bounded-cache.ts'
import {
  type CheckJob,
  type CheckJobResult,
  type EvidenceJob,
  mbPolicySlots,
  recordData,
  resultFromData,
  WORKER_POLICY_SLOTS,
} from './check-job.ts'
import {
  type CheckOptions,
  type CheckResult,
  checkQuoteAnswer,
  mbPolicyActive,
  type RoundPolicies,
  type RoundRecord,
} from './check-quote.ts'
import type { CheckWorkerInit } from './check-worker.ts'
import { type EvidenceVerdict, evidenceException, verifyEvidenceBody } from './evidence-request.ts'

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

/** A job sent to a worker, settled exactly once. Neither method throws. */
interface Pending {
  /** Takes the worker's answer. */
  done(d: CheckJobResult): void
  /** The worker died or the pool closed before it answered. */
  orphaned(): void
}

interface Slot {
  worker: Worker
  pending: Map<number, Pending>
  /** Runtime policies (`id:version`) the worker holds, as its cache rule keeps them. */
  policies: Set<string>
  /** Text lengths of the MB policies (`id:version`) the worker holds, in a cache like its own. */
  mbPolicies: BoundedCache<number>
}

/**
 * Where the worker entry may be: next to this module (running from source), or where
 * `bun build --compile src/main.ts src/verifier/checks/check-worker.ts` puts it inside the binary.
 */
export function workerEntries(): string[] {
  const here = new URL('./check-worker.ts', import.meta.url).href
  return import.meta.url.includes('$bunfs')
    ? [here, '/$bunfs/root/verifier/checks/check-worker.js', '/$bunfs/root/check-worker.js']
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
    (policies.mbActive ?? mbPolicyActive(policies.mb))
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
  #evidenceRunning = 0
  readonly #evidenceWaiting: (() => void)[] = []

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
    const slot: Slot = {
      worker,
      pending: new Map(),
      policies: new Set(),
      mbPolicies: mbPolicySlots((n: number) => n),
    }
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
      const seq = (e.data as { seq?: unknown } | null)?.seq
      const p = typeof seq === 'number' ? slot.pending.get(seq) : undefined
      if (p === undefined) return
      slot.pending.delete(seq as number)
      p.done(e.data)
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
    for (const p of slot.pending.values()) p.orphaned()
    slot.pending.clear()
    if (!this.#closed) {
      void this.#spawn().then((s) => {
        if (s !== undefined && !this.#closed) this.#slots.push(s)
        else s?.worker.terminate()
      })
    }
  }

  /** The worker with the fewest jobs queued (undefined when none runs). */
  #pick(): Slot | undefined {
    let slot = this.#slots[0]
    for (const s of this.#slots)
      if (slot !== undefined && s.pending.size < slot.pending.size) slot = s
    return slot
  }

  /** Posts a job; a job that cannot be posted is settled at once as orphaned. */
  #post(
    slot: Slot,
    seq: number,
    job: CheckJob | EvidenceJob,
    p: Pending,
    transfer?: ArrayBuffer[],
  ) {
    slot.pending.set(seq, p)
    try {
      slot.worker.postMessage(job, transfer ?? [])
    } catch {
      slot.pending.delete(seq)
      p.orphaned()
    }
  }

  /**
   * Checks one answer: in a worker when the round is heavy and a worker runs, else inline.
   * `imaKey` names the runtime policy version (`id:version`) and `imaText` gives its text;
   * `policies.mbKey` names the MB policy version.
   * A worker's `error` answer rejects with {@link VerifierError} `ERR_VERIFIER_CHECK_FAILED` and
   * is not re-run (a deterministic failure would just fail again, on the main thread); a check
   * orphaned by a dying worker runs inline. The caller's round turns a throw or a rejection into
   * the agent's `internal.verifier.exception`.
   */
  async check(
    rec: RoundRecord,
    results: unknown,
    nonce: string | Uint8Array,
    policies: RoundPolicies,
    imaKey: string | null,
    imaText: () => string | undefined,
  ): Promise<CheckResult> {
    const inline = () => checkQuoteAnswer(rec, results, nonce, policies, this.#o.check)
    const heavy = isHeavyRound(results, policies)
    const slot = heavy ? this.#pick() : undefined
    if (slot === undefined) {
      if (heavy) this.inline++
      return inline()
    }
    const seq = ++this.#seq
    const mbKey = policies.mb === null ? null : (policies.mbKey ?? null)
    const job: CheckJob = {
      type: 'quote',
      seq,
      rec: recordData(rec),
      results,
      nonce,
      imaKey: policies.ima === null ? null : imaKey,
      mbKey,
      mb: policies.mb,
    }
    if (job.imaKey !== null && !slot.policies.has(job.imaKey)) {
      job.imaText = imaText()
      if (slot.policies.size >= WORKER_POLICY_SLOTS) slot.policies.clear()
      slot.policies.add(job.imaKey)
    }
    if (mbKey !== null && policies.mb !== null) {
      if (slot.mbPolicies.get(mbKey) === undefined) slot.mbPolicies.set(mbKey, policies.mb.length)
      else job.mb = null // the worker holds it parsed
    }
    this.offloaded++
    return new Promise<CheckResult>((resolve, reject) => {
      this.#post(slot, seq, job, {
        done: (d) => {
          try {
            resolve(resultFromData(d, this.#o.check.rules))
          } catch (err) {
            reject(err)
          }
        },
        orphaned: () => {
          this.inline++
          try {
            resolve(inline())
          } catch (err) {
            reject(err)
          }
        },
      })
    })
  }

  /**
   * Verifies a `POST /verify/evidence` body in a worker (inline when none runs). At most
   * `max(1, workers - 1)` bodies are evaluated at once, so one worker stays free for the pull
   * rounds; further requests wait their turn. Never rejects: a worker that fails or dies gives an
   * `internal.verifier.exception` answer. `body` is transferred to the worker (detached here).
   */
  async evidence(body: ArrayBuffer): Promise<EvidenceVerdict> {
    while (this.#slots.length > 0 && this.#evidenceRunning >= Math.max(1, this.#slots.length - 1)) {
      await new Promise<void>((resolve) => this.#evidenceWaiting.push(resolve))
    }
    const slot = this.#pick()
    if (slot === undefined) return verifyEvidenceBody(new Uint8Array(body), this.#o.check)
    this.#evidenceRunning++
    try {
      return await new Promise<EvidenceVerdict>((resolve) => {
        const seq = ++this.#seq
        const failed = (why: string): EvidenceVerdict => ({
          kind: 'answer',
          answer: evidenceException(why, this.#o.check.rules),
        })
        this.#post(
          slot,
          seq,
          { type: 'evidence', seq, body },
          {
            done: (d) =>
              resolve(
                d.kind === 'evidence' ? d.verdict : failed(d.kind === 'error' ? d.error : d.kind),
              ),
            orphaned: () => resolve(failed('check worker stopped')),
          },
          [body],
        )
      })
    } finally {
      this.#evidenceRunning--
      this.#evidenceWaiting.shift()?.()
    }
  }

  /** Stops the workers (pending checks finish inline; waiting evidence runs inline). */
  close(): void {
    this.#closed = true
    for (const s of this.#slots.splice(0)) {
      s.worker.terminate()
      for (const p of s.pending.values()) p.orphaned()
      s.pending.clear()
    }
    for (const w of this.#evidenceWaiting.splice(0)) w()
  }
}
