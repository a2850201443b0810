/**
 * Kept-alive HTTP/1.1 connections from the verifier to its agents: one mTLS socket per agent
 * address, reused round after round.
 *
 * Why not `fetch` (`src/http/mtls-client.ts`): Bun's fetch keeps at most a few dozen idle
 * connections in its pool (measured on Bun 1.4.5: 40 agents polled in turn reuse their
 * connections, ~115 µs CPU per request; 300 agents get a fresh TLS handshake on every request,
 * ~1.5 ms). A verifier polls thousands of agents in turn, so it needs a connection per agent that
 * stays open between quotes. This client speaks just enough HTTP/1.1 for the agent API (one
 * request at a time per connection; answers read by `src/http/http1-response-reader.ts`, in linear
 * time under `maxResponseBytes` and the process `budget`) over Bun's native sockets
 * (`Bun.connect`): measured against `node:tls` on the same kept-alive loop, they cost about half
 * the user CPU per request (≈22 vs ≈31 µs with the kernel's share) and a third less per
 * handshake, because no Node stream machinery sits between the socket and the parser.
 *
 * TLS as upstream's `generate_agent_tls_context`: our client certificate from `cv_ca`, the
 * agent's registered `mtls_cert` as the only trust anchor, no host-name check (`check_hostname =
 * False`). Bun's client always checks the host name when it verifies, so the socket is opened
 * with `rejectUnauthorized: false` and the handshake's verification result is judged here: the
 * chain must verify against the trust anchor (expiry included); only a host-name mismatch is
 * forgiven. No byte is written before that check passed.
 *
 * A reused connection may have been closed by the agent meanwhile (rust-keylime's actix server
 * drops idle connections after its keep-alive timeout); a request that fails on a reused
 * connection before any response byte arrived is retried once on a fresh connection.
 *
 * @module
 */
