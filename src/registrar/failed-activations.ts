/**
 * Counts failed activations per agent so that they are logged without flooding the log: the
 * registrar writes a line at the 1st, 10th, 100th, … failure in a row of one agent. A wrong
 * auth_tag changes nothing (guessing the HMAC of a 190-bit challenge is hopeless, and a lockout
 * would hand any client a way to block an agent), so the count only decides what is logged.
 * Bounded: the oldest agents are forgotten first.
 *
 * @module
 */

/** Default number of agents tracked. */
export const FAILED_ACTIVATIONS_MAX = 10_000

/** Whether `n` is 1, 10, 100, … */
function isPowerOfTen(n: number): boolean {
  let m = n
  while (m >= 10 && m % 10 === 0) m /= 10
  return m === 1
}

/** A bounded agent id → consecutive failed activations map. */
export class FailedActivations {
  readonly #max: number
  readonly #counts = new Map<string, number>()

  constructor(max: number = FAILED_ACTIVATIONS_MAX) {
    this.#max = max
  }

  /**
   * Counts one more failure for `agentId`; returns the count and whether this one is to be logged.
   */
  record(agentId: string): { count: number; log: boolean } {
    const count = (this.#counts.get(agentId) ?? 0) + 1
    this.#counts.delete(agentId)
    this.#counts.set(agentId, count)
    if (this.#counts.size > this.#max) {
      const oldest = this.#counts.keys().next().value
      if (oldest !== undefined) this.#counts.delete(oldest)
    }
    return { count, log: isPowerOfTen(count) }
  }

  /** Forgets `agentId` (after a successful activation or a deletion). */
  clear(agentId: string): void {
    this.#counts.delete(agentId)
  }
}
