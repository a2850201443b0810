/**
 * The fetch-based HTTPS client of the tenant (to the registrar, verifier and agents) and of the
 * health probes. The verifier talks to its agents through `agent-client/agent-connections.ts`.
 *
 * - Presents the client certificate from `cv_ca` (mutual TLS).
 * - Trusts either the configured CAs (`trusted_server_ca`) or, per request, one pinned peer
 *   certificate: the agent's self-signed `mtls_cert` from the registrar, as upstream's
 *   `generate_agent_tls_context` does. Like upstream (`check_hostname=False`) the host name is not
 *   checked; the chain to the trust anchor is.
 * - Keeps connections alive, because a fresh handshake costs far more than the request. Bun's fetch
 *   pools connections only when no `checkServerIdentity` callback is given (measured: 50 requests,
 *   50 handshakes with the callback, 1 without). So for a pinned certificate we name the peer by the
 *   certificate's own name (`serverName`): with that exact certificate as the only trust anchor, the
 *   name check can only pass, which is upstream's "no host-name check" without losing the pool.
 * - Answers with the parsed JSON body and the envelope's `results`, or a typed error that says what
 *   failed and what to check; never an untyped exception.
 *
 * @module
 */
import { createHash, X509Certificate } from 'node:crypto'
import { BoundedCache } from '../protocol/bounded-cache.ts'
import { BodyLimitError, BoundedBody, DEFAULT_MAX_ANSWER_BYTES } from './bounded-body.ts'
import type { ByteBudget } from './byte-budget.ts'
import { type MtlsResponse, parseMtlsResponse } from './parse-mtls-response.ts'
import { PeerUnreachable, peerLimitError } from './peer-errors.ts'

/** TLS identity and trust of a client. */
export interface MtlsClientOptions {
  /** Client certificate (PEM); omit for server-only TLS. */
  cert?: string
  /** Client private key (unencrypted PEM). */
  key?: string
  /** CAs trusted for server certificates (PEM). */
  ca?: string[]
  /** False when the trusted CA option is `all`: no server verification (upstream semantics). */
  verifyPeer?: boolean
  /** Default per-request timeout in milliseconds (upstream `request_timeout` is 60 s). */
  timeoutMs?: number
  /** Largest response body accepted, in bytes (default 256 MiB). */
  maxResponseBytes?: number
  /** Process-wide budget of answer bytes being read (shared with the agent pool). */
  budget?: ByteBudget
}

/** One request. */
export interface MtlsRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'
  /** JSON body (serialised here). */
  json?: unknown
  /** Trust only this certificate for this request (the agent's self-signed `mtls_cert`). */
  pinnedCert?: string
  timeoutMs?: number
  headers?: Record<string, string>
}

const TLS_HINTS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the service running on that address and port?)',
  ECONNRESET:
    'connection reset during TLS (does the peer trust our client certificate? check the CA it trusts)',
  EPROTO: 'TLS handshake failed (check the client certificate and the CA the peer trusts)',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    'server certificate not signed by a trusted CA (check trusted_server_ca)',
  DEPTH_ZERO_SELF_SIGNED_CERT: 'server certificate is self-signed and not pinned',
  SELF_SIGNED_CERT_IN_CHAIN:
    'server certificate chains to an untrusted CA (check trusted_server_ca)',
  CERT_HAS_EXPIRED: 'server certificate has expired',
  ERR_TLS_CERT_ALTNAME_INVALID: 'server certificate does not name this host',
  TimeoutError: 'timed out',
  ConnectionRefused: 'connection refused (is the service running on that address and port?)',
}

function describeFetchError(err: unknown): string {
  const e = err as { code?: string; name?: string; message?: string }
  const key = e.code ?? e.name ?? ''
  return TLS_HINTS[key] ?? `${key ? `${key}: ` : ''}${e.message ?? String(err)}`
}

/**
 * Pinned certificate → the name to verify it by (agents' certs rarely change). Keyed by a digest
 * of host and certificate, so the certificates' size does not count.
 */
const pinnedNames = new BoundedCache<string | null>({
  maxEntries: 50_000,
  maxBytes: 8 * 1024 * 1024,
  sizeOf: (name) => name?.length ?? 0,
})

