/**
 * The TPM transport interface (a "TCTI"): one complete command in, one complete response out.
 * Every implementation is wrapped by {@link serializeTransport} so only one command is ever in
 * flight, as the kernel resource manager and swtpm require (wire-formats §6.6).
 *
 * @module
 */

/** A byte pipe to a TPM. */
export interface TpmTransport {
  /** Short description for logs, e.g. `device:/dev/tpmrm0 (addon)`. */
  readonly description: string
  /** Sends one marshalled command and resolves with the marshalled response. */
  transmit(command: Uint8Array): Promise<Uint8Array>
  /** Releases the device or connection (the kernel RM then flushes our transient objects). */
  close(): Promise<void>
}

/**
 * Wraps a transport so concurrent callers queue: each `transmit` starts only after the previous
 * one settled (a promise-chain mutex). A failed command does not poison the queue.
 */
export function serializeTransport(inner: TpmTransport): TpmTransport {
  let tail: Promise<unknown> = Promise.resolve()
  return {
    description: inner.description,
    transmit(command: Uint8Array): Promise<Uint8Array> {
      const run = tail.then(
        () => inner.transmit(command),
        () => inner.transmit(command),
      )
      tail = run.catch(() => undefined)
      return run
    },
    async close(): Promise<void> {
      await tail
      await inner.close()
    },
  }
}
