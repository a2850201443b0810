/**
 * The activation keys of registrations this process made recently, so that the activation that
 * follows can skip reading the row. Bounded (oldest entries are dropped first) and only a hint:
 * the service makes every write conditional on the key, so a stale entry costs a re-read, never
 * a wrong activation.
 *
 * @module
 */

/** Default bound: plenty for a fleet registering at once, a few MiB at most. */
export const RECENT_KEYS_MAX = 50_000

/** A bounded agent id → activation key map with take-once reads. */
export class RecentKeys {
  readonly #max: number
  readonly #map = new Map<string, string>()

  constructor(max: number = RECENT_KEYS_MAX) {
    this.#max = max
  }

  /** Number of keys held. */
  get size(): number {
    return this.#map.size
  }

  /** Remembers `key` for `agentId` (replacing an older one), evicting the oldest beyond the bound. */
  set(agentId: string, key: string): void {
    this.#map.delete(agentId)
    this.#map.set(agentId, key)
    if (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value
      if (oldest !== undefined) this.#map.delete(oldest)
    }
  }

  /** Returns and forgets the key for `agentId`. */
  take(agentId: string): string | undefined {
    const key = this.#map.get(agentId)
    this.#map.delete(agentId)
    return key
  }
}
