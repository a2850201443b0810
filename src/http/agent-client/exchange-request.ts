/**
 * One HTTP/1.1 request and its answer on an open agent connection: the request is written as
 * the agent API needs it (one at a time per connection), the answer read by
 * {@link Http1ResponseReader} in linear time under the size cap and the process budget, and every
 * failure turned into a typed peer error.
 *
 * @module
 */
import { BodyLimitError, BoundedBody } from '../bounded-body.ts'
import type { ByteBudget } from '../byte-budget.ts'
import { formatHostPort } from '../format-host-port.ts'
import { type MtlsResponse, parseMtlsResponse } from '../parse-mtls-response.ts'
import { PeerBadResponse, PeerUnreachable, peerLimitError } from '../peer-errors.ts'
import type { AgentConn, AgentTarget } from './agent-socket.ts'
import { Http1Error, type Http1Response, Http1ResponseReader } from './http1-response-reader.ts'

/** One request. */
export interface AgentRequest {
  method?: 'GET' | 'POST'
  /** Path with query, e.g. `/v2.2/quotes/integrity?…`. */
  path: string
  /** JSON body. */
  json?: unknown
  timeoutMs?: number
}

/** Limits of one exchange. */
export interface ExchangeLimits {
  timeoutMs: number
  /** Largest answer, head and framing included (bytes). */
  maxBytes: number
  /** Process-wide budget of answer bytes being read. */
  budget: ByteBudget | undefined
}

/** A parsed answer; `keepAlive`: the connection may carry the next request. */
export interface Exchanged {
  res: MtlsResponse
  keepAlive: boolean
}

/**
 * Sends `req` on `conn` and reads its answer. Sets `conn.deadline` and `conn.onTimeout`: the
 * caller's sweep fails it when due. On failure the socket is terminated; on an answer that does
 * not keep the connection alive it is ended.
 *
 * @throws RetryOnFresh when a reused connection closed before any answer byte
 * @throws PeerUnreachable on connection failures and timeouts (AnswerBufferFull: no budget)
 * @throws PeerBadResponse when the answer is not HTTP/JSON (PeerAnswerTooLarge: over the cap)
 */
export function exchangeRequest(
  conn: AgentConn,
  t: AgentTarget,
  req: AgentRequest,
  limits: ExchangeLimits,
): Promise<Exchanged> {
  const url = urlOf(t, req.path)
  const reused = conn.used > 0
  return new Promise<Exchanged>((resolve, reject) => {
    const answer = new BoundedBody({ maxBytes: limits.maxBytes, budget: limits.budget })
    const reader = new Http1ResponseReader(answer)
    conn.deadline = performance.now() + limits.timeoutMs
    conn.onTimeout = () => finish(new PeerUnreachable(url, 'timed out'))
    const finish = (err: Error | undefined, res?: MtlsResponse, keepAlive = false) => {
      answer.release()
      conn.onTimeout = undefined
      conn.onData = undefined
      conn.onClose = undefined
      if (err !== undefined) {
        conn.socket?.terminate()
        reject(err)
        return
      }
      if (!keepAlive) conn.socket?.end()
      resolve({ res: res as MtlsResponse, keepAlive })
    }
    /** Parses a complete answer (before {@link finish} gives its bytes back to the budget). */
    const done = (read: () => Http1Response | undefined) => {
      let r: Http1Response | undefined
      try {
        r = read()
        if (r === undefined) return
        finish(undefined, parseMtlsResponse(url, r.status, r.body.toString('utf8')), r.keepAlive)
      } catch (err) {
        finish(answerError(url, err))
      }
    }
    conn.onClose = (err) => {
      // only a clean close ends an answer that runs to the close
      if (reader.started && err === undefined) done(() => reader.end())
      else if (reader.started) finish(new PeerUnreachable(url, describeSocketError(err), err))
      else if (reused) finish(new RetryOnFresh(url, err))
      else finish(new PeerUnreachable(url, describeSocketError(err), err))
    }
    conn.onData = (chunk) => done(() => reader.push(chunk))
    const socket = conn.socket
    if (socket === undefined || conn.closed) {
      finish(new RetryOnFresh(url, undefined))
      return
    }
    const out = formatRequest(t, req)
    const n = socket.write(out)
    if (n < Buffer.byteLength(out)) conn.pending = Buffer.from(out).subarray(Math.max(0, n))
  })
}

/** The request's bytes: request line, `Host`, `Accept`, and a JSON body with its length. */
function formatRequest(t: AgentTarget, req: AgentRequest): string {
  let payload = ''
  let extra = ''
  if (req.json !== undefined) {
    payload = JSON.stringify(req.json)
    extra = `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`
  }
  return (
    `${req.method ?? 'GET'} ${req.path} HTTP/1.1\r\nHost: ${formatHostPort(t.ip, t.port)}\r\n` +
    `Accept: application/json\r\n${extra}\r\n${payload}`
  )
}

/** The URL of a request to `t` (for errors). */
export function urlOf(t: AgentTarget, path: string): string {
  return `${t.https ? 'https' : 'http'}://${formatHostPort(t.ip, t.port)}${path}`
}

/** The typed error for a failed read of an answer from `url`. */
function answerError(url: string, err: unknown): Error {
  if (err instanceof BodyLimitError) return peerLimitError(url, err)
  if (err instanceof Http1Error && err.code === 'ERR_HTTP1_TRUNCATED') {
    return new PeerUnreachable(url, err.message, err)
  }
  if (err instanceof Http1Error) return new PeerBadResponse(url, err.message, err.code)
  if (err instanceof PeerBadResponse) return err
  return new PeerBadResponse(url, String(err))
}

/** A socket error as text for a {@link PeerUnreachable}. */
export function describeSocketError(err: Error | undefined): string {
  if (err === undefined) return 'connection closed before a response'
  const e = err as { code?: string }
  return e.code ? `${e.code}: ${err.message}` : err.message
}

/** A reused connection died before answering: the pool tries once more on a fresh one. */
export class RetryOnFresh extends Error {
  readonly url: string
  constructor(url: string, cause: unknown) {
    super('reused connection closed', { cause })
    this.url = url
  }

  /** The error to report when the fresh connection failed too. */
  toUnreachable(): PeerUnreachable {
    return new PeerUnreachable(
      this.url,
      describeSocketError(this.cause as Error | undefined),
      this.cause,
    )
  }
}