/**
 * The name a pinned certificate can be verified by: its first DNS SAN, an IP SAN equal to the host
 * we connect to (null: the default check passes), else its CN. Undefined when none fits (the caller
 * falls back to a no-op identity callback).
 */
function pinnedServerName(certPem: string, host: string): string | null | undefined {
  const cacheKey = createHash('sha256').update(`${host}\n${certPem}`).digest('base64')
  const cached = pinnedNames.get(cacheKey)
  if (cached !== undefined) return cached
  let name: string | null | undefined
  try {
    const cert = new X509Certificate(certPem)
    const sans = (cert.subjectAltName ?? '').split(',').map((s) => s.trim())
    const bareHost = host.replace(/^\[|\]$/g, '')
    if (sans.includes(`IP Address:${bareHost}`)) name = null
    else {
      const dns = sans.find((s) => s.startsWith('DNS:') && !s.includes('*'))
      const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1]
      name = dns ? dns.slice(4) : sans.every((s) => s === '') && cn ? cn : undefined
    }
  } catch {
    name = undefined
  }
  if (name !== undefined) pinnedNames.set(cacheKey, name)
  return name
}

function noIdentityCheck(): undefined {
  return undefined
}

/** A reusable client; create one per identity and keep it. */
export class MtlsClient {
  readonly #opts: MtlsClientOptions

  constructor(options: MtlsClientOptions) {
    this.#opts = options
  }

  /**
   * Sends a request and parses the JSON answer.
   *
   * @throws PeerUnreachable on connection, TLS or timeout failures
   * @throws PeerBadResponse when the body is not JSON; PeerAnswerTooLarge over the cap
   * @throws AnswerBufferFull when the process budget has no room for the answer
   */
  async request(url: string, req: MtlsRequest = {}): Promise<MtlsResponse> {
    const o = this.#opts
    const pinned = req.pinnedCert
    const tls: Record<string, unknown> = {
      cert: o.cert,
      key: o.key,
      ca: pinned !== undefined ? [pinned] : o.ca,
      rejectUnauthorized: pinned !== undefined || o.verifyPeer !== false,
    }
    const name = pinned !== undefined ? pinnedServerName(pinned, new URL(url).hostname) : undefined
    if (typeof name === 'string') tls.serverName = name
    else if (name === undefined) tls.checkServerIdentity = noIdentityCheck
    const headers: Record<string, string> = { Accept: 'application/json', ...req.headers }
    let body: string | undefined
    if (req.json !== undefined) {
      body = JSON.stringify(req.json)
      headers['Content-Type'] ??= 'application/json' // JSON:API callers send their own
    }
    let res: Response
    try {
      res = await fetch(url, {
        method: req.method ?? 'GET',
        headers,
        body,
        signal: AbortSignal.timeout(req.timeoutMs ?? o.timeoutMs ?? 60_000),
        tls,
      } as RequestInit)
    } catch (err) {
      throw new PeerUnreachable(url, describeFetchError(err), err)
    }
    const limits = { maxBytes: o.maxResponseBytes ?? DEFAULT_MAX_ANSWER_BYTES, budget: o.budget }
    const answer = new BoundedBody(limits)
    try {
      return parseMtlsResponse(url, res.status, await readBody(url, res, answer))
    } finally {
      answer.release() // after the parse: the text is held until then
    }
  }
}

/**
 * The body of `res` as text, counted chunk by chunk into `body` (a declared length over the cap
 * fails before any byte is read), joined once.
 *
 * @throws PeerAnswerTooLarge, AnswerBufferFull, PeerUnreachable (the stream broke)
 */
async function readBody(url: string, res: Response, body: BoundedBody): Promise<string> {
  try {
    const declared = res.headers.get('content-length')
    if (declared !== null && /^\d+$/.test(declared)) body.expect(Number(declared))
    if (res.body !== null) {
      for await (const chunk of res.body) {
        body.count(chunk.byteLength)
        body.keep(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))
      }
    }
    return body.join().toString('utf8')
  } catch (err) {
    await res.body?.cancel().catch(() => undefined)
    if (err instanceof BodyLimitError) throw peerLimitError(url, err)
    throw new PeerUnreachable(url, describeFetchError(err), err)
  }
}
