/**
 * Keeps a listener's {@link ClientCrlSet} current: `keylime_ca -c revoke` rewrites `cacrl.der`
 * and `cacrl.pem` (by rename), and the running verifier and registrar must refuse the revoked
 * certificate without a restart. The CRL files are polled (`stat`: inode, size, mtime) every
 * {@link DEFAULT_CRL_POLL_MS}; a change is re-read and verified, and subscribers get the new set.
 *
 * A change that does not verify — a truncated or foreign file, a deleted CRL — is logged (once
 * per state of the files) and ignored: the last good set stays in force, so a broken file can
 * neither re-admit a revoked certificate nor take the listener down. Polling runs only while
 * someone subscribes.
 *
 * @module
 */
import { stat } from 'node:fs/promises'
import type { Logger } from '../log/logger.ts'
import { type ClientCrlSet, type ClientCrlSources, loadClientCrls } from './client-crl.ts'

/** How often the CRL files are checked. */
export const DEFAULT_CRL_POLL_MS = 2000

/** Options of {@link ClientCrlWatcher.start}. */
export interface ClientCrlWatcherOptions {
  sources: ClientCrlSources
  log: Logger
  /** Listener name for logs, e.g. `verifier`. */
  name: string
  pollMs?: number
  now?: () => Date
}

/**
 * The watcher; {@link ClientCrlWatcher.start} loads the initial set (and throws if it is bad).
 * It is the `TlsCrlFeed` of `src/http/serve.ts` (structurally: no dependency on the listener).
 */
export class ClientCrlWatcher {
  readonly #o: ClientCrlWatcherOptions
  #set: ClientCrlSet
  #stamp: string
  #failedStamp = ''
  #timer: ReturnType<typeof setInterval> | undefined
  #polling = false
  readonly #subscribers = new Set<() => void>()

  private constructor(o: ClientCrlWatcherOptions, set: ClientCrlSet, stamp: string) {
    this.#o = o
    this.#set = set
    this.#stamp = stamp
  }

  /**
   * Loads and verifies the CRLs once.
   *
   * @throws {CaError} when a configured CRL is missing, or any CRL is malformed or not signed by
   *   a trusted client CA: a listener must not start without the revocations it was told about.
   */
  static async start(o: ClientCrlWatcherOptions): Promise<ClientCrlWatcher> {
    const stamp = await fileStamp(o.sources)
    const set = await loadClientCrls(o.sources, o.now?.())
    const w = new ClientCrlWatcher(o, set, stamp)
    w.#report(set)
    return w
  }

  /** The set in force. */
  get current(): ClientCrlSet {
    return this.#set
  }

  /** The CRLs in force (PEM). */
  get pems(): readonly string[] {
    return this.#set.pems
  }

  /** Calls `onChange` after each accepted change; polling runs while anyone subscribes. */
  subscribe(onChange: () => void): () => void {
    this.#subscribers.add(onChange)
    this.#timer ??= setInterval(() => void this.poll(), this.#o.pollMs ?? DEFAULT_CRL_POLL_MS)
    this.#timer.unref?.()
    return () => {
      this.#subscribers.delete(onChange)
      if (this.#subscribers.size === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer)
        this.#timer = undefined
      }
    }
  }

  /** Checks the files once (the timer calls this; tests may too). Never throws. */
  async poll(): Promise<void> {
    if (this.#polling) return
    this.#polling = true
    try {
      const stamp = await fileStamp(this.#o.sources)
      if (stamp === this.#stamp || stamp === this.#failedStamp) return
      let set: ClientCrlSet
      try {
        set = await loadClientCrls(this.#o.sources, this.#o.now?.())
        if (set.pems.length < this.#set.pems.length)
          throw new Error('a CRL in force disappeared (deleted or moved)')
      } catch (err) {
        this.#failedStamp = stamp
        this.#o.log.error(`${this.#o.name}: client CRL change ignored; the previous CRLs stay`, {
          error: err instanceof Error ? err.message : String(err),
        })
        return
      }
      this.#stamp = stamp
      this.#failedStamp = ''
      if (set.digest === this.#set.digest) return
      this.#set = set
      this.#o.log.info(`${this.#o.name}: client CRL reloaded`, { crls: set.pems.length })
      this.#report(set)
      for (const fn of this.#subscribers) fn()
    } finally {
      this.#polling = false
    }
  }

  #report(set: ClientCrlSet): void {
    for (const subject of set.uncovered)
      this.#o.log.error(
        `${this.#o.name}: trusted client CA has no CRL, so TLS refuses its certificates (give it a CRL or set client_crl = none)`,
        { ca: subject },
      )
    for (const subject of set.expired)
      this.#o.log.error(
        `${this.#o.name}: the CRL of a trusted client CA has expired, so TLS refuses its certificates (renew it: keylime_ca -c revoke regenerates it)`,
        { ca: subject },
      )
  }
}

/** inode, size and mtime of every candidate file: a cheap "did anything change" test. */
async function fileStamp(sources: ClientCrlSources): Promise<string> {
  const parts: string[] = []
  for (const f of sources.files) {
    for (const c of f.candidates) {
      try {
        const s = await stat(c)
        parts.push(`${c}:${s.ino}:${s.size}:${s.mtimeMs}`)
      } catch {
        parts.push(`${c}:-`)
      }
    }
  }
  return parts.join('|')
}
