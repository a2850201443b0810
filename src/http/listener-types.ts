/**
 * The shapes shared by the listeners (`serve.ts`, `listen-optional-client-cert.ts`).
 *
 * @module
 */
import type { Logger } from '../log/logger.ts'

/** What a TLS listener with client certificates tells the app about a request (hono's `c.env`). */
export interface ListenerEnv {
  /** `verified`: a certificate chaining to the trusted CAs, not revoked; `none`: no certificate. */
  clientCert: 'verified' | 'none'
  /**
   * In-process callers only ({@link asAgent} in `access/enforce-access.ts`): the request comes from
   * this push agent. Listeners never set it; over the network an agent proves itself with a token.
   */
  agentId?: string
  /** The client's IP address as the socket reports it (per-IP rate limits). */
  remoteIp?: string
}

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
  /** Ask for a client certificate and verify one presented (optional, as upstream). */
  requestCert: boolean
  /** CRLs of the client CAs, enforced at the handshake and re-applied when they change. */
  crl?: TlsCrlFeed
}

/** Options of {@link startServer}. */
export interface StartServerOptions {
  /** Human name for logs, e.g. `verifier` or `registrar (tls)`. */
  name: string
  /** The request handler (a hono app's `fetch`); a TLS listener passes {@link ListenerEnv}. */
  fetch: (request: Request, env?: ListenerEnv) => Response | Promise<Response>
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
