/**
 * The push agent's HTTP client for the verifier (API 3.0), with rust-keylime's retry behaviour
 * (`keylime/src/resilient_client.rs`): every request carries `Content-Type:
 * application/vnd.api+json` and a fresh 6-character `X-Request-ID`; an answer with
 * `Retry-After` is retried after that delay, and network errors, 408, 429 and 5xx with
 * exponential back-off (`exponential_backoff_initial_delay` doubling up to `_max_delay`), both
 * at most `exponential_backoff_max_retries` times. 200, 201 and 202 end the loop; any other
 * answer (401 included) goes back to the caller.
 *
 * Answers are read under a byte cap and parsed as JSON; bodies are never logged, since the
 * session answer carries the bearer token.
 *
 * @module
 */

import { randomInt } from 'node:crypto'
import { AgentError } from '../errors.ts'
import { sleepUnlessAborted } from '../sleep-unless-aborted.ts'

/** Sends one request (the real client: `fetch` with the verifier CA; tests: a handler). */
export type FetchLike = (req: Request) => Promise<Response>

/** Sleeps `ms`; rejects when the agent is stopping. */
export type Sleep = (ms: number) => Promise<void>

/** One answer of the verifier. */
export interface VerifierReply {
  /** HTTP status. */
  status: number
  /** Response headers. */
  headers: Headers
  /** The parsed JSON body; undefined when empty or not JSON. */
  body: unknown
}

/** `exponential_backoff_*` in milliseconds. */
export interface Backoff {
  /** First retry delay. */
  initialDelayMs: number
  /** Most retries of one request. */
  maxRetries: number
  /** Longest delay (also caps a verifier's `Retry-After`). */
  maxDelayMs: number
}

/** Options of {@link VerifierHttp}. */
export interface VerifierHttpOptions {
  /** Retry limits. */
  backoff: Backoff
  /** Sends a request (default: `fetch` trusting `caPem`). */
  fetch?: FetchLike
  /** CA certificates (PEM) the verifier's TLS certificate must chain to. */
  caPem?: string
  /** Per-request timeout (default 5000 ms, rust-keylime's `--timeout`). */
  timeoutMs?: number
  /** Largest answer read (default 8 MiB). */
  maxBodyBytes?: number
  /** Sleep (default: a timer, cut short by `signal`). */
  sleep?: Sleep
  /** Aborted when the agent stops. */
  signal?: AbortSignal
  /** Warnings (retries); never given bodies or tokens. */
  warn?: (msg: string, fields?: Record<string, unknown>) => void
}

const SUCCESS = new Set([200, 201, 202])
const REQUEST_ID_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789'

/** rust-keylime's `X-Request-ID`: 6 lowercase alphanumerics. */
export function requestId(): string {
  let id = ''
  for (let i = 0; i < 6; i++) id += REQUEST_ID_CHARS[randomInt(REQUEST_ID_CHARS.length)]
  return id
}

/** `Retry-After` in ms (delay-seconds or an HTTP date), or undefined when absent or invalid. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined
  const v = value.trim()
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000
  if (v.length > 64) return undefined
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** Delay before retry `n` (0-based): initial × 2ⁿ, capped at the maximum. */
export function backoffDelay(b: Backoff, n: number): number {
  return Math.min(b.initialDelayMs * 2 ** Math.min(n, 40), b.maxDelayMs)
}

/** A timer sleep that rejects with `ERR_AGENT_STOPPED` when `signal` aborts. */
export function abortableSleep(signal: AbortSignal | undefined): Sleep {
  const stopped = () => new AgentError('ERR_AGENT_STOPPED', 'the agent is stopping')
  return (ms) => sleepUnlessAborted(ms, signal, stopped)
}

