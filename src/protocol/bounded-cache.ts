/**
 * A string-keyed cache bounded in entries AND in bytes, for values derived from text that peers
 * send (keys, policies, certificates). A bound on entries alone lets a few distinct megabyte keys
 * hold gigabytes. The oldest entries go first; an entry larger than an eighth of the byte bound is
 * not kept at all, so one huge key never empties the cache.
 *
 * @module
 */

/** Bounds of a {@link BoundedCache}. */
export interface BoundedCacheOptions<V> {
  /** Most entries. */
  maxEntries: number
  /** Most bytes: key lengths plus `sizeOf` of the values. */
  maxBytes: number
  /** Bytes a value holds beyond its key (default 0: small fixed-size values). */
  sizeOf?: (value: V) => number
}

/** Key → value, insertion-ordered, evicting the oldest beyond the bounds. */
export class BoundedCache<V> {
  readonly #o: BoundedCacheOptions<V>
  readonly #map = new Map<string, { value: V; bytes: number }>()
  #bytes = 0

  constructor(options: BoundedCacheOptions<V>) {
    this.#o = options
  }

  /** Entries held. */
  get size(): number {
    return this.#map.size
  }

  /** Bytes held (keys as string lengths, plus value sizes). */
  get bytes(): number {
    return this.#bytes
  }

  get(key: string): V | undefined {
    return this.#map.get(key)?.value
  }

  /** Keeps `value` under `key` (replacing), unless the entry alone is too large to cache. */
  set(key: string, value: V): void {
    const bytes = key.length + (this.#o.sizeOf?.(value) ?? 0)
    this.delete(key)
    if (bytes > this.#o.maxBytes / 8) return
    this.#map.set(key, { value, bytes })
    this.#bytes += bytes
    for (const [k, e] of this.#map) {
      if (this.#map.size <= this.#o.maxEntries && this.#bytes <= this.#o.maxBytes) break
      this.#map.delete(k)
      this.#bytes -= e.bytes
    }
  }

  delete(key: string): void {
    const e = this.#map.get(key)
    if (e === undefined) return
    this.#map.delete(key)
    this.#bytes -= e.bytes
  }

  clear(): void {
    this.#map.clear()
    this.#bytes = 0
  }
}
