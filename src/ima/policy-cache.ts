/**
 * A process-wide cache of compiled runtime policies keyed by the sha256 of the policy bytes (plus
 * the signature requirement), with reference counts and an LRU of idle entries. Agents sharing a
 * policy share one {@link CompiledRuntimePolicy}; a policy is compiled once, however many agents
 * use it (upstream keeps a similar per-checksum cache in `keylime/shared_data.py`).
 *
 * @module
 */

import { createHash } from 'node:crypto'
import {
  type CompiledRuntimePolicy,
  type LoadPolicyOptions,
  loadRuntimePolicy,
} from './compile-runtime-policy.ts'

/** A counted reference to a cached policy; call `release()` when the agent lets go of it. */
export interface PolicyLease {
  readonly policy: CompiledRuntimePolicy
  release(): void
}

interface Slot {
  policy: CompiledRuntimePolicy
  refs: number
}

/** The cache. One instance per process (or worker) is the intended use. */
export class PolicyCache {
  readonly #slots = new Map<string, Slot>()
  /** Idle keys, oldest first (a Map keeps insertion order). */
  readonly #idle = new Map<string, true>()
  readonly #maxIdle: number

  /** @param maxIdle idle (unreferenced) policies kept for reuse (default 8). */
  constructor(maxIdle = 8) {
    this.#maxIdle = maxIdle
  }

  /**
   * Returns a lease on the compiled policy for `bytes`, compiling it on first use.
   *
   * @throws {ImaError} as {@link loadRuntimePolicy}.
   */
  acquire(bytes: string | Uint8Array, opts: LoadPolicyOptions = {}): PolicyLease {
    const raw = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes
    const h = createHash('sha256').update(raw)
    if (opts.requireSignature) h.update('\0sig\0').update(opts.key ?? '')
    const k = h.digest('hex')
    let slot = this.#slots.get(k)
    if (slot === undefined) {
      slot = { policy: loadRuntimePolicy(raw, opts), refs: 0 }
      this.#slots.set(k, slot)
    }
    slot.refs++
    this.#idle.delete(k)
    let released = false
    const s = slot
    return {
      policy: slot.policy,
      release: () => {
        if (released) return
        released = true
        s.refs--
        if (s.refs === 0) {
          this.#idle.set(k, true)
          while (this.#idle.size > this.#maxIdle) {
            const oldest = this.#idle.keys().next().value as string
            this.#idle.delete(oldest)
            this.#slots.delete(oldest)
          }
        }
      },
    }
  }

  /** Number of compiled policies held (referenced or idle). */
  get size(): number {
    return this.#slots.size
  }
}