/** Reads a body under `cap` bytes; throws `ERR_AGENT_PUSH_ANSWER` past it. */
async function readCapped(res: Response, cap: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0')
  if (declared > cap) {
    await res.body?.cancel()
    throw new AgentError('ERR_AGENT_PUSH_ANSWER', `verifier answer larger than ${cap} bytes`)
  }
  if (res.body === null) return ''
  const chunks: Uint8Array[] = []
  let total = 0
  for await (const chunk of res.body) {
    total += chunk.byteLength
    if (total > cap) {
      throw new AgentError('ERR_AGENT_PUSH_ANSWER', `verifier answer larger than ${cap} bytes`)
    }
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** The verifier client of one push agent. */
export class VerifierHttp {
  readonly #backoff: Backoff
  readonly #fetch: FetchLike
  readonly #timeoutMs: number
  readonly #maxBody: number
  readonly #sleep: Sleep
  readonly #signal: AbortSignal | undefined
  readonly #warn: (msg: string, fields?: Record<string, unknown>) => void

  constructor(opts: VerifierHttpOptions) {
    this.#backoff = opts.backoff
    const ca = opts.caPem
    this.#fetch =
      opts.fetch ?? ((req) => fetch(req, ca === undefined ? undefined : { tls: { ca } }))
    this.#timeoutMs = opts.timeoutMs ?? 5000
    this.#maxBody = opts.maxBodyBytes ?? 8 * 1024 * 1024
    this.#sleep = opts.sleep ?? abortableSleep(opts.signal)
    this.#signal = opts.signal
    this.#warn = opts.warn ?? (() => {})
  }

  /**
   * Sends `method url` with the JSON `body` (and `Authorization: Bearer <token>`), retrying
   * as described in the module header.
   *
   * @throws {AgentError} `ERR_AGENT_PUSH_NETWORK` when every attempt failed to connect,
   *   `ERR_AGENT_PUSH_ANSWER` for an oversized answer, `ERR_AGENT_STOPPED` when stopping.
   */
  async send(method: string, url: string, body?: unknown, token?: string): Promise<VerifierReply> {
    const text = body === undefined ? undefined : JSON.stringify(body)
    for (let retry = 0; ; retry++) {
      const canRetry = retry < this.#backoff.maxRetries
      let res: Response
      try {
        res = await this.#once(method, url, text, token)
      } catch (cause) {
        if (cause instanceof AgentError) throw cause
        if (!canRetry) {
          throw new AgentError('ERR_AGENT_PUSH_NETWORK', `${method} ${url}: ${describe(cause)}`, {
            cause,
          })
        }
        const wait = backoffDelay(this.#backoff, retry)
        this.#warn('verifier not reachable, retrying', {
          error: describe(cause),
          retry_in_ms: wait,
        })
        await this.#sleep(wait)
        continue
      }
      const status = res.status
      const retryAfter = SUCCESS.has(status)
        ? undefined
        : parseRetryAfter(res.headers.get('retry-after'))
      const transient = status === 408 || status === 429 || status >= 500
      if (canRetry && (retryAfter !== undefined || transient)) {
        await res.body?.cancel()
        const wait = Math.min(
          retryAfter ?? backoffDelay(this.#backoff, retry),
          this.#backoff.maxDelayMs,
        )
        this.#warn('verifier asked to retry', { status, retry_in_ms: wait, url })
        await this.#sleep(wait)
        continue
      }
      const raw = await readCapped(res, this.#maxBody)
      let parsed: unknown
      try {
        parsed = raw.length > 0 ? JSON.parse(raw) : undefined
      } catch {
        parsed = undefined
      }
      return { status, headers: res.headers, body: parsed }
    }
  }

  async #once(
    method: string,
    url: string,
    text: string | undefined,
    token: string | undefined,
  ): Promise<Response> {
    if (this.#signal?.aborted) throw new AgentError('ERR_AGENT_STOPPED', 'the agent is stopping')
    const headers: Record<string, string> = {
      accept: 'application/vnd.api+json, application/json',
      'x-request-id': requestId(),
    }
    if (text !== undefined) headers['content-type'] = 'application/vnd.api+json'
    if (token !== undefined) headers.authorization = `Bearer ${token}`
    const timeout = AbortSignal.timeout(this.#timeoutMs)
    const signal = this.#signal === undefined ? timeout : AbortSignal.any([timeout, this.#signal])
    return this.#fetch(new Request(url, { method, headers, body: text, signal }))
  }
}

/** A network error's message (never a body or a header). */
function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
