/**
 * Sliding-window rate limits of session creation, as upstream's `RateLimiter`
 * (`keylime/models/verifier/rate_limiter.py`): at most `max` requests per `window` seconds per
 * key; the request over the limit blocks the key for `60 · 2^(n−1)` s (n = its blocks so far,
 * capped at 3600 s), answered with that many seconds in `Retry-After`.
 *
 * Counts live in this process only (upstream: one host's shared memory), so with several
 * verifiers a client gets up to `max` per verifier. Keys are bounded ({@link MAX_KEYS}, oldest
 * first out) because agent ids are chosen by the caller; a key evicted forgets its block count.
 *
 * @module
 */

/** Most keys tracked at once. */
export const MAX_KEYS = 100_000

/** Longest block, seconds. */
const MAX_BLOCK_S = 3600

interface Entry {
  /** Times (ms) of the requests in the window, oldest first. */
  times: number[]
  blockedUntil: number
  blocks: number
}

/** The verdict of {@link RateLimiter.check}. */
export type RateVerdict = { allowed: true } | { allowed: false; retryAfter: number }

/** Per-key sliding windows with growing blocks. */
export class RateLimiter {
  readonly #entries = new Map<string, Entry>()
  readonly #maxKeys: number

  constructor(maxKeys = MAX_KEYS) {
    this.#maxKeys = maxKeys
  }

  /** Keys tracked. */
  get size(): number {
    return this.#entries.size
  }

  /**
   * Counts a request of `key` at `now` (ms) against `max` per `windowS` seconds. A `max` of 0
   * means no limit.
   */
  check(key: string, max: number, windowS: number, now: number): RateVerdict {
    if (max <= 0) return { allowed: true }
    const e = this.#entries.get(key) ?? { times: [], blockedUntil: 0, blocks: 0 }
    this.#entries.delete(key) // re-inserted below: the map stays ordered by last use
    this.#entries.set(key, e)
    if (e.blockedUntil > now) return { allowed: false, retryAfter: secondsLeft(e, now) }
    const from = now - windowS * 1000
    while (e.times.length > 0 && (e.times[0] as number) <= from) e.times.shift()
    if (e.times.length >= max) {
      e.blocks++
      const blockS = Math.min(60 * 2 ** (e.blocks - 1), MAX_BLOCK_S)
      e.blockedUntil = now + blockS * 1000
      return { allowed: false, retryAfter: blockS }
    }
    e.times.push(now)
    this.#evict()
    return { allowed: true }
  }

  #evict(): void {
    for (const k of this.#entries.keys()) {
      if (this.#entries.size <= this.#maxKeys) return
      this.#entries.delete(k)
    }
  }
}

function secondsLeft(e: Entry, now: number): number {
  return Math.max(1, Math.ceil((e.blockedUntil - now) / 1000))
}
