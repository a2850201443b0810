/**
 * A per-key async mutex: callers with the same key run one after another, in arrival order;
 * different keys run concurrently. Used to serialize registrations and activations of one agent
 * id within this process (the database lock covers other processes).
 *
 * @module
 */

/**
 * Serializes async work per key. Entries are removed when their queue drains, so memory stays
 * proportional to the keys in use.
 *
 * @example
 * ```ts
 * const mutex = new KeyedMutex()
 * await mutex.run(agentId, async () => { … })
 * ```
 */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>()

  /** Number of keys with work queued or running (for tests and metrics). */
  get size(): number {
    return this.#tails.size
  }

  /** Runs `fn` once every earlier `run` with the same key has settled; returns its result. */
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve()
    let release!: () => void
    const mine = new Promise<void>((resolve) => {
      release = resolve
    })
    const tail = previous.then(() => mine)
    this.#tails.set(key, tail)
    await previous
    try {
      return await fn()
    } finally {
      release()
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    }
  }
}
