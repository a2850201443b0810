/**
 * One scheduler per verifier process: a due-time heap (`due-heap.ts`) and a single timer for the
 * whole fleet, with a bound on concurrent rounds (a counting semaphore). Items due while every
 * slot is busy wait in the heap and start as slots free up; their lateness is measured.
 *
 * @module
 */
import { DueHeap } from './due-heap.ts'

/** Options of {@link Scheduler}. */
export interface SchedulerOptions {
  /** Maximum rounds in flight. */
  maxInFlight: number
  /** Runs one round for `key`; its promise must not reject. */
  run(key: string): Promise<void>
  /** Lateness observer (ms after the due time a round started). */
  onLag?(ms: number): void
  /**
   * Called for a due key before it takes an in-flight slot: 0 to run it now, or ms to defer it
   * by (it then waits in the heap, not in a slot, and its lateness still counts from the
   * original due time).
   */
  admit?(key: string): number
}

/** The scheduler. */
export class Scheduler {
  readonly #heap = new DueHeap()
  readonly #gens = new Map<string, number>()
  readonly #opts: SchedulerOptions
  #timer: ReturnType<typeof setTimeout> | undefined
  #armedFor = Number.POSITIVE_INFINITY
  #inFlight = 0
  #stopped = false
  readonly #idle = new Set<() => void>()

  constructor(opts: SchedulerOptions) {
    this.#opts = opts
  }

  /** Rounds running now. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** Scheduled keys. */
  get scheduled(): number {
    return this.#gens.size
  }

  /** Lateness of the most overdue waiting item (ms, 0 if none is overdue). */
  currentLag(now = performance.now()): number {
    this.#dropStale()
    const top = this.#heap.peek()
    return top === undefined ? 0 : Math.max(0, now - top.due)
  }

  /** Schedules `key` to run at `due` (`performance.now()` ms), replacing any earlier schedule. */
  schedule(key: string, due: number): void {
    if (this.#stopped) return
    const gen = (this.#gens.get(key) ?? 0) + 1
    this.#gens.set(key, gen)
    this.#heap.push({ due, key, gen })
    if (due < this.#armedFor) this.#arm()
  }

  /** Removes `key` from the schedule (a running round is not interrupted). */
  cancel(key: string): void {
    this.#gens.delete(key)
  }

  /** Stops dispatching; resolves when running rounds finished or `drainMs` passed. */
  async stop(drainMs: number): Promise<void> {
    this.#stopped = true
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#heap.clear()
    this.#gens.clear()
    if (this.#inFlight === 0) return
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, drainMs)
      function done(): void {
        clearTimeout(t)
        resolve()
      }
      this.#idle.add(done)
    })
  }

  #dropStale(): void {
    for (;;) {
      const top = this.#heap.peek()
      if (top === undefined || this.#gens.get(top.key) === top.gen) return
      this.#heap.pop()
    }
  }

  #arm(): void {
    if (this.#stopped) return
    this.#dropStale()
    const top = this.#heap.peek()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#armedFor = Number.POSITIVE_INFINITY
    if (top === undefined || this.#inFlight >= this.#opts.maxInFlight) return
    this.#armedFor = top.due
    this.#timer = setTimeout(() => this.#pump(), Math.max(0, top.due - performance.now()))
  }

  #pump(): void {
    this.#timer = undefined
    this.#armedFor = Number.POSITIVE_INFINITY
    const now = performance.now()
    while (this.#inFlight < this.#opts.maxInFlight) {
      const top = this.#heap.peek()
      if (top === undefined || top.due > now) break
      this.#heap.pop()
      if (this.#gens.get(top.key) !== top.gen) continue
      const defer = this.#opts.admit?.(top.key) ?? 0
      if (defer > 0) {
        this.#heap.push({ due: now + defer, key: top.key, gen: top.gen, from: top.from ?? top.due })
        continue
      }
      this.#gens.delete(top.key)
      const lag = now - (top.from ?? top.due)
      this.#opts.onLag?.(lag)
      this.#inFlight++
      this.#opts.run(top.key).finally(() => {
        this.#inFlight--
        if (this.#inFlight === 0) for (const f of this.#idle) f()
        if (!this.#stopped && this.#timer === undefined) this.#arm()
      })
    }
    this.#arm()
  }
}