import type { Socket, SocketHandler } from 'bun'
import { createHash } from 'node:crypto'
import { chmodSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { BodyLimitError, BoundedBody, DEFAULT_MAX_ANSWER_BYTES } from '../bounded-body.ts'
import type { ByteBudget } from '../byte-budget.ts'
import { Http1Error, type Http1Response, Http1ResponseReader } from './http1-response-reader.ts'
import {
  formatHostPort,
  type MtlsResponse,
  PeerBadResponse,
  PeerUnreachable,
  parseMtlsResponse,
  peerLimitError,
} from '../mtls-client.ts'

/** Identity and limits of an {@link AgentConnections} pool. */
export interface AgentConnectionsOptions {
  /** Client certificate (PEM). */
  cert?: string
  /** Client private key (PEM). */
  key?: string
  /** CAs for agents without a pinned certificate (PEM). */
  ca?: string[]
  /** False: do not verify agents that have no pinned certificate (`trusted_server_ca = all`). */
  verifyPeer?: boolean
  /** Default request timeout (ms). */
  timeoutMs?: number
  /** Close connections idle longer than this (ms, default 60 s). */
  idleMs?: number
  /** Largest answer, head and framing included (bytes, `max_agent_response_size`, 256 MiB). */
  maxResponseBytes?: number
  /** Process-wide budget of answer bytes being read (`max_agent_response_buffer`). */
  budget?: ByteBudget
  /**
   * Connections being set up at once (default 16). A TLS handshake costs 30–200× a request on a
   * kept-alive connection; after a start or a take-over of thousands of agents, an unbounded
   * burst of handshakes starves the rounds on established connections and, once agents time
   * out idle connections, never settles. Rounds wait for a slot instead.
   */
  maxConnecting?: number
  /**
   * Full TLS handshakes per second at most (default 500: a third to half a core at the 0.66–0.88
   * ms of client CPU one costs on the machines measured; a resumed one counts as
   * {@link RESUME_COST} of a slot). Keeps the rounds
   * on established connections on time while a large fleet connects: without it, the first
   * rounds of thousands of agents delay everyone past the agents' keep-alive timeout, each
   * closed connection costs another handshake, and the verifier never catches up.
   */
  connectsPerSecond?: number
  /**
   * Where TLS sessions are kept across restarts (a JSON file, 0600; none by default). A
   * restarted verifier resumes its agents' sessions instead of full handshakes: measured, 0.14–0.28
   * ms of client CPU instead of 0.66–0.88 ms (RSA-2048 client key), and the agent skips its
   * signature too. The file holds session secrets: it lives beside `cv_ca`, whose client key
   * already lets its reader act as the verifier.
   */
  sessionFile?: string
}

/**
 * A resumed handshake's share of a full one in the connection rate limit: client CPU per
 * connection of a TLS 1.3 resumption against a full handshake with the RSA-2048 client key,
 * 178 µs against 769 µs on a 2-core EPYC VM (`bun bench/agent-handshake.ts`).
 */
const RESUME_COST = 0.2
/** Sessions older than this are not offered (servers keep tickets 2 h by default). */
const SESSION_MAX_AGE_MS = 24 * 3_600_000
const SESSIONS_MAX = 100_000
/**
 * Larger sessions are not kept. One holds the agent's (self-signed) certificate, 1–2 KB in all:
 * an agent with a huge certificate pays full handshakes rather than holding memory for the life
 * of the process. All kept sessions together hold at most {@link SESSIONS_MAX_TOTAL_BYTES}.
 */
const SESSION_MAX_BYTES = 8 * 1024
const SESSIONS_MAX_TOTAL_BYTES = 256 * 1024 * 1024
/**
 * A newer session replaces a kept one older than this. Agents that close idle connections
 * (interval longer than their keep-alive) would otherwise replace every session every round.
 */
const SESSION_REFRESH_MS = 30 * 60_000
/** Saves for refreshed sessions only (no new agent) at most this often. */
const REFRESH_SAVE_MS = 5 * 60_000

/** Name prefix of the verifiers' TLS session files (see {@link sessionFileFor}). */
const SESSION_FILE_PREFIX = 'verifier-tls-sessions-'

/**
 * The TLS session file of verifier instance `instanceId` in `dir` (`KEYLIME_DIR`): one per
 * instance, named by a digest of its id, so processes sharing the directory find each other's.
 */
export function sessionFileFor(dir: string, instanceId: string): string {
  const id = createHash('sha256').update(instanceId).digest('hex').slice(0, 12)
  return join(dir, `${SESSION_FILE_PREFIX}${id}.json`)
}

/** Where and how to reach one agent (not changed once passed to a pool: its key is kept). */
export interface AgentTarget {
  ip: string
  port: number
  /** HTTPS (agent mTLS) or plain HTTP (`enable_agent_mtls = False`). */
  https: boolean
  /** The agent's `mtls_cert`, trusted alone for this agent. */
  pinnedCert?: string
}

/** One request. */
export interface AgentRequest {
  method?: 'GET' | 'POST'
  /** Path with query, e.g. `/v2.2/quotes/integrity?…`. */
  path: string
  /** JSON body. */
  json?: unknown
  timeoutMs?: number
}

interface Conn {
  /** Set once connected; the socket's `data` is this Conn. */
  socket: Socket<Conn> | undefined
  key: string
  /** Settles when the connection is usable (TLS verified) or has failed. */
  ready: Promise<void>
  /** Settles {@link ready}. */
  settle: (err: Error | undefined) => void
  /** TLS verification to apply at the handshake. */
  verify: 'pinned' | 'ca' | 'none' | 'plain'
  /** Bytes not yet accepted by the socket (written on `drain`). */
  pending: Buffer | undefined
  /** TLS session offered for resumption. */
  session: Buffer | undefined
  /** The handshake resumed a session. */
  resumed: boolean
  /** Requests completed on it (0: fresh). */
  used: number
  /** When it became idle (performance.now; closed by the sweep after `idleMs`). */
  idleSince: number
  /** When the pending request times out (performance.now; checked by the sweep). */
  deadline: number
  /** Fails the pending request with a timeout. */
  onTimeout: (() => void) | undefined
  /** The pending request's handlers, if any. */
  onData: ((b: Buffer) => void) | undefined
  onClose: ((err: Error | undefined) => void) | undefined
  closed: boolean
  /** Marks the connection closed (idempotent) and tells the pending request. */
  shut: (err: Error | undefined) => void
}

/** The agent's certificate failed verification. */
class TlsRefused extends Error {
  override readonly name = 'TlsRefused'
}

/**
 * How often one timer checks request deadlines and idle connections (ms). Thousands of requests
 * per second would otherwise each arm and clear a timer of their own, and each idle connection
 * another.
 */
const SWEEP_MS = 100

/** Host-name errors are forgiven (upstream connects with `check_hostname = False`). */
const HOSTNAME_ERRORS = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH'])

/**
 * Why a finished handshake is refused under verification `mode`, or undefined. `resumed`: it
 * resumed a session this pool kept from a connection that passed this check, under the same pool
 * key (so the same pinned certificate), and the agent proved it holds that session's secret.
 */
function handshakeError(
  s: Socket<Conn>,
  mode: Conn['verify'],
  authError: Error | null,
  resumed: boolean,
): string | undefined {
  if (mode === 'plain') return undefined
  const code = (authError as { code?: string } | null)?.code
  if (mode !== 'none' && authError !== null && !HOSTNAME_ERRORS.has(code ?? '')) {
    return `agent certificate not trusted: ${code ?? authError.message}`
  }
  if (resumed) return undefined // no certificate object to build (~15 µs) for what was checked
  // a failed handshake has no peer certificate (and OpenSSL's verification passes without one)
  const peer = s.getPeerCertificate() as { raw?: Buffer } | undefined
  if (peer?.raw === undefined || peer.raw.length === 0) return 'TLS handshake failed'
  return undefined
}

/** One handler set for every agent socket (Bun's recommended shape: no closures per socket). */
const HANDLERS: SocketHandler<Conn> = {
  open(s) {
    s.data.socket = s
    if (s.data.verify === 'plain') s.data.settle(undefined)
    else if (s.data.session !== undefined) s.setSession(s.data.session)
  },
  handshake(s, ok, authError) {
    s.data.resumed = s.isSessionReused()
    const why = handshakeError(s, s.data.verify, authError, ok && s.data.resumed)
    if (why === undefined) s.data.settle(undefined)
    else {
      s.data.settle(new TlsRefused(why))
      s.terminate()
    }
  },
  data(s, chunk) {
    s.data.onData?.(chunk)
  },
  drain(s) {
    const c = s.data
    if (c.pending === undefined) return
    const n = s.write(c.pending)
    c.pending = n >= c.pending.length ? undefined : c.pending.subarray(Math.max(0, n))
  },
  end(s) {
    s.data.shut(undefined)
    s.terminate()
  },
  close(s, err) {
    s.data.shut(err)
  },
  error(s, err) {
    s.data.shut(err)
  },
  connectError(s, err) {
    s.data.shut(err)
  },
}

/** The pool of kept-alive agent connections of one verifier process. */
export class AgentConnections {
  readonly #o: AgentConnectionsOptions
  readonly #idle = new Map<string, Conn[]>()
  /** TLS sessions by pool key, with when they were saved (ms since epoch). */
  readonly #sessions = new Map<string, { s: Buffer; at: number }>()
  #sessionBytes = 0
  /** Sessions for agents that had none, and refreshed ones, since the last save. */
  #sessionsNew = 0
  #sessionsRefreshed = 0
  /** Pool keys by target object (see {@link AgentConnections.#keyOf}). */
  readonly #keys = new WeakMap<AgentTarget, string>()
  /** Sibling session files already read, with their modification time then. */
  readonly #siblingMtimes = new Map<string, number>()
  #lastSave = 0
  #saveTimer: ReturnType<typeof setInterval> | undefined
  #open = 0
  #opened = 0
  #resumed = 0
  #connecting = 0
  readonly #connectWaiters: (() => void)[] = []
  /** Earliest time (performance.now) the next connection may start. */
  #nextConnectAt = 0
  /** Rate-limit slots reserved by {@link reserveConnect} and not used yet. */
  #reserved = 0
  /** Connections with a request in flight (their deadlines are swept). */
  readonly #inFlight = new Set<Conn>()
  #sweepTimer: ReturnType<typeof setInterval> | undefined
  #lastIdleSweep = 0

  constructor(options: AgentConnectionsOptions) {
    this.#o = options
    if (options.sessionFile !== undefined) {
      this.#loadSessions(options.sessionFile)
      this.#saveTimer = setInterval(() => this.saveSessions(), 5_000)
      this.#saveTimer.unref()
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
        const c = list[i] as Conn
        if (now - c.idleSince >= idleMs) c.socket?.end()
      }
    }
  }

  /** Handshakes since start that resumed a TLS session. */
  get resumed(): number {
    return this.#resumed
  }

  /**
   * Adds a session file's sessions for agents that have none here (all of them at start);
   * returns how many were added. An unreadable or garbled file adds none.
   */
  #loadSessions(file: string): number {
    let parsed: unknown
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'))
    } catch {
      return 0 // none yet, or unreadable: full handshakes
    }
    const list = (parsed as { sessions?: unknown } | null)?.sessions
    if (!Array.isArray(list)) return 0
    const oldest = Date.now() - SESSION_MAX_AGE_MS
    let added = 0
    for (const e of list.slice(0, SESSIONS_MAX)) {
      if (this.#sessions.size >= SESSIONS_MAX || this.#sessionBytes >= SESSIONS_MAX_TOTAL_BYTES)
        break
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'string') continue
      const at = Number(e[2])
      if (!(at > oldest) || this.#sessions.has(e[0]) || e[1].length > SESSION_MAX_BYTES * 2)
        continue
      this.#setSession(e[0], Buffer.from(e[1], 'base64'), at)
      added++
    }
    return added
  }

  /**
   * Adds the sessions that other verifier processes sharing this `KEYLIME_DIR` saved beside ours
   * (the {@link sessionFileFor} files next to `sessionFile`), for agents that have none here: a
   * process that takes over a dead sibling's agents resumes their TLS sessions instead of paying
   * full handshakes. A file is read again only when it changed. Returns how many sessions were
   * added.
   */
  importSiblingSessions(): number {
    const own = this.#o.sessionFile
    if (own === undefined) return 0
    const dir = dirname(own)
    const name = basename(own)
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch {
      return 0
    }
    let added = 0
    for (const n of names) {
      if (n === name || !n.startsWith(SESSION_FILE_PREFIX) || !n.endsWith('.json')) continue
      const file = join(dir, n)
      let mtime: number
      try {
        mtime = statSync(file).mtimeMs
      } catch {
        continue
      }
      if (this.#siblingMtimes.get(file) === mtime) continue
      this.#siblingMtimes.set(file, mtime)
      added += this.#loadSessions(file)
    }
    if (added > 0) this.#sessionsNew += added // kept in our own file from now on
    return added
  }

  /**
   * Writes the TLS sessions to `sessionFile` (atomic replace, mode 0600) when agents got their
   * first session since the last save, or every few minutes when sessions were only refreshed;
   * `force` (at close) whenever anything changed.
   */
  saveSessions(force = false): void {
    const file = this.#o.sessionFile
    if (file === undefined) return
    const due =
      this.#sessionsNew > 0 ||
      (this.#sessionsRefreshed > 0 && (force || Date.now() - this.#lastSave >= REFRESH_SAVE_MS))
    if (!due) return
    const counts = [this.#sessionsNew, this.#sessionsRefreshed] as const
    this.#sessionsNew = 0
    this.#sessionsRefreshed = 0
    this.#lastSave = Date.now()
    const sessions = [...this.#sessions].map(([k, v]) => [k, v.s.toString('base64'), v.at])
    const tmp = `${file}.${process.pid}.tmp`
    try {
      writeFileSync(tmp, JSON.stringify({ v: 1, sessions }), { mode: 0o600 })
      chmodSync(tmp, 0o600)
      renameSync(tmp, file)
    } catch {
      // retried at the next tick
      this.#sessionsNew += counts[0]
      this.#sessionsRefreshed += counts[1]
    }
  }

  /** Keeps the session of a connection's first answer (TLS 1.3 tickets follow the handshake). */
  #keepSession(conn: Conn): void {
    const s = conn.socket
    if (s === undefined || conn.verify === 'plain') return
    const sess = s.getSession() as unknown as Buffer | undefined
    if (sess === undefined || sess.length === 0 || sess.length > SESSION_MAX_BYTES) return
    const kept = this.#sessions.get(conn.key)
    const now = Date.now()
    if (kept === undefined) {
      if (this.#sessions.size >= SESSIONS_MAX) return
      if (this.#sessionBytes + sess.length > SESSIONS_MAX_TOTAL_BYTES) return
      this.#sessionsNew++
    } else if (conn.resumed && now - kept.at < SESSION_REFRESH_MS) return
    else this.#sessionsRefreshed++ // refreshed, or the kept one no longer resumes
    this.#setSession(conn.key, sess, now)
  }

  #setSession(key: string, s: Buffer, at: number): void {
    this.#sessionBytes += s.length - (this.#sessions.get(key)?.s.length ?? 0)
    this.#sessions.set(key, { s, at })
  }

  /** Connections open now (idle or busy). */
  get open(): number {
    return this.#open
  }

  /** Connections opened since start (a handshake each, for HTTPS). */
  get opened(): number {
    return this.#opened
  }

  /**
   * The pool key of `t`, kept per target object: the verifier passes each agent's one target
   * round after round, so the key is built once, not hashed out of the address twice a round.
   */
  #keyOf(t: AgentTarget): string {
    let key = this.#keys.get(t)
    if (key === undefined) {
      key = this.#buildKey(t)
      this.#keys.set(t, key)
    }
    return key
  }

  /**
   * `s|ip|port|cert digest` (`p|…` for plain HTTP): a changed pinned certificate gets a new socket
   * and never resumes a session made with the old one.
   */
  #buildKey(t: AgentTarget): string {
    const certId =
      t.pinnedCert === undefined
        ? ''
        : createHash('sha256').update(t.pinnedCert).digest('base64url').slice(0, 22)
    return `${t.https ? 's' : 'p'}|${t.ip}|${t.port}|${certId}`
  }

  /** Rate-limit interval of the next connection to `key` (a resumption costs less). */
  #slotMs(key: string): number {
    const full = 1000 / (this.#o.connectsPerSecond ?? 500)
    return this.#sessions.has(key) ? full * RESUME_COST : full
  }

  /** Whether a request to `t` would reuse an open connection (no handshake). */
  isWarm(t: AgentTarget): boolean {
    return (this.#idle.get(this.#keyOf(t))?.length ?? 0) > 0
  }

  /**
   * Reserves a slot in the connection rate limit and returns how many ms from now it is. The
   * caller schedules its round for then, instead of holding an in-flight slot while it waits (so
   * rounds on warm connections are never starved by rounds queued for a handshake); its request
   * then connects without waiting again.
   */
  reserveConnect(t: AgentTarget): number {
    const now = performance.now()
    const at = Math.max(now, this.#nextConnectAt)
    this.#nextConnectAt = at + this.#slotMs(this.#keyOf(t))
    this.#reserved++
    return at - now
  }

  /** Resolves when a connection may be set up (`maxConnecting`, `connectsPerSecond`). */
  async #acquireConnect(key: string): Promise<void> {
    if (this.#reserved > 0) this.#reserved--
    else {
      const now = performance.now()
      const at = Math.max(now, this.#nextConnectAt)
      this.#nextConnectAt = at + this.#slotMs(key)
      if (at > now) await new Promise((resolve) => setTimeout(resolve, at - now))
    }
    if (this.#connecting < (this.#o.maxConnecting ?? 16)) {
      this.#connecting++
      return
    }
    await new Promise<void>((resolve) => this.#connectWaiters.push(resolve))
  }

  #releaseConnect(): void {
    const next = this.#connectWaiters.shift()
    if (next !== undefined) next()
    else this.#connecting--
  }

  #connect(t: AgentTarget, key: string, timeoutMs: number): Conn {
    let settle: (err: Error | undefined) => void = () => undefined
    const ready = new Promise<void>((resolve, reject) => {
      settle = (err) => (err === undefined ? resolve() : reject(err))
    })
    ready.catch(() => undefined) // observed by request(); never an unhandled rejection
    const verify: Conn['verify'] = !t.https
      ? 'plain'
      : t.pinnedCert !== undefined
        ? 'pinned'
        : this.#o.verifyPeer !== false
          ? 'ca'
          : 'none'
    let settled = false
    // a peer that accepts TCP but never finishes the handshake (or a black-holed address)
    const setupTimer = setTimeout(() => {
      conn.shut(new Error('timed out during connection set-up'))
      conn.socket?.terminate()
    }, timeoutMs)
    const conn: Conn = {
      socket: undefined,
      key,
      ready,
      settle: (err) => {
        if (settled) return
        settled = true
        clearTimeout(setupTimer)
        this.#releaseConnect()
        settle(err)
      },
      verify,
      pending: undefined,
      session: this.#sessions.get(key)?.s,
      resumed: false,
      used: 0,
      idleSince: 0,
      deadline: 0,
      onTimeout: undefined,
      onData: undefined,
      onClose: undefined,
      closed: false,
      shut: (err) => {
        conn.settle(err ?? new Error('connection closed during set-up'))
        if (conn.closed) return
        conn.closed = true
        this.#open--
        this.#forget(conn)
        const cb = conn.onClose
        conn.onClose = undefined
        conn.onData = undefined
        cb?.(err)
      },
    }
    this.#open++
    this.#opened++
    const tls = t.https
      ? {
          cert: this.#o.cert,
          key: this.#o.key,
          ca: t.pinnedCert !== undefined ? [t.pinnedCert] : this.#o.ca,
          // verified in the handshake handler; Bun's client offers TLS 1.2 and 1.3 only
          rejectUnauthorized: false,
        }
      : undefined
    Bun.connect<Conn>({
      hostname: t.ip,
      port: t.port,
      data: conn,
      socket: HANDLERS,
      ...(tls !== undefined ? { tls } : {}),
    }).then(
      (s) => s.setNoDelay(true),
      (err: unknown) => conn.shut(err instanceof Error ? err : new Error(String(err))),
    )
    return conn
  }

  #forget(conn: Conn): void {
    const list = this.#idle.get(conn.key)
    if (list === undefined) return
    const i = list.indexOf(conn)
    if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.#idle.delete(conn.key)
  }

  #release(conn: Conn): void {
    if (conn.closed) return
    if (conn.used === 0) this.#keepSession(conn)
    conn.used++
    let list = this.#idle.get(conn.key)
    if (list === undefined) {
      list = []
      this.#idle.set(conn.key, list)
    }
    list.push(conn)
    conn.idleSince = performance.now()
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
      if (conn === undefined || conn.closed) {
        await this.#acquireConnect(key)
        conn = this.#connect(t, key, timeoutMs)
        try {
          await conn.ready
          if (conn.resumed) this.#resumed++
        } catch (err) {
          conn.socket?.terminate()
          throw new PeerUnreachable(urlOf(t, req.path), describe(err as Error), err)
        }
      }
      try {
        return await this.#exchange(conn, t, req, timeoutMs)
      } catch (err) {
        if (err instanceof RetryOnFresh && attempt === 0) continue
        if (err instanceof RetryOnFresh) throw err.toUnreachable()
        throw err
      }
    }
  }

  #exchange(
    conn: Conn,
    t: AgentTarget,
    req: AgentRequest,
    timeoutMs: number,
  ): Promise<MtlsResponse> {
    const url = urlOf(t, req.path)
    const reused = conn.used > 0
    const maxBytes = this.#o.maxResponseBytes ?? DEFAULT_MAX_ANSWER_BYTES
    return new Promise<MtlsResponse>((resolve, reject) => {
      const answer = new BoundedBody({ maxBytes, budget: this.#o.budget })
      const reader = new Http1ResponseReader(answer)
      conn.deadline = performance.now() + timeoutMs
      conn.onTimeout = () => finish(new PeerUnreachable(url, 'timed out'))
      this.#inFlight.add(conn)
      if (this.#sweepTimer === undefined) {
        this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_MS)
        this.#sweepTimer.unref()
      }
      const finish = (err: Error | undefined, res?: MtlsResponse, keep = false) => {
        answer.release()
        this.#inFlight.delete(conn)
        conn.onTimeout = undefined
        conn.onData = undefined
        conn.onClose = undefined
        if (err !== undefined) {
          conn.socket?.terminate()
          reject(err)
          return
        }
        if (keep) this.#release(conn)
        else conn.socket?.end()
        resolve(res as MtlsResponse)
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
        else if (reader.started) finish(new PeerUnreachable(url, describe(err), err))
        else if (reused) finish(new RetryOnFresh(url, err))
        else finish(new PeerUnreachable(url, describe(err), err))
      }
      conn.onData = (chunk) => done(() => reader.push(chunk))
      let payload = ''
      let extra = ''
      if (req.json !== undefined) {
        payload = JSON.stringify(req.json)
        extra = `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`
      }
      const out =
        `${req.method ?? 'GET'} ${req.path} HTTP/1.1\r\nHost: ${formatHostPort(t.ip, t.port)}\r\n` +
        `Accept: application/json\r\n${extra}\r\n${payload}`
      const socket = conn.socket
      if (socket === undefined || conn.closed) {
        finish(new RetryOnFresh(url, undefined))
        return
      }
      const n = socket.write(out)
      if (n < Buffer.byteLength(out)) conn.pending = Buffer.from(out).subarray(Math.max(0, n))
    })
  }

  /** Closes every connection and saves the TLS sessions. */
  close(): void {
    if (this.#saveTimer !== undefined) clearInterval(this.#saveTimer)
    this.#saveTimer = undefined
    if (this.#sweepTimer !== undefined) clearInterval(this.#sweepTimer)
    this.#sweepTimer = undefined
    this.saveSessions(true)
    for (const list of this.#idle.values()) for (const c of list) c.socket?.terminate()
    this.#idle.clear()
  }
}

/** The URL of a request to `t` (for errors). */
function urlOf(t: AgentTarget, path: string): string {
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

function describe(err: Error | undefined): string {
  if (err === undefined) return 'connection closed before a response'
  const e = err as { code?: string }
  return e.code ? `${e.code}: ${err.message}` : err.message
}

/** Internal: a reused connection died before answering; try once more on a fresh one. */
class RetryOnFresh extends Error {
  readonly url: string
  constructor(url: string, cause: unknown) {
    super('reused connection closed', { cause })
    this.url = url
  }
  toUnreachable(): PeerUnreachable {
    return new PeerUnreachable(this.url, describe(this.cause as Error | undefined), this.cause)
  }
}
