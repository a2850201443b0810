/**
 * A process-wide budget of bytes held for peer answers being read. One budget is shared by every
 * reader of a process (the verifier's agent pool and its HTTPS client), so that many hostile
 * peers answering at once cannot each hold a per-answer cap's worth of memory.
 *
 * Taking never waits: a reader that cannot take bytes fails its answer (see `bounded-body.ts`).
 * Waiting readers that each hold part of the budget would deadlock until their timeouts.
 *
 * @module
 */

/** Bytes taken and given back by readers; never more than `limit` at once. */
export class ByteBudget {
  /** Most bytes held at once. */
  readonly limit: number
  #used = 0

  constructor(limit: number) {
    this.limit = limit
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used
  }

  /** Takes `n` bytes; false (nothing taken) when that would pass the limit. */
  take(n: number): boolean {
    if (this.#used + n > this.limit) return false
    this.#used += n
    return true
  }

  /** Gives back `n` bytes taken earlier. */
  give(n: number): void {
    this.#used = Math.max(0, this.#used - n)
  }
}
