/**
 * A binary min-heap of (due time, key) pairs: the verifier's schedule. One heap and one timer
 * serve the whole fleet, instead of a timer per agent.
 *
 * Entries are never removed from the middle: rescheduling pushes a new entry with a new
 * generation, and stale entries are skipped when they surface (the caller compares generations).
 *
 * @module
 */

/** One scheduled item. */
export interface DueEntry {
  /** Due time (ms, `performance.now()` clock or epoch; the caller decides). */
  due: number
  /** Agent id. */
  key: string
  /** Generation; an entry whose generation is not the key's current one is stale. */
  gen: number
  /** The original due time when the entry was deferred (lateness counts from it). */
  from?: number
}

/** The heap. */
export class DueHeap {
  readonly #a: DueEntry[] = []

  /** Number of entries, stale ones included. */
  get size(): number {
    return this.#a.length
  }

  /** The earliest entry, or undefined. */
  peek(): DueEntry | undefined {
    return this.#a[0]
  }

  /** Adds an entry. O(log n). */
  push(e: DueEntry): void {
    const a = this.#a
    a.push(e)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      const pe = a[p] as DueEntry
      if (pe.due <= e.due) break
      a[i] = pe
      i = p
    }
    a[i] = e
  }

  /** Removes and returns the earliest entry. O(log n). */
  pop(): DueEntry | undefined {
    const a = this.#a
    const top = a[0]
    const last = a.pop()
    if (top === undefined || last === undefined || a.length === 0) return top
    let i = 0
    const n = a.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) break
      const r = l + 1
      const c = r < n && (a[r] as DueEntry).due < (a[l] as DueEntry).due ? r : l
      if ((a[c] as DueEntry).due >= last.due) break
      a[i] = a[c] as DueEntry
      i = c
    }
    a[i] = last
    return top
  }

  /** Drops every entry. */
  clear(): void {
    this.#a.length = 0
  }
}
