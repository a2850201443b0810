/**
 * A TLS listener where the client certificate is optional, as upstream Keylime 7.14's servers
 * (`ssl.CERT_OPTIONAL`, `keylime/web/base/server.py`): a client without a certificate gets in and
 * may call the public actions; one whose certificate chains to `ca` (and is not in the CRLs) is an
 * admin; one presenting any other certificate (another CA, expired, revoked) is refused — Python
 * refuses it at the handshake; here the connection is closed before its first request is
 * answered, so it never gets an answer either.
 *
 * Bun.serve cannot tell a request whether its client's certificate verified (1.4.5: no
 * per-request TLS state, only `requestIP`), so this listener is node's `http` server over
 * `tls.TLSSocket`s that a `net` server accepts. Bun's TLS sockets expose `authorized` and
 * `authorizationError` (not `getPeerCertificate`); Node's convention, which Bun keeps, reports a
 * client that sent no certificate as `UNABLE_TO_GET_ISSUER_CERT`. Each connection takes the
 * secure context current when it arrives, so new client CRLs apply to the next handshake
 * without replacing the listener.
 *
 * Requests reach the hono app as a `Request` with `{ clientCert }` as its env
 * ({@link ListenerEnv}), which the access middleware reads (`access/enforce-access.ts`).
 *
 * @module
 */
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http'
import { createServer as createNetServer, type Socket } from 'node:net'
import { Readable } from 'node:stream'
import { createSecureContext, type SecureContext, TLSSocket } from 'node:tls'
import type { ListenerEnv, RunningServer, ServerTls, StartServerOptions } from './listener-types.ts'
import { runningServer } from './running-server.ts'

/**
 * A connection with no request in flight is closed after this much silence (Bun.serve's default
 * `idleTimeout`): a client that never finishes its handshake or its request holds no socket.
 */
const IDLE_MS = 10_000

/** Node's (and Bun's) `authorizationError` for a client that sent no certificate. */
const NO_CERTIFICATE = 'UNABLE_TO_GET_ISSUER_CERT'

/** TLS state Bun sets on a server-side `TLSSocket` (typed loosely by @types/node). */
interface PeerState {
  authorized?: boolean
  authorizationError?: Error | string | null
}

/** The client's certificate status, or `undefined` for one that presented an invalid one. */
function clientCertOf(socket: Socket): ListenerEnv['clientCert'] | undefined {
  const { authorized, authorizationError } = socket as Socket & PeerState
  if (authorized === true) return 'verified'
  return String(authorizationError) === NO_CERTIFICATE ? 'none' : undefined
}

function secureContext(tls: ServerTls): SecureContext {
  return createSecureContext({
    key: tls.key,
    cert: tls.cert,
    ca: tls.ca,
    crl: tls.crl?.pems.length ? [...tls.crl.pems] : undefined,
    minVersion: 'TLSv1.2',
  })
}

/** Builds the fetch `Request` of a node request; the body streams. */
function toRequest(req: IncomingMessage, origin: string, signal: AbortSignal): Request {
  const headers = new Headers()
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string)
  }
  const method = req.method ?? 'GET'
  const hasBody = method !== 'GET' && method !== 'HEAD'
  return new Request(`${origin}${req.url ?? '/'}`, {
    method,
    headers,
    body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
    signal,
    duplex: 'half', // required by fetch for a streamed body
  })
}

/** Writes a fetch `Response` to a node response. */
async function writeResponse(res: ServerResponse, response: Response, head: boolean) {
  res.statusCode = response.status
  for (const [name, value] of response.headers) res.appendHeader(name, value)
  if (response.body === null || head) {
    res.end()
    return
  }
  for await (const chunk of response.body) {
    if (!res.write(chunk)) await new Promise((resolve) => res.once('drain', resolve))
  }
  res.end()
}

/**
 * Starts a listener with optional client certificates on `options.tls` (which must have
 * `requestCert`), and logs where it listens.
 */
export function listenOptionalClientCert(
  options: StartServerOptions & { tls: ServerTls },
): RunningServer {
  const { name, hostname, port, tls, log } = options
  let context = secureContext(tls)
  const unsubscribe = tls.crl?.subscribe(() => {
    try {
      context = secureContext(tls)
      log.info(`${name}: client CRLs applied`)
    } catch (err) {
      log.error(`${name}: cannot apply the new client CRLs; the previous ones stay`, {
        error: err instanceof Error ? err.message : String(err),
      })
    }
  })
  const sockets = new Set<Socket>()
  /** Sockets with a request being answered: idleness is not counted against them. */
  const busy = new Set<Socket>()
  let inFlight = 0
  let idle: (() => void) | undefined
  const host = hostname.includes(':') ? `[${hostname}]` : hostname
  let origin = `https://${host}:${port}`

  const http = createHttpServer(async (req, res) => {
    const clientCert = clientCertOf(req.socket)
    if (clientCert === undefined) {
      // A certificate that does not verify: refused, as Python's CERT_OPTIONAL handshake does.
      req.socket.destroy()
      return
    }
    const declared = Number(req.headers['content-length'] ?? 0)
    if (options.maxRequestBodySize !== undefined && declared > options.maxRequestBodySize) {
      res.writeHead(413, { connection: 'close' }).end()
      return
    }
    inFlight++
    busy.add(req.socket)
    const abort = new AbortController()
    res.once('close', () => abort.abort())
    try {
      const request = toRequest(req, origin, abort.signal)
      const env: ListenerEnv = { clientCert, remoteIp: req.socket.remoteAddress }
      const response = await options.fetch(request, env)
      await writeResponse(res, response, req.method === 'HEAD')
    } catch (err) {
      log.error(`${name}: request failed`, {
        error: err instanceof Error ? err.message : String(err),
      })
      if (!res.headersSent) res.writeHead(500).end()
      else res.destroy()
    } finally {
      busy.delete(req.socket)
      inFlight--
      if (inFlight === 0) idle?.()
    }
  })

  const net = createNetServer((raw) => {
    const socket = new TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      requestCert: true,
      rejectUnauthorized: false,
    })
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    raw.setTimeout(IDLE_MS, () => {
      if (!busy.has(socket)) socket.destroy()
    })
    socket.on('error', () => socket.destroy())
    http.emit('connection', socket)
  })

  net.on('error', (err) => log.error(`${name}: listener error`, { error: err.message }))
  net.listen({ host: hostname, port })
  // Bun binds synchronously: a failed bind leaves `listening` false (its error event comes later).
  if (!net.listening) {
    unsubscribe?.()
    throw new Error('the address is in use or cannot be assigned')
  }
  const address = net.address()
  const boundPort = typeof address === 'object' && address !== null ? address.port : port
  const url = `https://${host}:${boundPort}`
  origin = url
  log.info(`${name} listening`, { url, mtls: 'optional' })
  const closed = new Promise<void>((done) => net.once('close', () => done()))
  return runningServer(
    { name, url, port: boundPort, log },
    {
      drain(drainMs) {
        unsubscribe?.()
        net.close()
        return new Promise<boolean>((done) => {
          if (inFlight === 0) return done(false)
          idle = () => done(false)
          setTimeout(() => done(true), drainMs).unref()
        })
      },
      async close() {
        for (const s of sockets) s.destroy()
        await closed
      },
    },
  )
}
