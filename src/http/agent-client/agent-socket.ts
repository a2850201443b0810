/**
 * One connection to an agent over Bun's native sockets (`Bun.connect`), with upstream's agent
 * TLS (`generate_agent_tls_context`): our client certificate from `cv_ca`, the agent's registered
 * `mtls_cert` as the only trust anchor, no host-name check (`check_hostname = False`).
 *
 * Bun's client always checks the host name when it verifies, so the socket is opened with
 * `rejectUnauthorized: false` and the handshake is judged here: the chain must verify against the
 * trust anchor (expiry included), only a host-name mismatch is forgiven, and no byte is written
 * before that check passed.
 *
 * @module
 */
import type { Socket, SocketHandler } from 'bun'

/** Where and how to reach one agent (not changed once passed to a pool: its key is kept). */
export interface AgentTarget {
  ip: string
  port: number
  /** HTTPS (agent mTLS) or plain HTTP (`enable_agent_mtls = False`). */
  https: boolean
  /** The agent's `mtls_cert`, trusted alone for this agent. */
  pinnedCert?: string
}

/** Our TLS identity towards agents. */
export interface AgentTls {
  /** Client certificate (PEM). */
  cert?: string
  /** Client private key (PEM). */
  key?: string
  /** CAs for agents without a pinned certificate (PEM). */
  ca?: string[]
  /** False: do not verify agents that have no pinned certificate (`trusted_server_ca = all`). */
  verifyPeer?: boolean
}

/** An agent connection and the state of the request on it (the socket's `data`). */
export interface AgentConn {
  /** Set once connected. */
  socket: Socket<AgentConn> | undefined
  /** The pool key of its target. */
  key: string
  /** Settles when the connection is usable (TLS verified) or has failed. */
  ready: Promise<void>
  /** Settles {@link ready} (idempotent). */
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
  /** When it became idle (performance.now). */
  idleSince: number
  /** When the pending request times out (performance.now). */
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

/** How {@link connectAgent} reports back to its pool. */
export interface ConnectHooks {
  /** Offered for resumption. */
  session: Buffer | undefined
  /** Set-up time limit (ms). */
  timeoutMs: number
  /** Set-up ended (usable or failed); called once. */
  onSettled: () => void
  /** The connection closed; called once. */
  onClosed: (conn: AgentConn) => void
}

/** The agent's certificate failed verification. */
class TlsRefused extends Error {
  override readonly name = 'TlsRefused'
}

/** Host-name errors are forgiven (upstream connects with `check_hostname = False`). */
const HOSTNAME_ERRORS = new Set(['ERR_TLS_CERT_ALTNAME_INVALID', 'HOSTNAME_MISMATCH'])

/**
 * Why a finished handshake is refused under verification `mode`, or undefined. `resumed`: it
 * resumed a session kept from a connection that passed this check under the same pool key (so
 * the same pinned certificate), and the agent proved it holds that session's secret.
 */
function handshakeError(
  s: Socket<AgentConn>,
  mode: AgentConn['verify'],
  authError: Error | null,
  resumed: boolean,
): string | undefined {
  if (mode === 'plain') return undefined
  const code = (authError as { code?: string } | null)?.code
  if (mode !== 'none' && authError !== null && !HOSTNAME_ERRORS.has(code ?? '')) {
    return `agent certificate not trusted: ${code ?? authError.message}`
  }
  if (resumed) return undefined // what was checked needs no certificate object built again
  // a failed handshake has no peer certificate (and OpenSSL's verification passes without one)
  const peer = s.getPeerCertificate() as { raw?: Buffer } | undefined
  if (peer?.raw === undefined || peer.raw.length === 0) return 'TLS handshake failed'
  return undefined
}

/** One handler set for every agent socket (Bun's recommended shape: no closures per socket). */
const HANDLERS: SocketHandler<AgentConn> = {
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

/**
 * Opens a connection to `t`; await its `ready` before writing. Never throws: every failure,
 * including a peer that accepts TCP but never finishes the handshake within `hooks.timeoutMs`,
 * rejects `ready` (the hooks may run before this returns).
 */
export function connectAgent(
  t: AgentTarget,
  key: string,
  tlsOptions: AgentTls,
  hooks: ConnectHooks,
): AgentConn {
  let settle: (err: Error | undefined) => void = () => undefined
  const ready = new Promise<void>((resolve, reject) => {
    settle = (err) => (err === undefined ? resolve() : reject(err))
  })
  ready.catch(() => undefined) // observed by the request; never an unhandled rejection
  const verify: AgentConn['verify'] = !t.https
    ? 'plain'
    : t.pinnedCert !== undefined
      ? 'pinned'
      : tlsOptions.verifyPeer !== false
        ? 'ca'
        : 'none'
  let settled = false
  const setupTimer = setTimeout(() => {
    conn.shut(new Error('timed out during connection set-up'))
    conn.socket?.terminate()
  }, hooks.timeoutMs)
  const conn: AgentConn = {
    socket: undefined,
    key,
    ready,
    settle: (err) => {
      if (settled) return
      settled = true
      clearTimeout(setupTimer)
      hooks.onSettled()
      settle(err)
    },
    verify,
    pending: undefined,
    session: hooks.session,
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
      hooks.onClosed(conn)
      const cb = conn.onClose
      conn.onClose = undefined
      conn.onData = undefined
      cb?.(err)
    },
  }
  const tls = t.https
    ? {
        cert: tlsOptions.cert,
        key: tlsOptions.key,
        ca: t.pinnedCert !== undefined ? [t.pinnedCert] : tlsOptions.ca,
        // verified in the handshake handler; Bun's client offers TLS 1.2 and 1.3 only
        rejectUnauthorized: false,
      }
    : undefined
  const failed = (err: unknown) => conn.shut(err instanceof Error ? err : new Error(String(err)))
  try {
    Bun.connect<AgentConn>({
      hostname: t.ip,
      port: t.port,
      data: conn,
      socket: HANDLERS,
      ...(tls !== undefined ? { tls } : {}),
    }).then((s) => s.setNoDelay(true), failed)
  } catch (err) {
    failed(err) // thrown at once for TLS options it cannot use (an unparsable pinned certificate)
  }
  return conn
}
