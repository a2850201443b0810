/**
 * Bounds how fast the agent client sets up connections: at most `maxConnecting` at once, and
 * `connectsPerSecond` full TLS handshakes a second (a resumption costs {@link RESUME_COST} of one).
 *
 * A handshake costs far more than a request on a kept-alive connection; after a start or a
 * take-over of thousands of agents, an unbounded burst of handshakes delays the rounds on
 * established connections past the agents' keep-alive timeout, and the verifier never catches up
 * (docs/benchmarks.md, Verifier).
 *
 * @module
 */

/**
 * A resumed handshake's share of a full one: client CPU of a TLS 1.3 resumption against a full
 * handshake with an RSA-2048 client key (`bun bench/agent-handshake.ts`).
 */
export const RESUME_COST = 0.2

/** Limits of a {@link ConnectLimiter}. */
export interface ConnectLimits {
  /** Connections being set up at once (default 16). */
  maxConnecting?: number
  /** Full TLS handshakes per second at most (default 500). */
  connectsPerSecond?: number
}

/** Connection set-up slots: a concurrency bound and a rate. */
export class ConnectLimiter {
  readonly #max: number
  readonly #fullMs: number
  #connecting = 0
  readonly #waiters: (() => void)[] = []
  /** Earliest time (performance.now) the next connection may start. */
  #nextAt = 0
  /** Rate slots reserved by {@link reserve} and not used yet. */
  #reserved = 0

  constructor(limits: ConnectLimits = {}) {
    this.#max = limits.maxConnecting ?? 16
    this.#fullMs = 1000 / (limits.connectsPerSecond ?? 500)
  }

  /** Takes the next rate slot; returns how many ms from now it starts. */
  #take(resume: boolean): number {
    const now = performance.now()
    const at = Math.max(now, this.#nextAt)
    this.#nextAt = at + (resume ? this.#fullMs * RESUME_COST : this.#fullMs)
    return at - now
  }

  /**
   * Reserves a rate slot and returns how many ms from now it is. The caller schedules its work
   * for then instead of holding an in-flight slot while it waits; its next {@link acquire} does
   * not wait for the rate again.
   */
  reserve(resume: boolean): number {
    this.#reserved++
    return this.#take(resume)
  }

  /** Resolves when a connection may be set up; pair with one {@link release}. */
  async acquire(resume: boolean): Promise<void> {
    if (this.#reserved > 0) this.#reserved--
    else {
      const wait = this.#take(resume)
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    }
    if (this.#connecting < this.#max) {
      this.#connecting++
      return
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  /** Ends a set-up (connected or failed): the next waiter, if any, takes its place. */
  release(): void {
    const next = this.#waiters.shift()
    if (next !== undefined) next()
    else this.#connecting--
  }

  /** Set-ups under way. */
  get connecting(): number {
    return this.#connecting
  }
}
