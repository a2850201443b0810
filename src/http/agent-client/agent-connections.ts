/**
 * The verifier's one agent client: kept-alive HTTP/1.1 connections to its agents, one mTLS socket
 * per agent address reused round after round, for quotes, keys and revocation notices alike.
 *
 * Not `fetch` (`../mtls-client.ts`, the tenant's client): Bun's fetch keeps only a few dozen
 * idle connections, and a verifier polls thousands of agents in turn; Bun's native sockets also
 * cost less CPU per request than `node:tls` (docs/benchmarks.md, Verifier, session 2). The parts:
 * sockets and their TLS checks (`agent-socket.ts`), one request and its answer
 * (`exchange-request.ts`, read by `http1-response-reader.ts`), set-up limits
 * (`connect-limiter.ts`), TLS sessions (`tls-session-store.ts`).
 *
 * An agent may close an idle connection meanwhile (rust-keylime's actix server after its
 * keep-alive timeout): a request that fails on a reused connection before any answer byte is
 * retried once on a fresh connection.
 *
 * @module
 */
import { createHash } from 'node:crypto'
import { DEFAULT_MAX_ANSWER_BYTES } from '../bounded-body.ts'
import type { ByteBudget } from '../byte-budget.ts'
import type { MtlsResponse } from '../parse-mtls-response.ts'
import { PeerUnreachable } from '../peer-errors.ts'
import { type AgentConn, type AgentTarget, type AgentTls, connectAgent } from './agent-socket.ts'
import { ConnectLimiter } from './connect-limiter.ts'
import {
  type AgentRequest,
  describeSocketError,
  exchangeRequest,
  RetryOnFresh,
  urlOf,
} from './exchange-request.ts'
import { TlsSessionStore } from './tls-session-store.ts'

export type { AgentTarget } from './agent-socket.ts'
export type { AgentRequest } from './exchange-request.ts'
export { sessionFileFor } from './tls-session-store.ts'

/** Identity and limits of an {@link AgentConnections} pool. */
export interface AgentConnectionsOptions extends AgentTls {
  /** Default request timeout (ms). */
  timeoutMs?: number
  /** Close connections idle longer than this (ms, default 60 s). */
  idleMs?: number
  /** Largest answer, head and framing included (bytes, `max_agent_response_size`, 256 MiB). */
  maxResponseBytes?: number
  /** Process-wide budget of answer bytes being read (`max_agent_response_buffer`). */
  budget?: ByteBudget
  /** Connections being set up at once (default 16); rounds wait for a slot. */
  maxConnecting?: number
  /** Full TLS handshakes per second at most (default 500; a resumption counts less). */
  connectsPerSecond?: number
  /** Where TLS sessions are kept across restarts (a JSON file, 0600; none by default). */
  sessionFile?: string
}

/**
 * How often one timer checks request deadlines and idle connections (ms): thousands of requests
 * a second would otherwise each arm and clear a timer of their own.
 */
const SWEEP_MS = 100

/** The pool of kept-alive agent connections of one verifier process. */
export class AgentConnections {
  readonly #o: AgentConnectionsOptions
  readonly #idle = new Map<string, AgentConn[]>()
  readonly #sessions: TlsSessionStore
  readonly #limiter: ConnectLimiter
  /** Pool keys by target object (see {@link AgentConnections.#keyOf}). */
  readonly #keys = new WeakMap<AgentTarget, string>()
  #open = 0
  #opened = 0
  #resumed = 0
  /** Connections with a request in flight (their deadlines are swept). */
  readonly #inFlight = new Set<AgentConn>()
  #sweepTimer: ReturnType<typeof setInterval> | undefined
  #lastIdleSweep = 0

  constructor(options: AgentConnectionsOptions) {
    this.#o = options
    this.#sessions = new TlsSessionStore(options.sessionFile)
    this.#limiter = new ConnectLimiter(options)
  }

  /** Connections open now (idle or busy). */
  get open(): number {
    return this.#open
  }

  /** Connections opened since start (a handshake each, for HTTPS). */
  get opened(): number {
    return this.#opened
  }

  /** Handshakes since start that resumed a TLS session. */
  get resumed(): number {
    return this.#resumed
  }

  /**
   * Adds the TLS sessions other verifier processes sharing this `KEYLIME_DIR` saved, for agents
   * that have none here (a take-over resumes instead of full handshakes); returns how many.
   */
  importSiblingSessions(): number {
    return this.#sessions.importSiblings()
  }

  /** Writes the TLS sessions to `sessionFile` when they changed (`force`: refreshed ones too). */
  saveSessions(force = false): void {
    this.#sessions.save(force)
  }

