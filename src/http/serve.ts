/**
 * Starts and stops HTTP(S) listeners on Bun.serve.
 *
 * TLS listeners are mutual-TLS when `requestCert` is set: the handshake itself rejects clients without
 * a certificate from one of the trusted CAs (Bun enforces it; verified in bun-and-tools.md §2.4), which
 * is the check upstream Keylime makes (CA only, no hostname). TLS 1.2 is the minimum.
 *
 * @module
 */
import { constants } from 'node:crypto'
import type { Logger } from '../log/logger.ts'

/** The client CRLs a TLS listener enforces, and word when they change (`ClientCrlWatcher`). */
export interface TlsCrlFeed {
  /** The CRLs in force (PEM); empty: no CRL check. */
  readonly pems: readonly string[]
  /** Calls `onChange` after each accepted change; returns the unsubscribe function. */
  subscribe(onChange: () => void): () => void
}

/** TLS material for a listener: PEM strings, private keys already decrypted. */
export interface ServerTls {
  /** Server private key (PEM). */
  key: string
  /** Server certificate chain (PEM). */
  cert: string
  /** CAs trusted for client certificates (PEM); required when `requestCert`. */
  ca?: string[]
  /** Require and verify a client certificate (mTLS). */
  requestCert: boolean
  /** CRLs of the client CAs, enforced at the handshake and re-applied when they change. */
  crl?: TlsCrlFeed
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** Human name for logs, e.g. `verifier` or `registrar (tls)`. */
  name: string
  /** The request handler (a hono app's `fetch`). */
  fetch: (request: Request) => Response | Promise<Response>
  /** Address to bind (`127.0.0.1`, `0.0.0.0`, `::`). */
  hostname: string
  /** Port to bind; 0 picks a free one. */
  port: number
  /** TLS settings; plain HTTP when absent. */
  tls?: ServerTls
  /** Hard cap Bun applies before the app's own limit (bytes). */
  maxRequestBodySize?: number
  log: Logger
}

/**
 * Where a listener is in its life: `serving` from the bind on, `stopping` while it drains,
 * `closed` once stopped. Bun reports no other end of a listener, so this is its whole truth.
 */
export type ListenerState = 'serving' | 'stopping' | 'closed'

/** A listening server. */
export interface RunningServer {
  name: string
  /** Base URL, e.g. `https://127.0.0.1:8881`. */
  url: string
  port: number
  /** Its state, as `/health` reports it. */
  readonly state: ListenerState
  /** Stops accepting, waits up to `drainMs` for in-flight requests, then closes everything. */
  stop(drainMs: number): Promise<void>
}

/** Bind failures carry the address so the operator knows what to change. */
export class ListenError extends Error {
  constructor(name: string, hostname: string, port: number, cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause)
    super(`${name}: cannot listen on ${hostname}:${port}: ${reason}`, { cause })
    this.name = 'ListenError'
  }
}

/** Disables SSLv3, TLS 1.0 and TLS 1.1 (TLS ≥ 1.2, as upstream's `minimum_version`). */
const TLS_MIN_1_2 =
  constants.SSL_OP_NO_SSLv3 | constants.SSL_OP_NO_TLSv1 | constants.SSL_OP_NO_TLSv1_1

/** How long a listener replaced for new CRLs may finish its in-flight requests. */
const CRL_SWAP_DRAIN_MS = 10_000

/** Starts a listener and logs where it listens. */
export function startServer(options: StartServerOptions): RunningServer {
  const { name, hostname, port, tls, log } = options
  let server: ReturnType<typeof Bun.serve>
  const serve = (bindPort: number) =>
    Bun.serve({
      hostname,
      port: bindPort,
      fetch: options.fetch,
      maxRequestBodySize: options.maxRequestBodySize,
      reusePort: tls?.crl !== undefined, // lets a listener with new CRLs take over the port
      tls: tls
        ? {
            key: tls.key,
            cert: tls.cert,
            ca: tls.ca,
            crl: tls.crl?.pems.length ? [...tls.crl.pems] : undefined,
            requestCert: tls.requestCert,
            rejectUnauthorized: tls.requestCert,
            secureOptions: TLS_MIN_1_2,
          }
        : undefined,
    })
  try {
    server = serve(port)
  } catch (err) {
    throw new ListenError(name, hostname, port, err)
  }
  const boundPort = server.port ?? port
  const host = hostname.includes(':') ? `[${hostname}]` : hostname
  const url = `${tls ? 'https' : 'http'}://${host}:${boundPort}`
  log.info(`${name} listening`, { url, mtls: tls?.requestCert ?? false })
  let state: ListenerState = 'serving'
  // Bun's server.reload does not swap TLS settings (1.4.5): new CRLs get a new listener on the
  // same port (SO_REUSEPORT), and the old one finishes its in-flight requests, then closes.
  const replaced = new Set<ReturnType<typeof Bun.serve>>()
  const unsubscribe = tls?.crl?.subscribe(() => {
    const old = server
    try {
      server = serve(boundPort)
    } catch (err) {
      log.error(`${name}: cannot apply the new client CRLs; the previous ones stay`, {
        error: err instanceof Error ? err.message : String(err),
      })
      return
    }
    replaced.add(old)
    void old.stop(false).then(() => replaced.delete(old))
    setTimeout(() => void old.stop(true), CRL_SWAP_DRAIN_MS).unref()
    log.info(`${name}: client CRLs applied`)
  })
  return {
    name,
    url,
    port: boundPort,
    get state() {
      return state
    },
    async stop(drainMs: number) {
      if (state === 'serving') state = 'stopping'
      unsubscribe?.()
      const all = [server, ...replaced]
      const graceful = Promise.all(all.map((s) => s.stop(false)))
      const timedOut = await Promise.race([
        graceful.then(() => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(true), drainMs).unref()),
      ])
      if (timedOut) {
        log.warn(`${name}: in-flight requests did not finish within ${drainMs} ms; closing`)
      }
      await Promise.all(all.map((s) => s.stop(true)))
      state = 'closed'
    },
  }
}
