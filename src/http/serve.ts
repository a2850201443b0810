/**
 * Starts and stops HTTP(S) listeners.
 *
 * A TLS listener with `requestCert` (the admin ports, 8881 and 8891) takes client certificates as
 * upstream Keylime 7.14 does, optionally (`ssl.CERT_OPTIONAL`): see `listen-optional-client-cert.ts`,
 * which tells each request whether its client's certificate verified (CA only, no host name, as
 * upstream), and the access middleware (`access/enforce-access.ts`) decides per route. Other
 * listeners (plain HTTP, or TLS with `trusted_client_ca = all`) run on Bun.serve. TLS 1.2 is the
 * minimum.
 *
 * @module
 */
import { constants } from 'node:crypto'
import { listenOptionalClientCert } from './listen-optional-client-cert.ts'
import type { RunningServer, StartServerOptions } from './listener-types.ts'
import { runningServer } from './running-server.ts'

export type {
  ListenerEnv,
  ListenerState,
  RunningServer,
  ServerTls,
  StartServerOptions,
  TlsCrlFeed,
} from './listener-types.ts'

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

/** Starts a listener and logs where it listens. */
export function startServer(options: StartServerOptions): RunningServer {
  const { name, hostname, port, tls, log } = options
  if (tls?.requestCert) {
    try {
      return listenOptionalClientCert({ ...options, tls })
    } catch (err) {
      throw new ListenError(name, hostname, port, err)
    }
  }
  let server: ReturnType<typeof Bun.serve>
  try {
    server = Bun.serve({
      hostname,
      port,
      // No client certificate is asked for here: every request is anonymous, from its address.
      fetch: (request, srv) =>
        options.fetch(request, { clientCert: 'none', remoteIp: srv.requestIP(request)?.address }),
      maxRequestBodySize: options.maxRequestBodySize,
      tls: tls ? { key: tls.key, cert: tls.cert, secureOptions: TLS_MIN_1_2 } : undefined,
    })
  } catch (err) {
    throw new ListenError(name, hostname, port, err)
  }
  const boundPort = server.port ?? port
  const host = hostname.includes(':') ? `[${hostname}]` : hostname
  const url = `${tls ? 'https' : 'http'}://${host}:${boundPort}`
  log.info(`${name} listening`, { url, mtls: false })
  return runningServer(
    { name, url, port: boundPort, log },
    {
      drain: (drainMs) =>
        Promise.race([
          server.stop(false).then(() => false),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(true), drainMs).unref()),
        ]),
      close: () => server.stop(true),
    },
  )
}
