/**
 * A bound on the request bodies a role reads at once (issue 17, finding 6). Every listener of a
 * role shares one limiter, so the memory held by bodies being received is at most
 * `maxConcurrent × max_upload_size` for that role, however many clients upload at once.
 *
 * Requests beyond the bound wait in arrival order; a request whose body is not being read is not
 * buffered (Bun applies TCP backpressure), so waiting costs a pending promise, not its bytes. A
 * wait longer than `maxWaitMs`, or a client that goes away while waiting, gives up its place.
 *
 * A slot is held while the body arrives, so a slow sender holds one: where the cap is small the
 * slots are many (registrar: 128 × 64 KiB = 8 MiB) and reads have a deadline, so stalling
 * registrations takes that many connections, each cut off after the deadline.
 *
 * @module
 */
import { ClientAborted, UploadsBusy } from './body-errors.ts'

/** Default slots per role (`max_concurrent_uploads`). */
export const DEFAULT_MAX_CONCURRENT_UPLOADS = 16

/** Default longest wait for a slot before answering 503. */
export const DEFAULT_UPLOAD_WAIT_MS = 10_000

interface Waiter {
  grant: (release: () => void) => void
  fail: (e: unknown) => void
}

/** Options of {@link BodyReadLimiter}. */
export interface BodyReadLimiterOptions {
  /** Bodies read at once (default {@link DEFAULT_MAX_CONCURRENT_UPLOADS}); at least 1. */
  maxConcurrent?: number
  /** Longest wait for a slot (default {@link DEFAULT_UPLOAD_WAIT_MS}). */
  maxWaitMs?: number
}

/**
 * A counting semaphore with a FIFO queue for request-body reads.
 *
 * @example
 * ```ts
 * const limiter = new BodyReadLimiter({ maxConcurrent: 16 })
 * const release = await limiter.acquire(request.signal)
 * try { … read the body … } finally { release() }
 * ```
 */
export class BodyReadLimiter {
  readonly maxConcurrent: number
  readonly maxWaitMs: number
  #active = 0
  readonly #queue = new Set<Waiter>()

  constructor(options: BodyReadLimiterOptions = {}) {
    this.maxConcurrent = Math.max(1, options.maxConcurrent ?? DEFAULT_MAX_CONCURRENT_UPLOADS)
    this.maxWaitMs = options.maxWaitMs ?? DEFAULT_UPLOAD_WAIT_MS
  }

  /** Bodies being read now. */
  get active(): number {
    return this.#active
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.#queue.size
  }

  /**
   * Resolves with a release function once a slot is free.
   *
   * @throws UploadsBusy after `maxWaitMs`; ClientAborted when `signal` aborts while waiting
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(new ClientAborted(signal.reason))
    if (this.#active < this.maxConcurrent) {
      this.#active++
      return Promise.resolve(this.#releaser())
    }
    return new Promise((resolve, reject) => {
      const done = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        this.#queue.delete(waiter)
      }
      const waiter: Waiter = {
        grant: (release) => {
          done()
          resolve(release)
        },
        fail: (e) => {
          done()
          reject(e)
        },
      }
      const onAbort = () => waiter.fail(new ClientAborted(signal?.reason))
      const timer = setTimeout(() => waiter.fail(new UploadsBusy(this.maxWaitMs)), this.maxWaitMs)
      signal?.addEventListener('abort', onAbort, { once: true })
      this.#queue.add(waiter)
    })
  }

  /** A release function that frees the slot once, handing it to the oldest waiter. */
  #releaser(): () => void {
    let released = false
    return () => {
      if (released) return
      released = true
      const next = this.#queue.values().next()
      if (next.done) this.#active--
      else next.value.grant(this.#releaser())
    }
  }
}