  /** Whether a request to `t` would reuse an open connection (no handshake). */
  isWarm(t: AgentTarget): boolean {
    return (this.#idle.get(this.#keyOf(t))?.length ?? 0) > 0
  }

  /**
   * Reserves a slot in the connection rate limit and returns how many ms from now it is. The
   * caller schedules its round for then instead of holding an in-flight slot while it waits (so
   * rounds on warm connections are never starved); its request then connects without waiting.
   */
  reserveConnect(t: AgentTarget): number {
    return this.#limiter.reserve(this.#sessions.has(this.#keyOf(t)))
  }

  /**
   * Sends one request to an agent and parses the JSON answer.
   *
   * @throws PeerUnreachable on connection, TLS or timeout failures (AnswerBufferFull: the
   *   process budget had no room for the answer)
   * @throws PeerBadResponse when the answer is not HTTP/JSON (PeerAnswerTooLarge: over the cap)
   */
  async request(t: AgentTarget, req: AgentRequest): Promise<MtlsResponse> {
    const key = this.#keyOf(t)
    const timeoutMs = req.timeoutMs ?? this.#o.timeoutMs ?? 60_000
    for (let attempt = 0; ; attempt++) {
      let conn = this.#idle.get(key)?.pop()
      if (conn !== undefined && this.#idle.get(key)?.length === 0) this.#idle.delete(key)
      if (conn === undefined || conn.closed) conn = await this.#connect(t, key, req.path, timeoutMs)
      try {
        return await this.#exchange(conn, t, req, timeoutMs)
      } catch (err) {
        if (err instanceof RetryOnFresh && attempt === 0) continue
        if (err instanceof RetryOnFresh) throw err.toUnreachable()
        throw err
      }
    }
  }

  /** Closes every connection and saves the TLS sessions. */
  close(): void {
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer)
    this.#sweepTimer = undefined
    this.#sessions.close()
    for (const list of this.#idle.values()) for (const c of list) c.socket?.terminate()
    this.#idle.clear()
  }

  /** A new, verified connection to `t`, within the connect limits (`path`: for errors). */
  async #connect(t: AgentTarget, key: string, path: string, timeoutMs: number): Promise<AgentConn> {
    await this.#limiter.acquire(this.#sessions.has(key))
    this.#open++ // before: a failed set-up may report its close at once
    this.#opened++
    const conn = connectAgent(t, key, this.#o, {
      session: this.#sessions.get(key),
      timeoutMs,
      onSettled: () => this.#limiter.release(),
      onClosed: (c) => {
        this.#open--
        this.#forget(c)
      },
    })
    try {
      await conn.ready
    } catch (err) {
      conn.socket?.terminate()
      throw new PeerUnreachable(urlOf(t, path), describeSocketError(err as Error), err)
    }
    if (conn.resumed) this.#resumed++
    return conn
  }

  async #exchange(
    conn: AgentConn,
    t: AgentTarget,
    req: AgentRequest,
    timeoutMs: number,
  ): Promise<MtlsResponse> {
    this.#inFlight.add(conn)
    if (this.#sweepTimer === undefined) {
      this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_MS)
      this.#sweepTimer.unref()
    }
    try {
      const maxBytes = this.#o.maxResponseBytes ?? DEFAULT_MAX_ANSWER_BYTES
      const { res, keepAlive } = await exchangeRequest(conn, t, req, {
        timeoutMs,
        maxBytes,
        budget: this.#o.budget,
      })
      if (keepAlive) this.#release(conn)
      return res
    } finally {
      this.#inFlight.delete(conn)
    }
  }

  /** Fails requests past their deadline and closes connections idle longer than `idleMs`. */
  #sweep(): void {
    const now = performance.now()
    for (const c of this.#inFlight) if (c.deadline <= now) c.onTimeout?.()
    const idleMs = this.#o.idleMs ?? 60_000
    if (now - this.#lastIdleSweep < Math.min(5_000, idleMs / 4)) return
    this.#lastIdleSweep = now
    for (const list of this.#idle.values()) {
      for (let i = list.length - 1; i >= 0; i--) {
        const c = list[i] as AgentConn
        if (now - c.idleSince >= idleMs) c.socket?.end()
      }
    }
  }

  /**
   * The pool key of `t`, kept per target object: the verifier passes each agent's one target
   * round after round, so the key is built once, not hashed out of the address twice a round.
   */
  #keyOf(t: AgentTarget): string {
    let key = this.#keys.get(t)
    if (key === undefined) {
      key = buildKey(t)
      this.#keys.set(t, key)
    }
    return key
  }

  #forget(conn: AgentConn): void {
    const list = this.#idle.get(conn.key)
    if (list === undefined) return
    const i = list.indexOf(conn)
    if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.#idle.delete(conn.key)
  }

  /** Puts a connection that answered back in the idle list (keeping its first TLS session). */
  #release(conn: AgentConn): void {
    if (conn.closed) return
    if (conn.used === 0 && conn.verify !== 'plain' && conn.socket !== undefined) {
      const session = conn.socket.getSession() as unknown as Buffer | undefined
      this.#sessions.keep(conn.key, session, conn.resumed)
    }
    conn.used++
    let list = this.#idle.get(conn.key)
    if (list === undefined) {
      list = []
      this.#idle.set(conn.key, list)
    }
    list.push(conn)
    conn.idleSince = performance.now()
  }
}

/**
 * `s|ip|port|cert digest` (`p|ip|port|` for plain HTTP, where no certificate is used): a changed
 * pinned certificate gets a new socket and never resumes a session made with the old one.
 */
function buildKey(t: AgentTarget): string {
  const certId =
    t.pinnedCert === undefined || !t.https
      ? ''
      : createHash('sha256').update(t.pinnedCert).digest('base64url').slice(0, 22)
  return `${t.https ? 's' : 'p'}|${t.ip}|${t.port}|${certId}`
}
